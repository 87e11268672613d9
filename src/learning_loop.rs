//! The learning loop: agent → tests → (on failure) teacher → rule → restore → retry.
//! Orchestration only; every step lives in its own module.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::agent::{Agent, AgentError, AgentStatus};
use crate::events::{Event, Reporter, RunOutcome};
use crate::failure::FailureContext;
use crate::git::{GitError, Repo};
use crate::learn::{LearnError, Learner, Lesson};
use crate::process::CancelToken;
use crate::record::{self, Record, RecordError, RunLog};
use crate::rules::file as rules_file;
use crate::testing::{self, Framework, TestOutcome};

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
    pub semantic: Option<crate::review::SemanticPlan>,
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

/// Runs the loop until the tests pass, attempts run out, or something stops it.
#[allow(clippy::too_many_arguments)]
pub fn run(
    plan: &RunPlan,
    agent: &dyn Agent,
    learner: &Learner<'_>,
    repo: &Repo,
    record: &Record,
    reporter: &mut dyn Reporter,
    cancel: &CancelToken,
) -> Result<RunSummary, LoopError> {
    let started = Instant::now();
    let run_id = record::new_id();
    let mut log = record.start_run(&run_id)?;
    let mut state = State {
        rules_learned: 0,
        pending: 0,
        cost: 0.0,
    };
    let ref_of = |attempt: u32, side: &str| {
        format!("refs/promptloop/runs/{run_id}/attempt-{attempt}/{side}")
    };
    let mut before = repo.snapshot(&ref_of(1, "before"), "promptloop: work tree before the run")?;
    let base_ref = ref_of(1, "before");
    {
        let mut emit = emitter(reporter, &mut log);
        emit(Event::RunStarted {
            run_id: run_id.clone(),
            task: plan.task.clone(),
            project_dir: plan.project_dir.display().to_string(),
            agent: agent.name().to_string(),
            teacher: match &learner.teacher {
                Ok(t) => t.name(),
                Err(_) => "none".into(),
            },
            rules_file: learner.rules.primary().display().to_string(),
            rules_files: learner.rules.display(),
            max_attempts: plan.max_attempts,
            base_ref: base_ref.clone(),
        });
        if let Err(why) = &learner.teacher {
            emit(Event::Warning {
                message: format!("no teacher: failures will be kept as pending ({why})"),
            });
        }
    }
    let mut attempt = 0;
    let (outcome, message) = loop {
        attempt += 1;
        let mut emit = emitter(reporter, &mut log);
        emit(Event::AttemptStarted {
            attempt,
            max_attempts: plan.max_attempts,
        });
        emit(Event::AgentStarted { attempt });
        let agent_outcome = agent.run(&plan.task, &plan.project_dir, cancel)?;
        state.cost += agent_outcome.cost_usd.unwrap_or(0.0);
        let after = repo.snapshot(
            &ref_of(attempt, "after"),
            "promptloop: work tree after the agent",
        )?;
        let changed = repo.changed_paths(&before, &after)?;
        let status = agent_outcome.status.clone();
        emit(Event::AgentFinished {
            attempt,
            outcome: agent_outcome.clone(),
            changed_files: changed
                .iter()
                .map(|c| c.path.display().to_string())
                .collect(),
        });
        if status == AgentStatus::Interrupted || cancel.is_cancelled() {
            repo.restore(&before, &ref_of(attempt, "before-restore"))?;
            break (
                RunOutcome::Interrupted,
                "interrupted; the work tree is as it was before the attempt".to_string(),
            );
        }
        if !status.worked_on_task() {
            repo.restore(&before, &ref_of(attempt, "before-restore"))?;
            break (
                RunOutcome::Error,
                format!(
                    "the agent {}; nothing was learned, the work tree is as it was",
                    status.describe()
                ),
            );
        }
        emit(Event::TestsStarted {
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
            cancel,
        )?;
        let failing = tests.failing_ids();
        emit(Event::TestsFinished {
            attempt,
            tests: tests.clone(),
            failing: failing.clone(),
        });
        drop(emit);
        if let Err(e) = log.save_text(&format!("attempt-{attempt}-tests.log"), &tests.output) {
            reporter.report(&Event::Warning {
                message: format!("failed to keep the test log: {e}"),
            });
        }
        let mut emit = emitter(reporter, &mut log);
        match tests.outcome {
            TestOutcome::Passed => {
                let mut message = format!("tests pass after {attempt} attempt{}", plural(attempt));
                if let Some(semantic) = &plan.semantic {
                    let attempt_context = FailureContext {
                        id: format!("{run_id}-a{attempt}"),
                        failure_type: "semantic_review".into(),
                        source: "semantic".into(),
                        task: plan.task.clone(),
                        project_dir: plan.project_dir.display().to_string(),
                        run_id: Some(run_id.clone()),
                        attempt: Some(attempt),
                        captured_at: chrono::Local::now().to_rfc3339(),
                        test_command: None,
                        tests: Vec::new(),
                        failing_ids: Vec::new(),
                        test_summary: format!(
                            "The tests passed (`{}`).\n{}",
                            plan.test_command,
                            tests.summary()
                        ),
                        diff: repo.diff(&before, &after)?,
                        agent_status: Some(status.describe()),
                        agent_message: agent_outcome.final_message.clone(),
                        description: None,
                        context: None,
                    };
                    let reviewed = crate::review::review_and_learn(
                        semantic,
                        learner,
                        &attempt_context,
                        attempt,
                        record,
                        &mut emit,
                        cancel,
                    )?;
                    state.rules_learned += reviewed.rules_learned;
                    state.pending += reviewed.pending;
                    if reviewed.accepted > 0 {
                        message.push_str(&format!(
                            "; the review found {} problem{} the tests missed",
                            reviewed.accepted,
                            plural(reviewed.accepted as u32)
                        ));
                    }
                }
                break (RunOutcome::Passed, message);
            }
            TestOutcome::Interrupted => {
                repo.restore(&before, &ref_of(attempt, "before-restore"))?;
                break (
                    RunOutcome::Interrupted,
                    "interrupted; the work tree is as it was before the attempt".into(),
                );
            }
            TestOutcome::NoTests => {
                repo.restore(&before, &ref_of(attempt, "before-restore"))?;
                break (
                    RunOutcome::Error,
                    format!(
                        "the test command collected no tests (pytest exit code 5): check tests.command (`{}`); the work tree is as it was",
                        plan.test_command
                    ),
                );
            }
            TestOutcome::Failed | TestOutcome::TimedOut => {}
        }
        let failure = FailureContext {
            id: format!("{run_id}-a{attempt}"),
            failure_type: "test_failure".into(),
            source: match plan.framework {
                Framework::Plain => "tests".into(),
                other => other.name().into(),
            },
            task: plan.task.clone(),
            project_dir: plan.project_dir.display().to_string(),
            run_id: Some(run_id.clone()),
            attempt: Some(attempt),
            captured_at: chrono::Local::now().to_rfc3339(),
            test_command: Some(plan.test_command.clone()),
            tests: tests
                .report
                .as_ref()
                .map(|r| r.failures.clone())
                .unwrap_or_default(),
            failing_ids: failing,
            test_summary: match tests.outcome {
                TestOutcome::TimedOut => format!(
                    "The tests were killed at their timeout ({}s).\n{}",
                    plan.tests_timeout.as_secs(),
                    tests.summary()
                ),
                _ => tests.summary(),
            },
            diff: repo.diff(&before, &after)?,
            agent_status: Some(status.describe()),
            agent_message: agent_outcome.final_message.clone(),
            description: None,
            context: None,
        };
        let lesson = learner.analyse(failure, 0, record, &mut emit, cancel)?;
        let last = attempt >= plan.max_attempts || !plan.auto_retry;
        let interrupted = cancel.is_cancelled();
        if plan.auto_retry || interrupted {
            // Undo only what the agent changed; its tree stays under the `after` ref.
            repo.restore(&before, &ref_of(attempt, "before-restore"))?;
            emit(Event::AttemptReverted {
                attempt,
                kept_ref: ref_of(attempt, "after"),
                inspect: format!(
                    "git diff {} {}",
                    ref_of(attempt, "before"),
                    ref_of(attempt, "after")
                ),
            });
        }
        // Written after the restore, so the restore cannot take the rule away again.
        match lesson {
            Lesson::Learned(boxed) => {
                let (learned, stored) = *boxed;
                if learner.write(&learned, stored, record, &mut emit)? {
                    state.rules_learned += 1;
                }
            }
            Lesson::Pending(_) => state.pending += 1,
        }
        if interrupted {
            break (
                RunOutcome::Interrupted,
                "interrupted; the work tree is as it was before the attempt".into(),
            );
        }
        if last {
            let message = if plan.auto_retry {
                format!(
                    "tests still fail after {attempt} attempt{}; the work tree is as it was (each attempt is kept: see `git diff` above)",
                    plural(attempt)
                )
            } else {
                format!(
                    "tests fail; stopped for review (--no-auto-retry): the attempt's changes are in the work tree; `git diff {}` shows them against the state before the run",
                    ref_of(attempt, "before")
                )
            };
            break (RunOutcome::Failed, message);
        }
        before = repo.snapshot(
            &ref_of(attempt + 1, "before"),
            "promptloop: work tree before the attempt",
        )?;
    };
    let mut emit = emitter(reporter, &mut log);
    emit(Event::RunFinished {
        outcome,
        attempts: attempt,
        rules_learned: state.rules_learned,
        pending: state.pending,
        cost_usd: state.cost,
        duration: started.elapsed(),
        record: record
            .dir()
            .join("runs")
            .join(&run_id)
            .display()
            .to_string(),
        message,
    });
    Ok(RunSummary { outcome, run_id })
}

struct State {
    rules_learned: u32,
    pending: u32,
    cost: f64,
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An event sink that reports and appends to the run's log; a log that cannot be written
/// is said once as a warning, and the run goes on.
fn emitter<'a>(reporter: &'a mut dyn Reporter, log: &'a mut RunLog) -> impl FnMut(Event) + 'a {
    move |event: Event| {
        reporter.report(&event);
        if let Err(e) = log.append(&event) {
            reporter.report(&Event::Warning {
                message: format!("failed to record the event: {e}"),
            });
        }
    }
}
