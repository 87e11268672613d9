//! `promptloop rules validate ID | --all`: rerun a rule's originating failure with the rule
//! and without it, each rerun in its own temporary copy of the snapshot the loop kept, and
//! record the verdict on the rule (helpful, no effect, harmful). A harmful rule is retired
//! with the evidence as its note; the files are rendered again either way (helpful rules
//! come first). `run --validate` does the same for the rules a run learned.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::bench::CliLoop;
use super::{EXIT_FAILED, EXIT_INTERRUPTED, Failure, finish, load_settings, project_dir};
use crate::bench::{self, Split, TrialPlan, TrialResult, validate};
use crate::learn::curate::Curator;
use crate::process::CancelToken;
use crate::settings::{Loaded, Overrides};
use crate::store::evidence::{Validation, Verdict};
use crate::store::{RuleFilter, RuleStore, Status, StoredRule};

/// `rules validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The rule's id (or a unique prefix).
    #[arg(required_unless_present = "all")]
    id: Option<String>,
    /// Every rule that can be rerun, the most valuable unvalidated ones first, within
    /// --budget reruns.
    #[arg(long, conflicts_with = "id")]
    all: bool,
    /// Reruns with the rule, and as many without it.
    #[arg(long, default_value_t = 3, value_name = "N")]
    trials: u32,
    /// With --all: reruns at most, both sides counted.
    #[arg(long, default_value_t = 30, value_name = "RERUNS")]
    budget: u32,
    /// Reruns at once.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "K")]
    jobs: usize,
    /// The agent (overrides agent.kind).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// The project.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (the agent, rules.file, rules.budget).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

/// What one rule's validation found.
#[derive(serde::Serialize)]
pub(crate) struct Outcome {
    rule: String,
    verdict: Verdict,
    trials: u32,
    with_passed: u32,
    without_passed: u32,
    broken: Vec<String>,
    summary: String,
    retired: bool,
}

/// Runs `rules validate`.
pub fn main(args: ValidateArgs) -> ExitCode {
    finish(inner(args))
}

