//! The learning loop: agent → tests → (on failure) teacher → rule → restore → retry.
//! Orchestration only; every step lives in its own module.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::agent::{Agent, AgentError, AgentStatus};
use crate::events::{Event, Reporter, RunOutcome};
use crate::failure::FailureContext;
use crate::git::{GitError, Repo};
use crate::process::CancelToken;
use crate::record::{self, Record, RecordError, RunLog};
use crate::redact::Redactor;
use crate::rules::file as rules_file;
use crate::rules::targets::RulesTargets;
use crate::store::curate::{self, CurateError, Curation};
use crate::store::{FailureStatus, StoredFailure};
use crate::store::{LearnOutcome, Provenance};
use crate::teacher::{self, Teacher, prompt};
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

/// How failures become rules; shared by `run` and `learn`.
pub struct Learner<'a> {
    /// The teacher, or why there is none (failures then stay pending).
    pub teacher: Result<&'a dyn Teacher, String>,
    /// The instruction files rules go to (`rules.targets`, else the agent's own file).
    pub rules: RulesTargets,
    /// Characters of failure context sent to the teacher.
    pub context_budget: usize,
    /// File-name patterns whose content is never sent.
    pub private_files: Vec<String>,
    /// Failure type → the teacher's system prompt (`failure_prompts`).
    pub prompts: prompt::Router,
    /// Removes secrets from everything sent (built-in and `redaction.patterns`).
    pub redactor: &'a Redactor,
    /// How learned rules are kept: review mode, scope, budget (see `store::curate`).
    pub curation: Curation,
}

/// What became of one failure.
pub enum Lesson {
    /// A rule, ready to write.
    Learned(Box<(teacher::Learned, StoredFailure)>),
    /// No rule; the failure is kept as pending.
    Pending(Box<StoredFailure>),
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
    /// The rule store (or a file rendered from it) could not be updated.
    #[error(transparent)]
    Curate(#[from] CurateError),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Passed, failed, interrupted, error.
    pub outcome: RunOutcome,
    /// The run's id.
    pub run_id: String,
}

impl<'a> Learner<'a> {
    /// Exactly what the teacher gets for `failure` (the prompt for its type, the failure
    /// redacted and compacted, the rules already known), and how many secrets were removed.
    pub fn lesson(&self, failure: &FailureContext) -> (teacher::Lesson, usize) {
        // Redacted field by field before anything is compacted (a clipped secret could slip
        // past its pattern), then the whole payload once more.
        let (clean, removed) = self.redactor.redact_failure(failure);
        let payload = clean.render(self.context_budget, &self.private_files);
        let redacted = self.redactor.redact(&payload);
        let (diff, error_logs) = clean.parts(self.context_budget, &self.private_files);
        let parts = prompt::LessonParts {
            task: clean.task.clone(),
            diff: self.redactor.redact(&diff).text,
            error_logs: self.redactor.redact(&error_logs).text,
            description: clean.description.clone(),
            context: clean.context.clone(),
        };
        // Rules already in the file, so the teacher does not repeat one; redacted too.
        let known: Vec<String> = self
            .rules
            .known_rules()
            .iter()
            .map(|r| self.redactor.redact(r).text)
            .collect();
        // Reviewer findings are not test failures: they get the prompt written for them.
        let routed = if failure.source == "semantic" {
            self.prompts.route(prompt::SEMANTIC_FINDING_TYPE)
        } else {
            self.prompts.route(&failure.failure_type)
        };
        let lesson = prompt::lesson(
            &routed,
            &failure.failure_type,
            &redacted.text,
            parts,
            &known,
        );
        (lesson, removed.count() + redacted.count())
    }

