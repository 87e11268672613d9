//! Evidence that rules help: `promptloop bench` runs a suite of tasks in several *arms*
//! (the project's rules, no rules, a rules export) and compares their pass rates with 95 %
//! intervals; rule validation reruns a rule's originating failure with and without the
//! rule. Every trial runs in its own temporary copy of the project (see [`workspace`]);
//! the loop itself is behind [`TrialLoop`], which the command line implements with the
//! real agent, teacher and learning loop.
//!
//! Layers: [`suite`] reads the suite file, [`workspace`] makes a trial's copy, this module
//! runs trials (in parallel) and turns their results into a [`Report`]; [`stats`] has the
//! intervals; [`validate`] the verdict on a rule. Results are kept in the project's store
//! (`store::evidence`).

pub mod stats;
pub mod suite;
pub mod validate;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::{Event, RunOutcome};
use crate::process::CancelToken;
use crate::rules::format::Rule;
use crate::settings::Settings;
use crate::store::render::Budget;
use crate::store::{Provenance, Scope, Status, StoredRule};
pub use suite::{Source, Split, Suite, Task};

/// A set of rules a task runs with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// Its name in the output: `rules`, `none`, or the export file's stem.
    pub name: String,
    /// Where its rules came from, in words.
    pub source: String,
    /// The rules written into the instruction files.
    pub rules: Vec<StoredRule>,
}

/// A rule as a [`StoredRule`] without history (a markdown export, a hand-written file).
pub fn bare_rule(rule: Rule, source: &str) -> StoredRule {
    let now = crate::store::now();
    StoredRule {
        id: String::new(),
        rule,
        scope: Scope::Project,
        targets: Vec::new(),
        status: Status::Active,
        note: None,
        conflicts_with: None,
        created_at: now.clone(),
        updated_at: now.clone(),
        activated_at: Some(now.clone()),
        last_learned_at: now.clone(),
        times_learned: 1,
        recurrences: 0,
        times_validated: 0,
        provenance: vec![Provenance {
            failure_type: "import".into(),
            source: source.to_string(),
            learned_at: now,
            ..Provenance::default()
        }],
    }
}

/// Reads a rules file as an arm: `promptloop rules export` JSON (`{"promptloop_rules": 1,
/// "rules": [...]}`), or markdown with Rule / When / Why entries (an export, or a CLAUDE.md).
pub fn arm_from_file(path: &Path) -> Result<Arm, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("read the arm's rules {}: {e}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let rules: Vec<StoredRule> = if text.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        struct Exported {
            rules: Vec<StoredRule>,
        }
        let exported: Exported = serde_json::from_str(&text)
            .map_err(|e| format!("read {} as a rules export: {e}", path.display()))?;
        exported.rules
    } else {
        crate::store::render::parse_body(&text)
            .entries
            .into_iter()
            .map(|e| bare_rule(e.rule, &path.display().to_string()))
            .collect()
    };
    if rules.is_empty() {
        return Err(format!(
            "{}: it holds no rules (Rule / When / Why entries, or a `promptloop rules export`)",
            path.display()
        ));
    }
    Ok(Arm {
        name,
        source: format!("file {}", path.display()),
        rules,
    })
}

/// What the loop gets for one trial.
pub struct LoopInput<'a> {
    /// The task's settings (its overrides applied; `tests.command` is the raw check).
    pub settings: &'a Settings,
    /// The task text.
    pub task: &'a str,
    /// The project copy.
    pub project: &'a Path,
    /// The command the loop runs as its tests (the check, hidden tests around it).
    pub test_command: &'a str,
    /// Attempts at most.
    pub max_attempts: u32,
    /// Whether failures may be taught (false: no teacher is asked, as in validation).
    pub learn: bool,
}

/// What the loop did in one trial.
#[derive(Clone, Debug, Default)]
pub struct LoopRun {
    /// Every event of the run, in order.
    pub events: Vec<Event>,
    /// Tokens the teacher reported (input, output).
    pub teacher_tokens: (u64, u64),
}