fn inner(args: ValidateArgs) -> Result<u8, Failure> {
    if args.trials == 0 {
        return Err(Failure::usage("--trials must be at least 1"));
    }
    let project = project_dir(&args.project_dir)?;
    let mut loaded = load_settings(args.config.as_deref())?;
    loaded.settings.apply(&Overrides {
        agent_kind: args.agent.clone(),
        ..Overrides::default()
    })?;
    let v = Validator::open(&project, loaded, args.jobs)?;
    let cancel = CancelToken::new();
    super::install_interrupt(&cancel);
    let mut outcomes = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    if let Some(id) = &args.id {
        let rule = v.store.get(id).map_err(|e| Failure::usage(e.to_string()))?;
        outcomes.push(v.validate(&rule, args.trials, &cancel)?);
    } else {
        let mut left = args.budget;
        for rule in v.by_importance()? {
            if cancel.is_cancelled() {
                break;
            }
            if left < 2 * args.trials {
                skipped.push((rule.id.clone(), "over the budget".into()));
                continue;
            }
            match v.validate(&rule, args.trials, &cancel) {
                Ok(o) => {
                    left -= 2 * args.trials;
                    outcomes.push(o);
                }
                Err(f) if f.code == super::EXIT_USAGE => skipped.push((rule.id.clone(), f.message)),
                Err(f) => return Err(f),
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "validated": outcomes,
            "skipped": skipped.iter().map(|(id, why)| json!({"rule": id, "reason": why})).collect::<Vec<_>>(),
        });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        for o in &outcomes {
            let _ = writeln!(out, "{} {}", o.rule, o.summary);
            if o.retired {
                let _ = writeln!(
                    out,
                    "  retired: it is out of the instruction files (`promptloop rules show {}` says why)",
                    o.rule
                );
            }
        }
        for (id, why) in &skipped {
            let _ = writeln!(out, "{id} skipped: {why}");
        }
    }
    if cancel.is_cancelled() {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(0)
}

/// What validating needs: the project's store and repository, the settings, the loop.
pub(crate) struct Validator {
    store: Box<dyn RuleStore>,
    project: PathBuf,
    root: PathBuf,
    loaded: Loaded,
    runner: CliLoop,
    jobs: usize,
}

impl Validator {
    /// Opens the project's store and repository.
    pub(crate) fn open(project: &Path, loaded: Loaded, jobs: usize) -> Result<Validator, Failure> {
        let repo = crate::git::Repo::open(project).map_err(|e| Failure::usage(e.to_string()))?;
        let store = super::open_store(project, &loaded.settings)?;
        Ok(Validator {
            store,
            project: project.to_path_buf(),
            root: repo.root().to_path_buf(),
            runner: CliLoop {
                source: loaded.source.clone(),
            },
            loaded,
            jobs,
        })
    }

    /// Active and proposed rules, the unvalidated first, then the most valuable.
    fn by_importance(&self) -> Result<Vec<StoredRule>, Failure> {
        let mut rules = self
            .store
            .list(&RuleFilter {
                statuses: vec![Status::Active, Status::Proposed],
                target: None,
            })
            .map_err(|e| Failure::usage(e.to_string()))?;
        let verdicts = self
            .store
            .verdicts()
            .map_err(|e| Failure::usage(e.to_string()))?;
        rules.sort_by(|a, b| {
            (
                verdicts.contains_key(&a.id),
                std::cmp::Reverse(a.value()),
                &b.last_learned_at,
            )
                .cmp(&(
                    verdicts.contains_key(&b.id),
                    std::cmp::Reverse(b.value()),
                    &a.last_learned_at,
                ))
        });
        Ok(rules)
    }

    /// Reruns `rule`'s failure `trials` times with it and as often without it, records the
    /// verdict, retires a harmful rule, and renders the files again.
    pub(crate) fn validate(
        &self,
        rule: &StoredRule,
        trials: u32,
        cancel: &CancelToken,
    ) -> Result<Outcome, Failure> {
        let failures = self
            .store
            .failures()
            .map_err(|e| Failure::usage(e.to_string()))?;
        let origin =
            validate::origin(rule, &failures, &self.root, &self.project).map_err(Failure::usage)?;
        let repo = crate::git::Repo::open(&self.root).map_err(|e| Failure::usage(e.to_string()))?;
        if repo
            .resolve_snapshot(&origin.snapshot)
            .map_err(|e| Failure::usage(e.to_string()))?
            .is_none()
        {
            return Err(Failure::usage(format!(
                "rule {} cannot be rerun: the snapshot {} of its failure is gone",
                rule.id, origin.snapshot
            )));
        }
        let settings = bench::suite::task_settings(&self.loaded.settings, &origin.task)
            .map_err(Failure::usage)?;
        let others: Vec<StoredRule> = self
            .store
            .list(&RuleFilter {
                statuses: vec![Status::Active],
                target: None,
            })
            .map_err(|e| Failure::usage(e.to_string()))?
            .into_iter()
            .filter(|r| r.id != rule.id)
            .collect();
        let mut with = others.clone();
        with.push(rule.clone());
        let jobs: Vec<(bool, u32)> = (0..trials).flat_map(|i| [(true, i), (false, i)]).collect();
        let mut with_results: Vec<TrialResult> = Vec::new();
        let mut without_results: Vec<TrialResult> = Vec::new();
        let mut errors = Vec::new();
        let runner = &self.runner;
        bench::run_parallel(
            &jobs,
            self.jobs,
            cancel,
            |(side, _)| {
                bench::run_trial(
                    &TrialPlan {
                        task: &origin.task,
                        settings: &settings,
                        rules: if *side { &with } else { &others },
                        arm: if *side { "with" } else { "without" },
                        max_attempts: 1,
                        learn: false,
                        keep: false,
                    },
                    runner,
                    cancel,
                )
            },
            |(side, _), result| match result {
                Ok(r) if r.outcome == "interrupted" => {}
                Ok(r) if *side => with_results.push(r),
                Ok(r) => without_results.push(r),
                Err(e) => errors.push(e),
            },
        );
        if cancel.is_cancelled() {
            return Err(Failure {
                message: "interrupted; nothing was recorded".into(),
                code: EXIT_INTERRUPTED,
            });
        }
        if let Some(e) = errors.first() {
            return Err(Failure {
                message: format!("rerun the failure of rule {}: {e}", rule.id),
                code: EXIT_FAILED,
            });
        }
        let (verdict, broken) = validate::verdict(&with_results, &without_results);
        let count = |rs: &[TrialResult]| rs.iter().filter(|r| r.passed).count() as u32;
        let brief = |rs: &[TrialResult]| -> Vec<serde_json::Value> {
            rs.iter()
                .map(|r| json!({"passed": r.passed, "outcome": r.outcome, "failing": r.failing}))
                .collect()
        };
        let validation = Validation {
            seq: 0,
            rule_id: rule.id.clone(),
            at: String::new(),
            verdict,
            trials,
            with_passed: count(&with_results),
            without_passed: count(&without_results),
            broken,
            detail: json!({
                "failure_id": origin.failure_id,
                "snapshot": origin.snapshot,
                "task": origin.task.task,
                "check": origin.task.check,
                "split": Split::Test.as_str(),
                "with": brief(&with_results),
                "without": brief(&without_results),
            }),
        };
        self.store
            .record_validation(&validation)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let summary = validation.summary();
        let curator = Curator::for_settings(
            &*self.store,
            self.project.clone(),
            &self.loaded.settings.rules,
        );
        let retired = verdict == Verdict::Harmful && rule.status != Status::Retired;
        let render = if retired {
            curator
                .set_status(
                    &rule.id,
                    Status::Retired,
                    Some(&validate::retire_note(&summary)),
                    "retired (harmful in validation)",
                )
                .map(|_| ())
        } else {
            curator
                .sync_all(&format!("validated {} ({verdict})", rule.id), &[])
                .map(|_| ())
        };
        render.map_err(|e| Failure {
            message: format!("{e:#}"),
            code: EXIT_FAILED,
        })?;
        Ok(Outcome {
            rule: rule.id.clone(),
            verdict,
            trials,
            with_passed: validation.with_passed,
            without_passed: validation.without_passed,
            broken: validation.broken.clone(),
            summary,
            retired,
        })
    }
}

/// `run --validate`: validates the rules `run_id` added, within `budget` reruns; says what
/// it found on stderr (the run's own output stays as it was).
pub(crate) fn after_run(project: &Path, loaded: Loaded, run_id: &str, budget: u32, json: bool) {
    let report = |msg: String| {
        if json {
            println!("{}", json!({"type": "rule.validated", "message": msg}));
        } else {
            eprintln!("{msg}");
        }
    };
    let v = match Validator::open(project, loaded, 1) {
        Ok(v) => v,
        Err(f) => return report(format!("validation skipped: {}", f.message)),
    };
    let rules: Vec<StoredRule> = match v.store.list(&RuleFilter::default()) {
        Ok(rules) => rules
            .into_iter()
            .filter(|r| r.status == Status::Active)
            .filter(|r| r.provenance.first().and_then(|p| p.run_id.as_deref()) == Some(run_id))
            .collect(),
        Err(e) => return report(format!("validation skipped: {e}")),
    };
    if rules.is_empty() || budget < 2 {
        return;
    }
    let trials = (budget / 2 / rules.len() as u32).max(1);
    let mut left = budget;
    let cancel = CancelToken::new();
    for rule in rules {
        if left < 2 * trials {
            report(format!(
                "{}: not validated (over learning.validate_budget)",
                rule.id
            ));
            continue;
        }
        left -= 2 * trials;
        match v.validate(&rule, trials, &cancel) {
            Ok(o) if json => println!(
                "{}",
                json!({"type": "rule.validated", "rule_id": o.rule, "verdict": o.verdict,
                       "trials": o.trials, "with_passed": o.with_passed,
                       "without_passed": o.without_passed, "broken": o.broken,
                       "retired": o.retired})
            ),
            Ok(o) => eprintln!(
                "validated {}: {}{}",
                o.rule,
                o.summary,
                if o.retired { " — retired" } else { "" }
            ),
            Err(f) => report(format!("{}: not validated: {}", rule.id, f.message)),
        }
    }
}
