//! The learning loop: agent → tests → (on failure) teacher → rule → restore → retry.
//! Orchestration only; every step lives in its own module.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::agent::{Agent, AgentError, AgentOutcome, AgentStatus};
use crate::events::{Event, Reporter, RunOutcome};
use crate::failure::FailureContext;
use crate::git::{GitError, Repo, Snapshot};
use crate::learn::{LearnError, Learner, Lesson};
use crate::process::CancelToken;
use crate::record::{self, Record, RecordError, RunLog};
use crate::review::SemanticPlan;
use crate::rules::file as rules_file;
use crate::testing::{self, Framework, TestOutcome, TestRun};

/// Everything one run needs to know, already validated.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The task for the agent.
    pub task: String,
    /// The project directory (inside a git work tree).
    pub project_dir: PathBuf,
    /// Attempts at most (1 + retries).
    pub max_attempts: u32,
    /// False: stop after the first failure and leave its changes for review.
    pub auto_retry: bool,
    /// The test command, run through the shell.
    pub test_command: String,
    /// Which report to ask the runner for.
    pub framework: Framework,
    /// Limit for one test run.
    pub tests_timeout: Duration,
    /// Where the command writes JUnit XML (`tests.report`), for the `junit` framework.
    pub test_report: Option<String>,
    /// The semantic review of passing attempts, when `failure_sources: semantic` is enabled.
    pub semantic: Option<SemanticPlan>,
}