/// The learning loop, as the bench runs it. The command line implements it with the real
/// agent, teacher and `learning_loop::run`; it is the one place a trial calls into the loop.
pub trait TrialLoop: Sync {
    /// The instruction files the agent of `settings` reads in `project` (the arm's rules
    /// are written there).
    fn rules_files(&self, settings: &Settings, project: &Path) -> Vec<PathBuf>;
    /// Runs the loop once in the copy.
    fn run(&self, input: &LoopInput<'_>, cancel: &CancelToken) -> Result<LoopRun, String>;
}

/// One trial to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialKey {
    /// Train (the `--learn` pass) or test.
    pub phase: Split,
    /// The task's id.
    pub task: String,
    /// The arm's name.
    pub arm: String,
    /// 0-based repetition.
    pub trial: u32,
}

/// The result of one trial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Whether the check passed (on any attempt).
    pub passed: bool,
    /// How the run ended: passed, failed, error, interrupted.
    pub outcome: String,
    /// The run's last words.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the first attempt passed.
    pub first_attempt_passed: bool,
    /// Agent cost in US dollars, where the agent reported it.
    pub cost_usd: Option<f64>,
    /// Agent input tokens, where reported.
    pub input_tokens: Option<u64>,
    /// Agent output tokens, where reported.
    pub output_tokens: Option<u64>,
    /// Teacher input tokens, where reported.
    pub teacher_input_tokens: u64,
    /// Teacher output tokens, where reported.
    pub teacher_output_tokens: u64,
    /// The whole trial, copy to clean-up.
    pub wall_ms: u64,
    /// Time in the agent.
    pub agent_ms: u64,
    /// Time in the check.
    pub tests_ms: u64,
    /// Time in the set-up command.
    pub setup_ms: u64,
    /// The bench's own time: wall − agent − tests − set-up (copy, rules, snapshots, record).
    pub overhead_ms: u64,
    /// Failing test ids, per attempt.
    pub failing: Vec<Vec<String>>,
    /// Tests run by the last check, where the runner reported them.
    pub tests_total: Option<u64>,
    /// Rules the trial's loop learned.
    pub rules_learned: u32,
    /// Those rules (train trials only: they become the `rules` arm).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<StoredRule>,
}

impl TrialResult {
    /// Reads a trial's result from its run's events.
    pub fn from_events(events: &[Event], teacher_tokens: (u64, u64)) -> TrialResult {
        let mut r = TrialResult {
            outcome: "error".into(),
            teacher_input_tokens: teacher_tokens.0,
            teacher_output_tokens: teacher_tokens.1,
            ..TrialResult::default()
        };
        let mut cost = None::<f64>;
        let mut tokens = None::<(u64, u64)>;
        for event in events {
            match event {
                Event::AgentFinished { outcome, .. } => {
                    r.agent_ms += outcome.duration.as_millis() as u64;
                    if let Some(c) = outcome.cost_usd {
                        *cost.get_or_insert(0.0) += c;
                    }
                    if let Some(u) = &outcome.usage {
                        let t = tokens.get_or_insert((0, 0));
                        t.0 += u.input_tokens;
                        t.1 += u.output_tokens;
                    }
                }
                Event::TestsFinished {
                    attempt,
                    tests,
                    failing,
                } => {
                    r.tests_ms += tests.duration.as_millis() as u64;
                    if *attempt == 1 {
                        r.first_attempt_passed =
                            tests.outcome == crate::testing::TestOutcome::Passed;
                    }
                    r.failing.push(failing.clone());
                    r.tests_total = tests.report.as_ref().map(|rep| rep.total);
                }
                Event::RuleLearned { added: true, .. } => r.rules_learned += 1,
                Event::RunFinished {
                    outcome,
                    attempts,
                    message,
                    ..
                } => {
                    r.attempts = *attempts;
                    r.passed = *outcome == RunOutcome::Passed;
                    r.outcome = match outcome {
                        RunOutcome::Passed => "passed",
                        RunOutcome::Failed => "failed",
                        RunOutcome::Interrupted => "interrupted",
                        RunOutcome::Error => "error",
                    }
                    .into();
                    r.message = message.clone();
                }
                _ => {}
            }
        }
        r.cost_usd = cost;
        r.input_tokens = tokens.map(|t| t.0);
        r.output_tokens = tokens.map(|t| t.1);
        r
    }
}

/// Everything one trial needs.
pub struct TrialPlan<'a> {
    /// The task.
    pub task: &'a Task,
    /// Its settings.
    pub settings: &'a Settings,
    /// The arm's rules.
    pub rules: &'a [StoredRule],
    /// The arm's name.
    pub arm: &'a str,
    /// Attempts at most.
    pub max_attempts: u32,
    /// Whether the loop may ask the teacher.
    pub learn: bool,
    /// Keep the trial's directory (its path is in the message) instead of removing it.
    pub keep: bool,
}

