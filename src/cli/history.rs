//! `promptloop history`: runs, attempts and outcomes from the project's store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_FAILED, Failure, finish, project_dir};
use crate::store::FailureStatus;

/// `promptloop history`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  promptloop history               # the last 20 runs with their attempts\n  promptloop history 20261124-215501-3fa2 --json\n  promptloop history --failures    # failures, pending ones first"
)]
pub struct HistoryArgs {
    /// Only this run.
    run_id: Option<String>,
    /// The project.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// How many runs.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// List the failures (pending and learned) instead of runs.
    #[arg(long)]
    failures: bool,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// The config file (store.url: read a team store).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `promptloop history`.
pub fn main(args: HistoryArgs) -> ExitCode {
    finish(history(args))
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure {
        message: e.to_string(),
        code: EXIT_FAILED,
    }
}

fn history(args: HistoryArgs) -> Result<u8, Failure> {
    let dir = project_dir(&args.project_dir)?;
    let settings = super::load_settings(args.config.as_deref())?.settings;
    let store = super::open_store(&dir, &settings)?;
    if args.failures {
        let mut failures = store.failures().map_err(fail)?;
        failures.sort_by_key(|f| f.status != FailureStatus::Pending);
        if args.json {
            let rows: Vec<_> = failures
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "id": f.context.id,
                        "status": f.status,
                        "failure_type": f.context.failure_type,
                        "source": f.context.source,
                        "run_id": f.context.run_id,
                        "attempt": f.context.attempt,
                        "captured_at": f.context.captured_at,
                        "tries": f.tries,
                        "last_error": f.last_error,
                        "rule": f.rule.as_ref().map(|r| r.rule.clone()),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else if failures.is_empty() {
            println!("no failures recorded");
        } else {
            for f in &failures {
                let status = match f.status {
                    FailureStatus::Pending => "pending",
                    FailureStatus::Learned => "learned",
                };
                println!(
                    "{:<28} {status:<8} {} ({})",
                    f.context.id, f.context.failure_type, f.context.source
                );
                if let Some(e) = &f.last_error {
                    println!("    last error: {e}");
                }
            }
        }
        return Ok(0);
    }
    let runs: Vec<_> = store
        .runs(if args.run_id.is_some() {
            usize::MAX >> 1
        } else {
            args.limit
        })
        .map_err(fail)?
        .into_iter()
        .filter(|r| args.run_id.as_ref().is_none_or(|id| &r.id == id))
        .collect();
    if let Some(id) = &args.run_id
        && runs.is_empty()
    {
        return Err(Failure::usage(format!(
            "show run {id}: no such run (`promptloop history` lists them)"
        )));
    }
    let mut out = Vec::new();
    for run in runs {
        let attempts = store.attempts(&run.id).map_err(fail)?;
        out.push((run, attempts));
    }
    if args.json {
        let rows: Vec<_> = out
            .iter()
            .map(|(run, attempts)| serde_json::json!({"run": run, "attempts": attempts}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(0);
    }
    if out.is_empty() {
        println!("no runs recorded (`promptloop run TASK` records one)");
    }
    for (run, attempts) in &out {
        println!(
            "{}  {}  {} attempt(s), {} rule(s) learned, {} pending, ${:.2}",
            run.id,
            run.outcome.as_deref().unwrap_or("unfinished"),
            run.attempts.max(attempts.len() as u32),
            run.rules_learned,
            run.pending,
            run.cost_usd
        );
        println!("    task: {}", run.task);
        for a in attempts {
            let mut parts = vec![format!(
                "agent {}",
                a.agent_status.as_deref().unwrap_or("?")
            )];
            parts.push(format!("{} file(s) changed", a.changed_files));
            parts.push(format!(
                "tests {}{}",
                a.tests_outcome.as_deref().unwrap_or("not run"),
                if a.failing > 0 {
                    format!(" ({} failing)", a.failing)
                } else {
                    String::new()
                }
            ));
            if let Some(rule) = &a.rule_id {
                parts.push(format!("rule {rule}"));
            }
            if a.reverted {
                parts.push("undone".into());
            }
            println!("    attempt {}: {}", a.attempt, parts.join(", "));
        }
    }
    Ok(0)
}
