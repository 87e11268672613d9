//! `promptloop store check | repair | reset` (a store that cannot be read), `migrate` (to a
//! team store and back) and `sync` (what was done offline).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_USAGE, Failure, finish, project_dir};
use crate::settings;
use crate::store::health::{self, CheckReport, FixError, Verdict};

pub(crate) const AFTER_HELP: &str = "\
The store is .promptloop/promptloop.db in the project (--global: the user's store of global
rules, $XDG_DATA_HOME/promptloop/promptloop.db). Backups beside it: promptloop.db.bak,
refreshed when the store is opened and the backup is more than a day old, and
promptloop.db.v<N>.bak, taken before a migration from schema version N.

repair and reset move the file aside (promptloop.db.damaged-<time>, .reset-<time>, with its
-wal and -shm files) and never delete it. repair copies every row SQLite can still read
into a new store, then the rows of the newest backup that it lacks; rows on damaged pages
that the backup does not have are lost. A store written by a newer promptloop is left as it
is. Stop other promptloop processes of the project first.

A team store (store.url: postgres://…, or PROMPTLOOP_STORE_URL) is filled from the SQLite file
by migrate --to URL and copied back by migrate --to sqlite; sync sends what was learned and
recorded while its server could not be reached. See docs/team-store.md.

Examples:
  promptloop store check
  promptloop store repair -d ~/src/app
  promptloop store reset --global --force
  promptloop store migrate --to 'postgres://app:${PG_PASS}@db.internal/rules'
  promptloop store migrate --to sqlite --replace
  promptloop store sync --json";

/// `promptloop store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check the store: header, integrity, schema version, counts, backups (exit 1 when
    /// damaged or newer than this promptloop).
    Check(Target),
    /// Move a damaged store aside and recover what can be read (and what the backup has)
    /// into a new one.
    Repair(FixArgs),
    /// Move the store aside and start an empty one.
    Reset(FixArgs),
    /// Copy the project's SQLite store into an empty team store, or (--to sqlite) the
    /// project's part of the team store back into an empty SQLite file; every count checked.
    Migrate(MigrateArgs),
    /// Send what was learned and recorded while the team store was unreachable (each lesson,
    /// failure and event once).
    Sync(SyncArgs),
}

/// `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The project whose queue it is.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (for store.url and store.project_id).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

/// `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The project whose store it is.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// Where to: a team store, postgres://user@host/db (the password from ${VAR} in the URL,
    /// PGPASSWORD or .pgpass), or `sqlite` for the project's SQLite file (back from the team
    /// store).
    #[arg(long, value_name = "URL|sqlite")]
    to: String,
    /// With --to sqlite: the team store to copy from (default: PROMPTLOOP_STORE_URL, else
    /// store.url).
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// With --to sqlite: when the project's SQLite file already holds rules, failures or
    /// runs, move it aside (promptloop.db.before-migrate-<time>, never deleted) instead of
    /// refusing.
    #[arg(long)]
    replace: bool,
    /// The config file (for store.url and store.project_id).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

/// Which store.
#[derive(Debug, Args)]
pub struct Target {
    /// The project whose store it is.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The user's store of global rules instead of the project's.
    #[arg(long)]
    global: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `repair` and `reset`.
#[derive(Debug, Args)]
pub struct FixArgs {
    #[command(flatten)]
    target: Target,
    /// Go ahead even though the store is healthy.
    #[arg(long)]
    force: bool,
}

/// Runs `promptloop store …`.
pub fn main(command: StoreCommand) -> ExitCode {
    finish(match command {
        StoreCommand::Check(t) => check(&t),
        StoreCommand::Repair(a) => repair(&a),
        StoreCommand::Reset(a) => reset(&a),
        StoreCommand::Migrate(a) => migrate(&a).map(|()| 0),
        StoreCommand::Sync(a) => sync(&a).map(|()| 0),
    })
}

fn db_path(t: &Target) -> Result<PathBuf, Failure> {
    if t.global {
        return crate::store::user_db_path(&settings::process_env).ok_or_else(|| {
            Failure::usage("find the user's store: neither XDG_DATA_HOME nor HOME is set")
        });
    }
    Ok(crate::store::project_db_path(&project_dir(&t.project_dir)?))
}

fn check(t: &Target) -> Result<u8, Failure> {
    let path = db_path(t)?;
    let report = health::check(&path);
    let mut out = std::io::stdout().lock();
    if t.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        );
    } else {
        print_check(&mut out, &report);
    }
    Ok(match report.verdict {
        Verdict::Healthy | Verdict::Missing => 0,
        Verdict::Damaged | Verdict::NewerSchema => EXIT_FAILED,
    })
}