/// Runs one trial: a fresh copy, the arm's rules, the loop, the result. `Err` is a trial
/// that could not be set up (the copy, the set-up command): not the agent's doing.
pub fn run_trial(
    plan: &TrialPlan<'_>,
    runner: &dyn TrialLoop,
    cancel: &CancelToken,
) -> Result<TrialResult, String> {
    let started = Instant::now();
    let task = plan.task;
    let ws = workspace::prepare(
        &task.source,
        task.dir.as_deref(),
        task.hidden_tests.as_deref(),
        &task.check,
        task.setup.as_deref(),
        plan.settings.tests.timeout.max(Duration::from_secs(600)),
        cancel,
    )
    .map_err(|e| format!("task {}: {e}", task.id))?;
    let mut settings = plan.settings.clone();
    // So a scripted agent knows which task it is on (never which arm, nor where the
    // suite and its hidden tests are).
    for env in [
        &mut settings.agent.env,
        &mut settings.claude.env,
        &mut settings.codex.env,
        &mut settings.gemini.env,
    ] {
        env.insert("PROMPTLOOP_BENCH_TASK".into(), task.id.clone());
    }
    let workdir = ws.workdir.clone();
    let targets = runner.rules_files(&settings, &workdir);
    let budget = Budget {
        lines: settings.rules.budget.lines,
        chars: settings.rules.budget.chars,
    };
    workspace::install_rules(&workdir, plan.rules, &targets, budget, plan.arm)
        .map_err(|e| format!("task {}: write the arm's rules: {e}", task.id))?;
    let run = runner.run(
        &LoopInput {
            settings: &settings,
            task: &task.task,
            project: &workdir,
            test_command: &ws.test_command,
            max_attempts: plan.max_attempts,
            learn: plan.learn,
        },
        cancel,
    )?;
    let mut result = TrialResult::from_events(&run.events, run.teacher_tokens);
    if plan.learn {
        result.learned = workspace::learned_rules(&workdir, plan.rules)?;
    }
    result.setup_ms = ws.setup.as_millis() as u64;
    if plan.keep {
        let kept = ws.root().to_path_buf();
        std::mem::forget(ws);
        result
            .message
            .push_str(&format!(" (trial kept in {})", kept.display()));
    } else {
        drop(ws);
    }
    result.wall_ms = started.elapsed().as_millis() as u64;
    result.overhead_ms = result
        .wall_ms
        .saturating_sub(result.agent_ms + result.tests_ms + result.setup_ms);
    Ok(result)
}

/// Runs `jobs` on up to `workers` threads; `done` is called on the calling thread as each
/// finishes (so it can write to the store). Stops taking new jobs once `cancel` is set.
pub fn run_parallel<J: Sync, R: Send>(
    jobs: &[J],
    workers: usize,
    cancel: &CancelToken,
    run: impl Fn(&J) -> R + Sync,
    mut done: impl FnMut(&J, R),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            let tx = tx.clone();
            let (next, run) = (&next, &run);
            scope.spawn(move || {
                loop {
                    if cancel.is_cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    if tx.send((i, run(job))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            done(&jobs[i], result);
        }
    });
}

/// Per arm: the pass rate with its interval and what the trials cost.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ArmSummary {
    /// The arm.
    pub name: String,
    /// Where its rules came from.
    pub source: String,
    /// Rules it holds.
    pub rules: usize,
    /// Trials run.
    pub trials: u32,
    /// Trials whose check passed.
    pub passed: u32,
    /// Trials the agent or the tests could not run (counted as not passed).
    pub errors: u32,
    /// passed / trials.
    pub pass_rate: f64,
    /// Wilson 95 % interval, lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Trials that passed on the first attempt.
    pub first_attempt_passed: u32,
    /// Mean attempts per trial.
    pub mean_attempts: f64,
    /// Mean attempts of the trials that passed (attempts to green).
    pub mean_attempts_passed: Option<f64>,
    /// Agent cost in US dollars, summed over the trials that reported one.
    pub cost_usd: Option<f64>,
    /// Agent input tokens, where reported.
    pub input_tokens: Option<u64>,
    /// Agent output tokens, where reported.
    pub output_tokens: Option<u64>,
    /// Teacher input tokens.
    pub teacher_input_tokens: u64,
    /// Teacher output tokens.
    pub teacher_output_tokens: u64,
    /// Wall time, summed over trials.
    pub wall_ms: u64,
    /// Mean of the bench's own time per trial.
    pub mean_overhead_ms: f64,
}

