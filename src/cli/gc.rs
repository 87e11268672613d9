//! `promptloop gc`: prune old runs' snapshot refs and record folders.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_FAILED, Failure, finish, load_settings, open_repo, project_dir};
use crate::git::Repo;
use crate::retention::{self, Options, Policy, Report};
use crate::settings::RetentionSettings;
use crate::store::RuleStore;

pub(crate) const AFTER_HELP: &str = "\
Removes only refs under refs/promptloop/runs/ and folders under .promptloop/runs/. The rules,
the failures and the run history in the store stay. A run with a failure still pending keeps
its snapshots (for `promptloop learn`), and so does a run that may still be running.

Without --keep-runs and --keep-days: the config's retention.keep_runs and retention.keep_days
(default: the last 100 runs or 30 days, whichever keeps more). With one of them, only that one
applies; with both, a run is kept if either keeps it. With `retention.auto: true` (the default)
every `promptloop run` prunes this way when it ends.

promptloop does not run `git gc` (it is your repository): the snapshots' objects become
unreachable and git's own gc frees them once they expire (gc.pruneExpire, two weeks by
default). The figure printed is what that will free.

Examples:
  promptloop gc --dry-run            # what the default policy would remove
  promptloop gc --keep-runs 20
  promptloop gc --keep-days 7 --json";

/// `promptloop gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// The project: a directory inside a git work tree.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// Keep the snapshots and folders of the N most recent runs.
    #[arg(long, value_name = "N")]
    keep_runs: Option<u32>,
    /// Keep the snapshots and folders of runs started in the last N days.
    #[arg(long, value_name = "N")]
    keep_days: Option<u32>,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also prune runs whose refs exist but that this project's record does not know (its
    /// .promptloop/ was deleted, or another project in the same repository made them).
    #[arg(long)]
    unrecorded: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The config file whose retention section gives the defaults.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `promptloop gc`.
pub fn main(args: GcArgs) -> ExitCode {
    finish(gc(args))
}

fn gc(args: GcArgs) -> Result<u8, Failure> {
    let dir = project_dir(&args.project_dir)?;
    let repo = open_repo(&dir)?;
    let settings = load_settings(args.config.as_deref())?.settings;
    let policy = match (args.keep_runs, args.keep_days) {
        (None, None) => policy(&settings.retention),
        (keep_runs, keep_days) => Policy {
            keep_runs,
            keep_days,
        },
    };
    // An existing store only: gc creates nothing. Without the store the pending failures
    // are unknown, so a store that cannot be opened stops it.
    let store = if super::has_store(&dir, &settings) {
        Some(super::open_store(&dir, &settings)?)
    } else {
        None
    };
    let options = Options {
        dry_run: args.dry_run,
        unrecorded: args.unrecorded,
    };
    let report =
        retention::prune(&dir, &repo, store.as_deref(), &policy, &options).map_err(|e| {
            Failure {
                message: format!("prune old runs: {e}"),
                code: EXIT_FAILED,
            }
        })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        );
    } else {
        print_human(&mut out, &report);
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    Ok(if report.errors.is_empty() {
        0
    } else {
        EXIT_FAILED
    })
}

/// The policy the `retention:` settings describe (`keep_days: 0`: by count only).
fn policy(settings: &RetentionSettings) -> Policy {
    Policy {
        keep_runs: Some(settings.keep_runs),
        keep_days: (settings.keep_days > 0).then_some(settings.keep_days),
    }
}

/// `retention.auto`: prunes old runs when a run ends. Never fails the run: what it could not
/// do is a warning, and a store that cannot be read prunes nothing.
pub(super) fn after_run(
    project_dir: &Path,
    repo: &Repo,
    store: &dyn RuleStore,
    settings: &RetentionSettings,
    json: bool,
) {
    if !settings.auto {
        return;
    }
    let options = Options {
        dry_run: false,
        unrecorded: false,
    };
    match retention::prune(project_dir, repo, Some(store), &policy(settings), &options) {
        Ok(report) => {
            for error in &report.errors {
                eprintln!("warning: retention: {error}");
            }
            if report.pruned.is_empty() {
                return;
            }
            tracing::info!(runs = report.pruned.len(), "pruned old runs' snapshots");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"type": "runs.pruned", "runs": report.pruned.len(),
                        "keep_runs": settings.keep_runs, "keep_days": settings.keep_days})
                );
            } else {
                eprintln!(
                    "pruned the snapshots and folders of {} old run{} (retention; `promptloop gc --help`)",
                    report.pruned.len(),
                    if report.pruned.len() == 1 { "" } else { "s" }
                );
            }
        }
        Err(e) => eprintln!("warning: retention: prune old runs: {e}"),
    }
}

fn print_human(out: &mut impl Write, report: &Report) {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for run in &report.pruned {
        let _ = writeln!(
            out,
            "{verb} {}: {} ref{}{}",
            run.id,
            run.refs.len(),
            if run.refs.len() == 1 { "" } else { "s" },
            match &run.folder {
                Some(_) => format!(", its folder ({})", bytes(run.folder_bytes)),
                None => String::new(),
            }
        );
    }
    let policy = match (report.policy.keep_runs, report.policy.keep_days) {
        (Some(n), Some(d)) => format!("the last {n} runs or {d} days, whichever keeps more"),
        (Some(n), None) => format!("the last {n} runs"),
        (None, Some(d)) => format!("runs of the last {d} days"),
        (None, None) => "every run".to_string(),
    };
    let _ = writeln!(
        out,
        "{verb} {} of {} runs: {} refs under refs/promptloop/runs/, {} folders in .promptloop/runs/ ({}); kept {} ({policy})",
        report.pruned.len(),
        report.runs,
        report.refs_removed,
        report.folders_removed,
        bytes(report.folder_bytes),
        report.kept,
    );
    if !report.kept_pending.is_empty() {
        let _ = writeln!(
            out,
            "kept {} older run{} with a pending failure: {}",
            report.kept_pending.len(),
            if report.kept_pending.len() == 1 {
                ""
            } else {
                "s"
            },
            report.kept_pending.join(", ")
        );
    }
    if !report.kept_running.is_empty() {
        let _ = writeln!(
            out,
            "kept {} run{} that may still be running: {}",
            report.kept_running.len(),
            if report.kept_running.len() == 1 {
                ""
            } else {
                "s"
            },
            report.kept_running.join(", ")
        );
    }
    if !report.unrecorded.is_empty() {
        let _ = writeln!(
            out,
            "left alone: {} run{} with refs that this project's record does not know \
             (another project in this repository, or a deleted .promptloop/); --unrecorded \
             prunes them too",
            report.unrecorded.len(),
            if report.unrecorded.len() == 1 {
                ""
            } else {
                "s"
            },
        );
    }
    if report.refs_removed > 0 {
        let objects = match report.object_bytes {
            Some(n) => format!("their objects ({}) are", bytes(n)),
            None => "their objects are".to_string(),
        };
        let _ = writeln!(
            out,
            "{objects} freed when git's own gc expires them; promptloop does not run `git gc`"
        );
    }
}

/// `1.2 MB`, `340 KB`, `12 bytes`.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} KB", n as f64 / 1e3),
        n => format!("{n} bytes"),
    }
}