fn print_check(out: &mut impl Write, r: &CheckReport) {
    let verdict = match r.verdict {
        Verdict::Healthy => "healthy",
        Verdict::Missing => "missing (the first run or learned rule creates it)",
        Verdict::Damaged => "DAMAGED",
        Verdict::NewerSchema => "written by a newer promptloop (left untouched; upgrade)",
    };
    let _ = writeln!(out, "store: {}", r.path.display());
    let _ = writeln!(out, "state: {verdict}");
    if let Some(bytes) = r.bytes {
        let _ = writeln!(out, "size: {bytes} bytes");
    }
    if let Some(v) = r.schema_version {
        let _ = writeln!(
            out,
            "schema version: {v} (this promptloop knows {})",
            r.known_version
        );
    }
    for p in &r.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    if !r.counts.is_empty() {
        let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "rows: {}", counts.join(", "));
    }
    if r.backups.is_empty() {
        let _ = writeln!(out, "backups: none");
    }
    for b in &r.backups {
        let _ = writeln!(
            out,
            "backup: {} ({} bytes, {})",
            b.path.display(),
            b.bytes,
            b.modified.as_deref().unwrap_or("time unknown")
        );
    }
    if r.verdict == Verdict::Damaged {
        let _ = writeln!(
            out,
            "`promptloop store repair` moves it aside and recovers what can be read; \
             `promptloop store reset` moves it aside and starts empty"
        );
    }
}