/// One task's result in one arm.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskArm {
    /// The arm.
    pub name: String,
    /// Trials.
    pub trials: u32,
    /// Passed.
    pub passed: u32,
    /// passed / trials.
    pub pass_rate: f64,
    /// Wilson 95 % lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Mean attempts.
    pub mean_attempts: f64,
}

/// One task, the arms side by side.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskSummary {
    /// The task's id.
    pub id: String,
    /// Train or test.
    pub split: Split,
    /// Each arm, in the order of `arms`.
    pub arms: Vec<TaskArm>,
}

/// An arm's pass rate minus the baseline's, with Newcombe's 95 % interval.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ArmDifference {
    /// The arm.
    pub arm: String,
    /// The arm it is compared with.
    pub baseline: String,
    /// Difference of pass rates (−1 … 1).
    pub diff: f64,
    /// Lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// The interval leaves out 0.
    pub significant: bool,
}

/// What a bench found.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// The bench run's id (for `--resume`).
    pub bench_id: String,
    /// The suite's name.
    pub suite: String,
    /// Repetitions per task and arm.
    pub trials_per_task: u32,
    /// Every arm (test phase).
    pub arms: Vec<ArmSummary>,
    /// Each arm against the baseline.
    pub differences: Vec<ArmDifference>,
    /// Each task, arms side by side.
    pub tasks: Vec<TaskSummary>,
    /// The learning pass of `--learn` (train tasks), when there was one.
    pub train: Option<ArmSummary>,
    /// Rules learned on the train tasks.
    pub learned_rules: usize,
    /// Trials this process ran (the rest came from an interrupted run).
    pub ran_now: u32,
    /// Trials that could not be set up (not counted), with why.
    pub setup_errors: Vec<String>,
    /// Every trial.
    pub trials: Vec<TrialRecord>,
}

/// A trial with its key, as the report lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrialRecord {
    /// Which trial.
    #[serde(flatten)]
    pub key: TrialKey,
    /// Its result.
    #[serde(flatten)]
    pub result: TrialResult,
}

fn summarise(name: &str, source: &str, rules: usize, trials: &[&TrialRecord]) -> ArmSummary {
    let n = trials.len() as u32;
    let passed = trials.iter().filter(|t| t.result.passed).count() as u32;
    let rate = stats::wilson(passed, n);
    let sum_opt_f = |f: fn(&TrialResult) -> Option<f64>| {
        trials
            .iter()
            .filter_map(|t| f(&t.result))
            .fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(0.0) + v))
    };
    let sum_opt_u = |f: fn(&TrialResult) -> Option<u64>| {
        trials
            .iter()
            .filter_map(|t| f(&t.result))
            .fold(None, |acc: Option<u64>, v| Some(acc.unwrap_or(0) + v))
    };
    let attempts: u32 = trials.iter().map(|t| t.result.attempts).sum();
    let passed_attempts: u32 = trials
        .iter()
        .filter(|t| t.result.passed)
        .map(|t| t.result.attempts)
        .sum();
    ArmSummary {
        name: name.to_string(),
        source: source.to_string(),
        rules,
        trials: n,
        passed,
        errors: trials
            .iter()
            .filter(|t| t.result.outcome == "error")
            .count() as u32,
        pass_rate: rate.rate,
        ci_low: rate.low,
        ci_high: rate.high,
        first_attempt_passed: trials
            .iter()
            .filter(|t| t.result.first_attempt_passed)
            .count() as u32,
        mean_attempts: if n == 0 {
            0.0
        } else {
            f64::from(attempts) / f64::from(n)
        },
        mean_attempts_passed: (passed > 0).then(|| f64::from(passed_attempts) / f64::from(passed)),
        cost_usd: sum_opt_f(|r| r.cost_usd),
        input_tokens: sum_opt_u(|r| r.input_tokens),
        output_tokens: sum_opt_u(|r| r.output_tokens),
        teacher_input_tokens: trials.iter().map(|t| t.result.teacher_input_tokens).sum(),
        teacher_output_tokens: trials.iter().map(|t| t.result.teacher_output_tokens).sum(),
        wall_ms: trials.iter().map(|t| t.result.wall_ms).sum(),
        mean_overhead_ms: if n == 0 {
            0.0
        } else {
            trials
                .iter()
                .map(|t| t.result.overhead_ms as f64)
                .sum::<f64>()
                / f64::from(n)
        },
    }
}