/// An error that stops a run. The user's work tree is safe: the message says where the
/// state before the run is kept.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Git failed (snapshot, diff, restore).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The record under `.promptloop/` could not be written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The agent could not be started.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The test command could not be started.
    #[error(transparent)]
    Tests(#[from] testing::TestError),
    /// The rules file could not be written.
    #[error(transparent)]
    Rules(#[from] rules_file::RulesFileError),
    /// A failure could not be kept, or its rule not stored or written.
    #[error(transparent)]
    Learn(#[from] LearnError),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Passed, failed, interrupted, error.
    pub outcome: RunOutcome,
    /// The run's id.
    pub run_id: String,
}

/// What one run works with: the plan and the pieces it drives, already set up.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    /// What to do.
    pub plan: &'a RunPlan,
    /// The agent CLI.
    pub agent: &'a dyn Agent,
    /// How failures become rules.
    pub learner: &'a Learner<'a>,
    /// The project's git repository (snapshots, diffs, restores).
    pub repo: &'a Repo,
    /// The project's record under `.promptloop/`.
    pub record: &'a Record,
    /// Ctrl-C.
    pub cancel: &'a CancelToken,
}

/// Runs the loop until the tests pass, attempts run out, or something stops it.
pub fn run(ctx: RunContext<'_>, reporter: &mut dyn Reporter) -> Result<RunSummary, LoopError> {
    let mut run = Run::start(ctx, reporter)?;
    let mut before = run.snapshot(1, "before", "promptloop: work tree before the run")?;
    let mut attempt = 0;
    let end = loop {
        attempt += 1;
        match run.attempt(attempt, &before)? {
            Next::Retry => {
                before = run.snapshot(
                    attempt + 1,
                    "before",
                    "promptloop: work tree before the attempt",
                )?;
            }
            Next::Stop(outcome, message) => break (outcome, message),
        }
    };
    Ok(run.finish(attempt, end))
}

/// What follows an attempt.
enum Next {
    /// Another attempt, after the rule was learned.
    Retry,
    /// The run ends so, with this message.
    Stop(RunOutcome, String),
}

/// What one attempt's agent did.
struct AgentStep {
    outcome: AgentOutcome,
    after: Snapshot,
}

/// One run in progress: its context, its log and what it has counted so far.
struct Run<'a, 'r> {
    ctx: RunContext<'a>,
    reporter: &'r mut dyn Reporter,
    log: RunLog,
    id: String,
    started: Instant,
    rules_learned: u32,
    pending: u32,
    cost: f64,
}

impl<'a, 'r> Run<'a, 'r> {
    /// A new run: its id, its event log and `run.started`.
    fn start(ctx: RunContext<'a>, reporter: &'r mut dyn Reporter) -> Result<Self, LoopError> {
        let id = record::new_id();
        let log = ctx.record.start_run(&id)?;
        let mut run = Run {
            ctx,
            reporter,
            log,
            id,
            started: Instant::now(),
            rules_learned: 0,
            pending: 0,
            cost: 0.0,
        };
        let learner = ctx.learner;
        run.emit(Event::RunStarted {
            run_id: run.id.clone(),
            task: ctx.plan.task.clone(),
            project_dir: ctx.plan.project_dir.display().to_string(),
            agent: ctx.agent.name().to_string(),
            teacher: match &learner.teacher {
                Ok(t) => t.name(),
                Err(_) => "none".into(),
            },
            rules_file: learner.rules.primary().display().to_string(),
            rules_files: learner.rules.display(),
            max_attempts: ctx.plan.max_attempts,
            base_ref: run.ref_of(1, "before"),
        });
        if let Err(why) = &learner.teacher {
            run.emit(Event::Warning {
                message: format!("no teacher: failures will be kept as pending ({why})"),
            });
        }
        Ok(run)
    }

    /// One attempt: the agent, the tests, and what their outcome means.
    fn attempt(&mut self, attempt: u32, before: &Snapshot) -> Result<Next, LoopError> {
        let max_attempts = self.ctx.plan.max_attempts;
        self.emit(Event::AttemptStarted {
            attempt,
            max_attempts,
        });
        let agent = self.run_agent(attempt, before)?;
        let status = &agent.outcome.status;
        if *status == AgentStatus::Interrupted || self.ctx.cancel.is_cancelled() {
            return self.stop_restored(attempt, before, RunOutcome::Interrupted, INTERRUPTED);
        }
        if !status.worked_on_task() {
            let message = format!(
                "the agent {}; nothing was learned, the work tree is as it was",
                status.describe()
            );
            return self.stop_restored(attempt, before, RunOutcome::Error, &message);
        }
        let tests = self.run_tests(attempt)?;
        match tests.outcome {
            TestOutcome::Passed => self.on_pass(attempt, before, &agent, &tests),
            TestOutcome::Interrupted => {
                self.stop_restored(attempt, before, RunOutcome::Interrupted, INTERRUPTED)
            }
            TestOutcome::NoTests => {
                let message = format!(
                    "the test command collected no tests (pytest exit code 5): check tests.command (`{}`); the work tree is as it was",
                    self.ctx.plan.test_command
                );
                self.stop_restored(attempt, before, RunOutcome::Error, &message)
            }
            TestOutcome::Failed | TestOutcome::TimedOut => {
                self.on_failure(attempt, before, &agent, &tests)
            }
        }
    }

    /// Runs the agent on the task and snapshots what it left.
    fn run_agent(&mut self, attempt: u32, before: &Snapshot) -> Result<AgentStep, LoopError> {
        let ctx = self.ctx;
        self.emit(Event::AgentStarted { attempt });
        let outcome = ctx
            .agent
            .run(&ctx.plan.task, &ctx.plan.project_dir, ctx.cancel)?;
        self.cost += outcome.cost_usd.unwrap_or(0.0);
        let after = self.snapshot(attempt, "after", "promptloop: work tree after the agent")?;
        let changed = ctx.repo.changed_paths(before, &after)?;
        self.emit(Event::AgentFinished {
            attempt,
            outcome: outcome.clone(),
            changed_files: changed
                .iter()
                .map(|c| c.path.display().to_string())
                .collect(),
        });
        Ok(AgentStep { outcome, after })
    }

    /// Runs the project's tests and keeps their log beside the events.
    fn run_tests(&mut self, attempt: u32) -> Result<TestRun, LoopError> {
        let plan = self.ctx.plan;
        self.emit(Event::TestsStarted {
            attempt,
            command: plan.test_command.clone(),
        });
        let tests = testing::run_tests(
            &testing::TestSpec {
                command: plan.test_command.clone(),
                framework: plan.framework,
                timeout: plan.tests_timeout,
                junit_report: plan.test_report.clone(),
            },
            &plan.project_dir,
            self.ctx.cancel,
        )?;
        self.emit(Event::TestsFinished {
            attempt,
            tests: tests.clone(),
            failing: tests.failing_ids(),
        });
        if let Err(e) = self
            .log
            .save_text(&format!("attempt-{attempt}-tests.log"), &tests.output)
        {
            self.reporter.report(&Event::Warning {
                message: format!("failed to keep the test log: {e}"),
            });
        }
        Ok(tests)
    }

    /// The tests pass: the change stays; with `failure_sources: semantic` a reviewer first
    /// reads the diff for what tests miss, and its findings are learned from.
    fn on_pass(
        &mut self,
        attempt: u32,
        before: &Snapshot,
        agent: &AgentStep,
        tests: &TestRun,
    ) -> Result<Next, LoopError> {
        let mut message = format!("tests pass after {attempt} attempt{}", plural(attempt));
        let ctx = self.ctx;
        let Some(semantic) = &ctx.plan.semantic else {
            return Ok(Next::Stop(RunOutcome::Passed, message));
        };
        let mut attempt_context = self.failure_context(attempt, before, agent)?;
        attempt_context.failure_type = "semantic_review".into();
        attempt_context.source = "semantic".into();
        attempt_context.test_summary = format!(
            "The tests passed (`{}`).\n{}",
            ctx.plan.test_command,
            tests.summary()
        );
        let mut emit = |event| self.emit(event);
        let reviewed = crate::review::review_and_learn(
            semantic,
            ctx.learner,
            &attempt_context,
            attempt,
            ctx.record,
            &mut emit,
            ctx.cancel,
        )?;
        self.rules_learned += reviewed.rules_learned;
        self.pending += reviewed.pending;
        if reviewed.accepted > 0 {
            message.push_str(&format!(
                "; the review found {} problem{} the tests missed",
                reviewed.accepted,
                plural(reviewed.accepted as u32)
            ));
        }
        Ok(Next::Stop(RunOutcome::Passed, message))
    }

    /// The tests fail: the failure is kept and sent to the teacher, the attempt is undone
    /// (with auto-retry), then the rule is learned, so the next attempt reads it.
    fn on_failure(
        &mut self,
        attempt: u32,
        before: &Snapshot,
        agent: &AgentStep,
        tests: &TestRun,
    ) -> Result<Next, LoopError> {
        let ctx = self.ctx;
        let plan = ctx.plan;
        let mut failure = self.failure_context(attempt, before, agent)?;
        failure.test_command = Some(plan.test_command.clone());
        failure.tests = tests
            .report
            .as_ref()
            .map(|r| r.failures.clone())
            .unwrap_or_default();
        failure.failing_ids = tests.failing_ids();
        failure.test_summary = match tests.outcome {
            TestOutcome::TimedOut => format!(
                "The tests were killed at their timeout ({}s).\n{}",
                plan.tests_timeout.as_secs(),
                tests.summary()
            ),
            _ => tests.summary(),
        };
        let mut emit = |event| self.emit(event);
        let lesson = ctx
            .learner
            .analyse(failure, 0, ctx.record, &mut emit, ctx.cancel)?;
        let interrupted = ctx.cancel.is_cancelled();
        if plan.auto_retry || interrupted {
            self.revert(attempt, before)?;
        }
        // Written after the restore, so the restore cannot take the rule away again.
        self.learn(lesson)?;
        if interrupted {
            return Ok(Next::Stop(RunOutcome::Interrupted, INTERRUPTED.into()));
        }
        if attempt < plan.max_attempts && plan.auto_retry {
            return Ok(Next::Retry);
        }
        let message = if plan.auto_retry {
            format!(
                "tests still fail after {attempt} attempt{}; the work tree is as it was (each attempt is kept: see `git diff` above)",
                plural(attempt)
            )
        } else {
            format!(
                "tests fail; stopped for review (--no-auto-retry): the attempt's changes are in the work tree; `git diff {}` shows them against the state before the run",
                self.ref_of(attempt, "before")
            )
        };
        Ok(Next::Stop(RunOutcome::Failed, message))
    }

    /// The attempt as a failure: task, diff against `before`, what the agent said. Test
    /// evidence is added by the caller.
    fn failure_context(
        &self,
        attempt: u32,
        before: &Snapshot,
        agent: &AgentStep,
    ) -> Result<FailureContext, LoopError> {
        let plan = self.ctx.plan;
        Ok(FailureContext {
            id: format!("{}-a{attempt}", self.id),
            failure_type: "test_failure".into(),
            source: match plan.framework {
                Framework::Plain => "tests".into(),
                other => other.name().into(),
            },
            task: plan.task.clone(),
            project_dir: plan.project_dir.display().to_string(),
            run_id: Some(self.id.clone()),
            attempt: Some(attempt),
            captured_at: chrono::Local::now().to_rfc3339(),
            test_command: None,
            tests: Vec::new(),
            failing_ids: Vec::new(),
            test_summary: String::new(),
            diff: self.ctx.repo.diff(before, &agent.after)?,
            agent_status: Some(agent.outcome.status.describe()),
            agent_message: agent.outcome.final_message.clone(),
            description: None,
            context: None,
        })
    }

    /// Writes a learned rule (store, then the instruction files), or counts it pending.
    fn learn(&mut self, lesson: Lesson) -> Result<(), LoopError> {
        match lesson {
            Lesson::Learned(boxed) => {
                let (learned, stored) = *boxed;
                let ctx = self.ctx;
                let mut emit = |event| self.emit(event);
                if ctx.learner.write(&learned, stored, ctx.record, &mut emit)? {
                    self.rules_learned += 1;
                }
            }
            Lesson::Pending(_) => self.pending += 1,
        }
        Ok(())
    }

    /// Undoes only what the agent changed; its tree stays under the `after` ref.
    fn revert(&mut self, attempt: u32, before: &Snapshot) -> Result<(), LoopError> {
        self.restore(attempt, before)?;
        self.emit(Event::AttemptReverted {
            attempt,
            kept_ref: self.ref_of(attempt, "after"),
            inspect: format!(
                "git diff {} {}",
                self.ref_of(attempt, "before"),
                self.ref_of(attempt, "after")
            ),
        });
        Ok(())
    }

    /// Restores the work tree to `before` and ends the run so.
    fn stop_restored(
        &mut self,
        attempt: u32,
        before: &Snapshot,
        outcome: RunOutcome,
        message: &str,
    ) -> Result<Next, LoopError> {
        self.restore(attempt, before)?;
        Ok(Next::Stop(outcome, message.to_string()))
    }

    fn restore(&self, attempt: u32, before: &Snapshot) -> Result<(), LoopError> {
        self.ctx
            .repo
            .restore(before, &self.ref_of(attempt, "before-restore"))?;
        Ok(())
    }

    fn snapshot(&self, attempt: u32, side: &str, message: &str) -> Result<Snapshot, LoopError> {
        Ok(self
            .ctx
            .repo
            .snapshot(&self.ref_of(attempt, side), message)?)
    }

    /// `refs/promptloop/runs/<run>/attempt-<n>/<side>`.
    fn ref_of(&self, attempt: u32, side: &str) -> String {
        format!("refs/promptloop/runs/{}/attempt-{attempt}/{side}", self.id)
    }

    /// `run.finished` with the outcome and the totals.
    fn finish(mut self, attempts: u32, (outcome, message): (RunOutcome, String)) -> RunSummary {
        let record = self
            .ctx
            .record
            .dir()
            .join("runs")
            .join(&self.id)
            .display()
            .to_string();
        self.emit(Event::RunFinished {
            outcome,
            attempts,
            rules_learned: self.rules_learned,
            pending: self.pending,
            cost_usd: self.cost,
            duration: self.started.elapsed(),
            record,
            message,
        });
        RunSummary {
            outcome,
            run_id: self.id,
        }
    }

    /// Reports `event` and appends it to the run's log; a log that cannot be written is
    /// said as a warning, and the run goes on.
    fn emit(&mut self, event: Event) {
        self.reporter.report(&event);
        if let Err(e) = self.log.append(&event) {
            self.reporter.report(&Event::Warning {
                message: format!("failed to record the event: {e}"),
            });
        }
    }
}

const INTERRUPTED: &str = "interrupted; the work tree is as it was before the attempt";

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}