fn fix_failure(e: FixError) -> Failure {
    let code = match e {
        FixError::Healthy(_) | FixError::Missing(_) => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    Failure {
        message: e.to_string(),
        code,
    }
}

fn repair(a: &FixArgs) -> Result<u8, Failure> {
    let path = db_path(&a.target)?;
    let report = health::repair(&path, a.force).map_err(fix_failure)?;
    let mut out = std::io::stdout().lock();
    if a.target.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "moved the damaged store to {}",
        report.moved_to.display()
    );
    for p in &report.problems {
        let _ = writeln!(out, "it had: {p}");
    }
    if let Some(why) = &report.unreadable {
        let how = if report.schema_restored {
            "read what survives through a copy with a new store's schema pages"
        } else {
            "nothing could be read from it"
        };
        let _ = writeln!(out, "it cannot be opened as it is ({why}); {how}");
    }
    match &report.backup {
        Some(b) => {
            let _ = writeln!(out, "added the rows it lacked from {}", b.display());
        }
        None => {
            let _ = writeln!(out, "no readable backup to add from");
        }
    }
    let recovered: u64 = report
        .tables
        .iter()
        .map(|t| t.from_damaged + t.from_backup)
        .sum();
    if recovered == 0 {
        let _ = writeln!(
            out,
            "no rows could be recovered (none of its {} tables was readable)",
            report.tables.len()
        );
    }
    for t in report
        .tables
        .iter()
        .filter(|t| recovered > 0 && t.from_damaged + t.from_backup + t.read_errors > 0)
    {
        let _ = writeln!(
            out,
            "  {}: {} rows recovered, {} from the backup{}",
            t.table,
            t.from_damaged,
            t.from_backup,
            match (&t.first_error, t.read_errors) {
                (Some(e), n) => format!("; {n} unreadable stretch(es) skipped ({e})"),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(
        out,
        "new store: {} (integrity check: {}); rows on damaged pages that the backup did not \
         have are lost, the old file is kept",
        report.path.display(),
        report.integrity
    );
    Ok(0)
}

fn reset(a: &FixArgs) -> Result<u8, Failure> {
    let path = db_path(&a.target)?;
    let report = health::reset(&path, a.force).map_err(fix_failure)?;
    let mut out = std::io::stdout().lock();
    if a.target.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        );
    } else {
        let _ = writeln!(
            out,
            "moved the store to {}; {} is a new, empty store",
            report.moved_to.display(),
            report.path.display()
        );
    }
    Ok(0)
}

fn migrate(args: &MigrateArgs) -> Result<(), Failure> {
    use crate::store::postgres::{PgStore, conninfo};
    use crate::store::{RuleFilter, RuleStore, Scope, StoreChoice, StoreError, transfer};
    let project_dir = project_dir(&args.project_dir)?;
    let loaded = super::load_settings(args.config.as_deref())?;
    let project =
        crate::store::project_key(&project_dir, loaded.settings.store.project_id.as_deref());
    let failed = |e: StoreError| Failure {
        message: e.to_string(),
        code: EXIT_FAILED,
    };
    let connect = |url: &str| {
        PgStore::connect(url, &project, &settings::process_env).map_err(|e| match e {
            StoreError::Invalid(m) => Failure::usage(m),
            other => failed(other),
        })
    };
    let back = args.to.eq_ignore_ascii_case("sqlite");
    if !back && (args.from.is_some() || args.replace) {
        return Err(Failure::usage(
            "migrate the store: --from and --replace go with --to sqlite (from the team store \
             back to the project's SQLite file)",
        ));
    }
    let db = crate::store::project_db_path(&project_dir);
    let (done, from_shown, to_shown, team_rules, aside) = if back {
        let url = match (
            &args.from,
            StoreChoice::of(&project_dir, &loaded.settings.store, &settings::process_env),
        ) {
            (Some(url), _) => url.clone(),
            (None, StoreChoice::Postgres { url, .. }) => url,
            (None, StoreChoice::Sqlite) => {
                return Err(Failure::usage(
                    "migrate the store back: no team store to copy from; give --from URL or \
                     set store.url (or PROMPTLOOP_STORE_URL)",
                ));
            }
        };
        let from = connect(&url)?;
        let mut aside = None;
        if db.exists() {
            let held = transfer::counts(&crate::store::open_project(&project_dir).map_err(failed)?)
                .map_err(failed)?;
            if held != transfer::Counts::default() {
                if !args.replace {
                    return Err(Failure {
                        message: format!(
                            "migrate the store back: {} already holds {} rules, {} failures and \
                             {} runs; --replace moves it aside first (nothing was copied)",
                            db.display(),
                            held.rules,
                            held.failures,
                            held.runs
                        ),
                        code: EXIT_FAILED,
                    });
                }
                aside = Some(
                    health::move_aside(&db, "before-migrate").map_err(|e| Failure {
                        message: format!("move {} aside: {e}", db.display()),
                        code: EXIT_FAILED,
                    })?,
                );
            }
        }
        let to = crate::store::open_project(&project_dir).map_err(failed)?;
        let team = from
            .list(&RuleFilter::default())
            .map_err(failed)?
            .iter()
            .filter(|r| r.scope == Scope::Team)
            .count();
        let done = transfer::migrate(&from, &to).map_err(failed)?;
        (
            done,
            from.url().to_string(),
            db.display().to_string(),
            team,
            aside,
        )
    } else {
        let from = crate::store::open_project(&project_dir).map_err(failed)?;
        let to = connect(&args.to)?;
        let done = transfer::migrate(&from, &to).map_err(failed)?;
        (
            done,
            db.display().to_string(),
            conninfo::redact(&args.to),
            0,
            None,
        )
    };
    if args.json {
        let mut value = serde_json::to_value(&done).unwrap_or_default();
        value["from"] = from_shown.into();
        value["to"] = to_shown.into();
        value["project"] = project.clone().into();
        value["team_rules_left"] = team_rules.into();
        value["moved_aside"] = aside.map(|p| p.display().to_string()).into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    let c = &done.counts;
    if let Some(aside) = &aside {
        println!(
            "moved the SQLite file that was there to {}",
            aside.display()
        );
    }
    println!(
        "copied {from_shown} into {to_shown} (project {project}), every count the same in \
         both:\n  {} rules ({} provenance entries, learned {} times, {} validations, {} \
         feedback reports), {} failures, {} runs with {} attempts, {} file changes",
        c.rules,
        c.provenance,
        c.times_learned,
        c.validations,
        c.feedback,
        c.failures,
        c.runs,
        c.attempts,
        c.file_changes
    );
    for (old, new) in &done.renamed {
        println!("  {old} is {new} there (its id was taken)");
    }
    if back {
        if team_rules > 0 {
            println!("{team_rules} team rule(s) belong to no project and stay on the server only");
        }
        println!(
            "the team store is left as it was; unset store.url (and PROMPTLOOP_STORE_URL) to use \
             the SQLite file"
        );
    } else {
        println!("the SQLite store is left as it was; set store.url to use the team store");
    }
    Ok(())
}

fn sync(args: &SyncArgs) -> Result<(), Failure> {
    use crate::store::{StoreChoice, StoreError, offline, postgres::PgStore};
    let project_dir = project_dir(&args.project_dir)?;
    let loaded = super::load_settings(args.config.as_deref())?;
    let failed = |e: StoreError| Failure {
        message: e.to_string(),
        code: EXIT_FAILED,
    };
    let (url, project) =
        match StoreChoice::of(&project_dir, &loaded.settings.store, &settings::process_env) {
            StoreChoice::Postgres { url, project } => (url, project),
            StoreChoice::Sqlite => {
                return Err(Failure::usage(
                    "sync the team store: no team store is set (store.url or \
                     PROMPTLOOP_STORE_URL)",
                ));
            }
        };
    let store = PgStore::connect(&url, &project, &settings::process_env).map_err(|e| match e {
        StoreError::Invalid(m) => Failure::usage(m),
        other => failed(other),
    })?;
    let done = offline::sync(&project_dir, &store).map_err(failed)?;
    let left = offline::pending(&project_dir).map_err(failed)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "sent": done.sent,
                "already_applied": done.already,
                "pending": left,
                "failures": done.failures,
                "events": done.events,
                "runs": done.runs,
            })
        );
        return Ok(());
    }
    println!(
        "sent {} queued lesson(s) to {} (project {project}); {} the server had already; {left} \
         waiting\nsent {} failure(s) and {} event(s) of {} run(s) recorded offline",
        done.sent,
        store.url(),
        done.already,
        done.failures,
        done.events,
        done.runs
    );
    Ok(())
}