/// The baseline arms are compared with: `none` if there is one, else the last arm.
pub fn baseline(arms: &[Arm]) -> Option<&Arm> {
    arms.iter().find(|a| a.name == "none").or(arms.last())
}

/// What a bench process knows besides its trials' results.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    /// Rules learned on the train tasks.
    pub learned_rules: usize,
    /// Trials this process ran.
    pub ran_now: u32,
    /// Trials that could not be set up.
    pub setup_errors: Vec<String>,
}

/// Builds the report from the finished trials.
pub fn report(
    bench_id: &str,
    suite: &Suite,
    arms: &[Arm],
    trials_per_task: u32,
    records: Vec<TrialRecord>,
    facts: RunFacts,
) -> Report {
    let RunFacts {
        learned_rules,
        ran_now,
        setup_errors,
    } = facts;
    let test: Vec<&TrialRecord> = records
        .iter()
        .filter(|r| r.key.phase == Split::Test)
        .collect();
    let arm_summaries: Vec<ArmSummary> = arms
        .iter()
        .map(|a| {
            let mine: Vec<&TrialRecord> = test
                .iter()
                .copied()
                .filter(|r| r.key.arm == a.name)
                .collect();
            summarise(&a.name, &a.source, a.rules.len(), &mine)
        })
        .collect();
    let mut differences = Vec::new();
    if let Some(base) = baseline(arms) {
        let b = arm_summaries.iter().find(|s| s.name == base.name);
        for s in &arm_summaries {
            if s.name == base.name {
                continue;
            }
            if let Some(b) = b {
                let d = stats::difference(
                    &stats::wilson(s.passed, s.trials),
                    &stats::wilson(b.passed, b.trials),
                );
                differences.push(ArmDifference {
                    arm: s.name.clone(),
                    baseline: b.name.clone(),
                    diff: d.diff,
                    ci_low: d.low,
                    ci_high: d.high,
                    significant: d.significant(),
                });
            }
        }
    }
    let mut by_task: BTreeMap<&str, Vec<&TrialRecord>> = BTreeMap::new();
    for r in &test {
        by_task.entry(r.key.task.as_str()).or_default().push(r);
    }
    let tasks = suite
        .tasks
        .iter()
        .filter(|t| by_task.contains_key(t.id.as_str()))
        .map(|t| TaskSummary {
            id: t.id.clone(),
            split: t.split,
            arms: arms
                .iter()
                .map(|a| {
                    let mine: Vec<&TrialRecord> = by_task[t.id.as_str()]
                        .iter()
                        .copied()
                        .filter(|r| r.key.arm == a.name)
                        .collect();
                    let s = summarise(&a.name, "", 0, &mine);
                    TaskArm {
                        name: a.name.clone(),
                        trials: s.trials,
                        passed: s.passed,
                        pass_rate: s.pass_rate,
                        ci_low: s.ci_low,
                        ci_high: s.ci_high,
                        mean_attempts: s.mean_attempts,
                    }
                })
                .collect(),
        })
        .collect();
    let train: Vec<&TrialRecord> = records
        .iter()
        .filter(|r| r.key.phase == Split::Train)
        .collect();
    Report {
        bench_id: bench_id.to_string(),
        suite: suite.name.clone(),
        trials_per_task,
        arms: arm_summaries,
        differences,
        tasks,
        train: (!train.is_empty()).then(|| summarise("train", "the learning pass", 0, &train)),
        learned_rules,
        ran_now,
        setup_errors,
        trials: records,
    }
}

