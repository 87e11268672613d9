//! `promptloop stats`: what the record says about learning — per rule and per day — as a
//! table, as JSON, or as SVG charts (`--plot DIR`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_FAILED, Failure, finish, project_dir};
use crate::stats::{self, Stats};

/// `promptloop stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The project.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// Also write SVG charts into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// The config file (store.url: read a team store).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `promptloop stats`.
pub fn main(args: StatsArgs) -> ExitCode {
    finish(inner(args))
}

fn inner(args: StatsArgs) -> Result<u8, Failure> {
    let project = project_dir(&args.project_dir)?;
    let settings = super::load_settings(args.config.as_deref())?.settings;
    if !super::has_store(&project, &settings) {
        return Err(Failure::usage(format!(
            "{} has no record yet (`promptloop run` makes one)",
            project.display()
        )));
    }
    let store = super::open_store(&project, &settings)?;
    let stats = stats::collect(&*store).map_err(|e| Failure {
        message: e.to_string(),
        code: EXIT_FAILED,
    })?;
    let mut written = Vec::new();
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("create {}: {e}", dir.display())))?;
        for (name, svg) in stats::charts(&stats) {
            let path = dir.join(name);
            std::fs::write(&path, svg).map_err(|e| Failure {
                message: format!("write {}: {e}", path.display()),
                code: EXIT_FAILED,
            })?;
            written.push(path.display().to_string());
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&stats).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("charts".into(), serde_json::json!(written));
        }
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = write!(out, "{}", table(&stats));
    for path in &written {
        let _ = writeln!(out, "wrote {path}");
    }
    Ok(0)
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn counts(map: &std::collections::BTreeMap<String, u32>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human view.
fn table(s: &Stats) -> String {
    let t = &s.totals;
    let mut out = format!(
        "runs: {} · first attempt passed {} ({}) · passed {} · attempts to green {}\n\
         failures: {} · by type: {} · by source: {}\n\
         recurrences of failures that already had a rule: {}\n\
         rules: {} active, {} proposed, {} retired · validated helpful {}, harmful {}\n",
        t.runs,
        t.first_attempt_passed,
        rate(t.first_attempt_rate),
        t.passed,
        num(t.attempts_to_green),
        t.failures,
        counts(&s.failures_by_type),
        counts(&s.failures_by_source),
        t.recurrences,
        t.rules_active,
        t.rules_proposed,
        t.rules_retired,
        t.rules_helpful,
        t.rules_harmful,
    );
    if !s.rules.is_empty() {
        out.push_str("\nID        STATUS    LEARNED RECURRED VALIDATED VERDICT    HELPED  RULE\n");
        for r in &s.rules {
            let text: String = r.rule.chars().take(60).collect();
            out.push_str(&format!(
                "{:<9} {:<9} {:>7} {:>8} {:>9} {:<10} {:>6}  {text}\n",
                r.id,
                r.status,
                r.learned,
                r.recurred,
                r.validated,
                r.verdict.map_or("-", |v| v.as_str()),
                r.helped,
            ));
        }
    }
    if !s.days.is_empty() {
        out.push_str("\nDAY         RUNS 1ST-TRY ATTEMPTS-TO-GREEN FAILURES RECURRED\n");
        for d in &s.days {
            out.push_str(&format!(
                "{:<10} {:>5} {:>7} {:>17} {:>8} {:>8}\n",
                d.day,
                d.runs,
                rate(d.first_attempt_rate),
                num(d.attempts_to_green),
                d.failures,
                d.recurrences
            ));
        }
    }
    out
}