    /// Saves `failure` as pending, asks the teacher, and returns the rule (not yet written).
    pub fn analyse(
        &self,
        failure: FailureContext,
        previous_tries: u32,
        record: &Record,
        emit: &mut dyn FnMut(Event),
        cancel: &CancelToken,
    ) -> Result<Lesson, LoopError> {
        let (lesson, redactions) = self.lesson(&failure);
        let fingerprints = crate::fingerprint::of_context(&failure);
        let recurrences = if previous_tries == 0 {
            record.note_recurrences(&fingerprints, &failure.id)?
        } else {
            // `promptloop learn` retrying a pending failure: it was counted when captured.
            Vec::new()
        };
        let mut stored = StoredFailure {
            status: FailureStatus::Pending,
            context: failure,
            last_error: None,
            tries: previous_tries,
            rule: None,
            // Where its rule goes, so `promptloop learn` writes it there later.
            rules_file: Some(self.rules.primary().display().to_string()),
            teacher: None,
            teacher_answer: None,
            fingerprints,
            recurrences: 0,
            last_recurrence: None,
            recurrence_of: recurrences.first().map(|r| r.original.clone()),
        };
        // Kept before the teacher is asked: a crash or Ctrl-C while waiting loses nothing.
        record.save_failure(&stored)?;
        for r in recurrences {
            emit(Event::FailureRecurred {
                failure_id: stored.context.id.clone(),
                original_failure_id: r.original,
                fingerprint: r.fingerprint,
                rule: r.rule,
                count: r.count,
            });
        }
        emit(Event::FailureCaptured {
            attempt: stored.context.attempt.unwrap_or(0),
            failure_id: stored.context.id.clone(),
            failure_type: stored.context.failure_type.clone(),
            payload_chars: lesson.user.len(),
            redactions,
        });
        let teacher = match &self.teacher {
            Ok(t) => *t,
            Err(why) => {
                stored.last_error = Some(why.clone());
                record.save_failure(&stored)?;
                emit(Event::FailurePending {
                    failure_id: stored.context.id.clone(),
                    reason: why.clone(),
                });
                return Ok(Lesson::Pending(Box::new(stored)));
            }
        };
        emit(Event::TeacherStarted {
            failure_id: stored.context.id.clone(),
            teacher: teacher.name(),
        });
        stored.tries += 1;
        stored.teacher = Some(teacher.name());
        match teacher::learn(teacher, &lesson, &stored.context, cancel) {
            Ok(learned) => {
                stored.teacher_answer = Some(learned.reply.text.clone());
                Ok(Lesson::Learned(Box::new((learned, stored))))
            }
            Err(e) => {
                let reason = format!("{e:#}");
                stored.last_error = Some(reason.clone());
                record.save_failure(&stored)?;
                emit(Event::FailurePending {
                    failure_id: stored.context.id.clone(),
                    reason,
                });
                Ok(Lesson::Pending(Box::new(stored)))
            }
        }
    }

    /// Learns a rule into the store (dedup, merge, conflict), renders the rules file from
    /// it, and marks its failure learned. True when the file gained the rule.
    pub fn write(
        &self,
        learned: &teacher::Learned,
        mut stored: StoredFailure,
        record: &Record,
        emit: &mut dyn FnMut(Event),
    ) -> Result<bool, LoopError> {
        let c = &stored.context;
        let provenance = Provenance {
            failure_id: Some(c.id.clone()),
            failure_type: c.failure_type.clone(),
            source: c.source.clone(),
            task: Some(c.task.clone()),
            teacher: stored.teacher.clone(),
            model: learned.reply.model.clone(),
            run_id: c.run_id.clone(),
            learned_at: chrono::Local::now().to_rfc3339(),
            text: String::new(),
        };
        let project_dir = record.dir().parent().unwrap_or(record.dir());
        let report = curate::learn_for_loop(
            &self.curation,
            record.store(),
            project_dir,
            &self.rules.paths(),
            &learned.rule,
            provenance,
            self.teacher.as_ref().ok().copied(),
        )?;
        let added = report.written();
        stored.status = FailureStatus::Learned;
        stored.rule = Some(learned.rule.clone());
        stored.rules_file = Some(self.rules.primary().display().to_string());
        stored.last_error = None;
        record.save_failure(&stored)?;
        let (action, note) = match &report.outcome {
            LearnOutcome::Added { id, status } if *status == crate::store::Status::Proposed => (
                "proposed",
                Some(format!(
                    "review mode: `promptloop rules approve {id}` writes it"
                )),
            ),
            LearnOutcome::Added { .. } => ("added", None),
            LearnOutcome::Merged { id, status, .. } => (
                "merged",
                Some(format!(
                    "the same lesson as {id} ({status}); its count grew"
                )),
            ),
            LearnOutcome::Conflict { id, with } => (
                "conflict",
                Some(format!(
                    "contradicts {with}; kept as proposed: `promptloop rules show {id}`"
                )),
            ),
        };
        emit(Event::RuleLearned {
            failure_id: stored.context.id.clone(),
            rule: learned.rule.clone(),
            file: self.rules.primary().display().to_string(),
            files: self.rules.display(),
            added,
            rule_id: report.outcome.id().to_string(),
            action: action.to_string(),
            note,
        });
        Ok(added)
    }
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