/// Every trial of a bench, in a fixed order (task, arm, repetition): `train` trials first
/// when learning (one per train task, in file order), then the test trials.
pub fn plan_trials(suite: &Suite, arms: &[Arm], trials: u32, learn: bool) -> Vec<TrialKey> {
    let mut keys = Vec::new();
    if learn {
        for t in suite.tasks.iter().filter(|t| t.split == Split::Train) {
            keys.push(TrialKey {
                phase: Split::Train,
                task: t.id.clone(),
                arm: "train".into(),
                trial: 0,
            });
        }
    }
    for t in suite
        .tasks
        .iter()
        .filter(|t| !learn || t.split == Split::Test)
    {
        for trial in 0..trials {
            for a in arms {
                keys.push(TrialKey {
                    phase: Split::Test,
                    task: t.id.clone(),
                    arm: a.name.clone(),
                    trial,
                });
            }
        }
    }
    keys
}

/// Merges the rules of `learned` into `into`, leaving out the ones whose text is already
/// there (a lesson learned on two train tasks is one rule).
pub fn add_learned(into: &mut Vec<StoredRule>, learned: &[StoredRule]) {
    for rule in learned {
        if !into.iter().any(|r| r.rule.rule == rule.rule.rule) {
            into.push(rule.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: &str, arm: &str, passed: bool, attempts: u32) -> TrialRecord {
        TrialRecord {
            key: TrialKey {
                phase: Split::Test,
                task: task.into(),
                arm: arm.into(),
                trial: 0,
            },
            result: TrialResult {
                passed,
                outcome: if passed { "passed" } else { "failed" }.into(),
                attempts,
                first_attempt_passed: passed && attempts == 1,
                cost_usd: Some(0.5),
                wall_ms: 100,
                overhead_ms: 10,
                ..TrialResult::default()
            },
        }
    }

    #[test]
    fn a_report_compares_each_arm_with_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        let suite = suite::parse(
            "tasks:\n  - {id: a, project: p, task: T, check: c}\n  - {id: b, project: p, task: T, check: c}\n",
            Path::new("s.yaml"),
            dir.path(),
        )
        .unwrap();
        let arms = vec![
            Arm {
                name: "rules".into(),
                source: "store".into(),
                rules: vec![bare_rule(
                    Rule {
                        category: None,
                        rule: "R".into(),
                        when: "W".into(),
                        why: "Y".into(),
                    },
                    "t",
                )],
            },
            Arm {
                name: "none".into(),
                source: "no rules".into(),
                rules: Vec::new(),
            },
        ];
        let keys = plan_trials(&suite, &arms, 2, false);
        assert_eq!(keys.len(), 8);
        let mut records = Vec::new();
        for _ in 0..2 {
            records.push(record("a", "rules", true, 1));
            records.push(record("b", "rules", true, 2));
            records.push(record("a", "none", false, 3));
            records.push(record("b", "none", true, 1));
        }
        let r = report(
            "b1",
            &suite,
            &arms,
            2,
            records,
            RunFacts {
                ran_now: 8,
                ..RunFacts::default()
            },
        );
        assert_eq!(r.arms[0].name, "rules");
        assert_eq!((r.arms[0].trials, r.arms[0].passed), (4, 4));
        assert_eq!((r.arms[1].trials, r.arms[1].passed), (4, 2));
        assert_eq!(r.arms[0].first_attempt_passed, 2);
        assert_eq!(r.arms[0].mean_attempts, 1.5);
        assert_eq!(r.arms[1].mean_attempts_passed, Some(1.0));
        assert_eq!(r.arms[0].cost_usd, Some(2.0));
        assert_eq!(r.differences.len(), 1);
        assert_eq!(r.differences[0].baseline, "none");
        assert!((r.differences[0].diff - 0.5).abs() < 1e-9);
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.tasks[0].arms[1].passed, 0);
        assert_eq!(r.tasks[1].arms[1].passed, 2);
    }

    #[test]
    fn parallel_runs_report_every_job_once_on_the_calling_thread() {
        let jobs: Vec<u32> = (0..20).collect();
        let mut seen = Vec::new();
        let main = std::thread::current().id();
        run_parallel(
            &jobs,
            4,
            &CancelToken::new(),
            |j| j * 2,
            |j, r| {
                assert_eq!(std::thread::current().id(), main);
                seen.push((*j, r));
            },
        );
        seen.sort();
        assert_eq!(seen, jobs.iter().map(|j| (*j, j * 2)).collect::<Vec<_>>());
        let cancel = CancelToken::new();
        cancel.cancel();
        let mut none = 0;
        run_parallel(&jobs, 2, &cancel, |j| *j, |_, _| none += 1);
        assert_eq!(none, 0);
    }
}
