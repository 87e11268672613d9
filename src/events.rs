//! What a run reports. The loop emits these; the CLI renders them for humans or, with
//! `--json`, prints one JSON object per line.

use std::time::Duration;

use serde::Serialize;

use crate::agent::AgentOutcome;
use crate::rules::format::Rule;
use crate::testing::TestRun;

/// One thing that happened during a run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The run began.
    #[serde(rename = "run.started")]
    RunStarted {
        /// Id of this run (also the folder under `.promptloop/runs/`).
        run_id: String,
        /// The task given to the agent.
        task: String,
        /// The project directory.
        project_dir: String,
        /// Agent name.
        agent: String,
        /// Teacher name.
        teacher: String,
        /// The instruction file rules are written to (the first of `rules_files`).
        rules_file: String,
        /// Every instruction file rules are written to (`rules.targets`).
        rules_files: Vec<String>,
        /// Attempts at most.
        max_attempts: u32,
        /// The snapshot of the work tree before anything ran.
        base_ref: String,
    },
    /// An attempt began.
    #[serde(rename = "attempt.started")]
    AttemptStarted {
        /// 1-based.
        attempt: u32,
        /// Attempts at most.
        max_attempts: u32,
    },
    /// The agent was started.
    #[serde(rename = "agent.started")]
    AgentStarted {
        /// 1-based attempt.
        attempt: u32,
    },
    /// The agent ended.
    #[serde(rename = "agent.finished")]
    AgentFinished {
        /// 1-based attempt.
        attempt: u32,
        /// What it did.
        outcome: AgentOutcome,
        /// Files it changed (added, modified, deleted).
        changed_files: Vec<String>,
    },
    /// The tests were started.
    #[serde(rename = "tests.started")]
    TestsStarted {
        /// 1-based attempt.
        attempt: u32,
        /// The command.
        command: String,
    },
    /// The tests ended.
    #[serde(rename = "tests.finished")]
    TestsFinished {
        /// 1-based attempt.
        attempt: u32,
        /// The run, report included.
        tests: TestRun,
        /// Failing test ids.
        failing: Vec<String>,
    },
    /// A failure was captured for the teacher.
    #[serde(rename = "failure.captured")]
    FailureCaptured {
        /// 1-based attempt.
        attempt: u32,
        /// Id under `.promptloop/failures/`.
        failure_id: String,
        /// `test_failure`, …
        failure_type: String,
        /// Characters that go to the teacher (after compaction and redaction).
        payload_chars: usize,
        /// Secrets removed before sending.
        redactions: usize,
    },
    /// The teacher is being asked.
    #[serde(rename = "teacher.started")]
    TeacherStarted {
        /// Id of the failure.
        failure_id: String,
        /// Teacher name.
        teacher: String,
    },
    /// A rule was learned (and written, unless it was already there).
    #[serde(rename = "rule.learned")]
    RuleLearned {
        /// Id of the failure it came from.
        failure_id: String,
        /// The rule.
        rule: Rule,
        /// The file it went to (the first of `files`).
        file: String,
        /// Every file it went to.
        files: Vec<String>,
        /// False when the same rule was already in every file.
        added: bool,
        /// The rule's id in the store (the one it was merged into, for a repeat lesson).
        rule_id: String,
        /// `added`, `merged`, `proposed` (review mode) or `conflict`.
        action: String,
        /// What to do next, for proposed and conflicting rules.
        note: Option<String>,
    },
    /// A failure came back after a rule was learned from it (same fingerprint).
    #[serde(rename = "failure.recurred")]
    FailureRecurred {
        /// The new failure.
        failure_id: String,
        /// The learned failure it repeats.
        original_failure_id: String,
        /// The fingerprint they share.
        fingerprint: String,
        /// The rule learned from the original, if any.
        rule: Option<Rule>,
        /// Times it has come back since the rule was learned, this one included.
        count: u32,
    },
    /// The semantic reviewer read a passing attempt.
    #[serde(rename = "review.finished")]
    ReviewFinished {
        /// 1-based attempt (0 outside a run).
        attempt: u32,
        /// Every finding, learned from or not.
        findings: Vec<crate::failure::Finding>,
        /// Findings at or above `semantic.min_confidence`, which become failures.
        accepted: usize,
        /// The reviewer's model, where known.
        model: Option<String>,
        /// Input tokens used, where known.
        input_tokens: Option<u64>,
        /// Output tokens used, where known.
        output_tokens: Option<u64>,
        /// Estimated cost in US dollars, where the model's price is known.
        cost_usd: Option<f64>,
    },
    /// The semantic review could not be done; the run goes on.
    #[serde(rename = "review.failed")]
    ReviewFailed {
        /// 1-based attempt (0 outside a run).
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// The failure could not be analysed and is kept for `promptloop learn`.
    #[serde(rename = "failure.pending")]
    FailurePending {
        /// Id of the failure.
        failure_id: String,
        /// Why.
        reason: String,
    },
    /// The attempt's changes were undone before a retry, and kept under a ref.
    #[serde(rename = "attempt.reverted")]
    AttemptReverted {
        /// 1-based attempt.
        attempt: u32,
        /// Where its tree is kept.
        kept_ref: String,
        /// The command that shows what it changed.
        inspect: String,
    },
    /// Something the user should know that does not stop the run.
    #[serde(rename = "warning")]
    Warning {
        /// The warning.
        message: String,
    },
    /// The run ended.
    #[serde(rename = "run.finished")]
    RunFinished {
        /// `passed`, `failed`, `interrupted` or `error`.
        outcome: RunOutcome,
        /// Attempts made.
        attempts: u32,
        /// Rules written during the run.
        rules_learned: u32,
        /// Failures left pending.
        pending: u32,
        /// Agent cost reported, in US dollars.
        cost_usd: f64,
        /// Wall-clock time.
        #[serde(serialize_with = "crate::process::ser_millis", rename = "duration_ms")]
        duration: Duration,
        /// The run's record.
        record: String,
        /// Why it ended, in words.
        message: String,
    },
}

/// How a run ended; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The tests passed.
    Passed,
    /// Attempts ran out, or the loop stopped for review, without passing tests.
    Failed,
    /// Ctrl-C.
    Interrupted,
    /// Something outside the agent's work stopped the run (agent refused to start,
    /// API down, tests found nothing to run).
    Error,
}

/// Receives events as they happen.
pub trait Reporter {
    /// Called for every event, in order.
    fn report(&mut self, event: &Event);
}

/// Collects events; handy for tests and for building the run record.
impl Reporter for Vec<Event> {
    fn report(&mut self, event: &Event) {
        self.push(event.clone());
    }
}
