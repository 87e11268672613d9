//! Retention: which runs keep their snapshot refs (`refs/promptloop/runs/<run>/…`) and their
//! record folder (`.promptloop/runs/<run>/`), and pruning the others.
//!
//! Only those two things are ever removed: refs under `refs/promptloop/runs/` (through
//! [`Repo::delete_refs`], which refuses any other ref) and folders directly under
//! `.promptloop/runs/`. The store (rules, failures, runs, events) is not touched, and `git gc`
//! is not run: the snapshots' objects stay in the repository until git's own gc expires them.
//!
//! A run is kept when any of these holds (so "the last 100 runs or 30 days" keeps whichever
//! is more): it is among the `keep_runs` most recent; it started within `keep_days`; one of
//! its failures is still pending (`promptloop learn` may still want its snapshots); it has no
//! outcome and started less than a day ago (it may still be running); its start is unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
use serde::Serialize;

use crate::git::{GitError, Repo};
use crate::store::{DIR_NAME, FailureStatus};
use crate::store::{RuleStore, StoreError};

/// The default policy: the last 100 runs or 30 days, whichever keeps more.
pub const DEFAULT_KEEP_RUNS: u32 = 100;
/// See [`DEFAULT_KEEP_RUNS`].
pub const DEFAULT_KEEP_DAYS: u32 = 30;

/// Where every run's snapshot refs live.
pub const RUN_REF_PREFIX: &str = "refs/promptloop/runs/";

/// A run without an outcome that started less than this many hours ago may still be running.
const MAY_BE_RUNNING_HOURS: i64 = 24;

/// How many runs to keep; `None` in both fields keeps everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Keep the artefacts of this many most recent runs.
    pub keep_runs: Option<u32>,
    /// Keep the artefacts of runs started within this many days.
    pub keep_days: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_runs: Some(DEFAULT_KEEP_RUNS),
            keep_days: Some(DEFAULT_KEEP_DAYS),
        }
    }
}

/// How [`prune`] goes about it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Work out and report what would go; remove nothing.
    pub dry_run: bool,
    /// Also consider runs whose refs exist but that this project's record does not know
    /// (its `.promptloop/` was deleted, or they are another project's in the same
    /// repository); by default they are left alone and listed.
    pub unrecorded: bool,
}

/// Why a run was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Among the `keep_runs` most recent.
    Recent,
    /// Started within `keep_days`.
    Young,
    /// A failure of it is still pending.
    Pending,
    /// No outcome yet and started less than a day ago.
    MayBeRunning,
    /// Its start time could not be told.
    StartUnknown,
    /// The policy sets no limit.
    NoLimit,
}

/// One run's artefacts and what happens to them.
#[derive(Clone, Debug, Serialize)]
pub struct RunEntry {
    /// The run id.
    pub id: String,
    /// When it started (RFC 3339), where known.
    pub started_at: Option<String>,
    /// Its refs under `refs/promptloop/runs/<id>/`.
    pub refs: Vec<String>,
    /// Its folder under `.promptloop/runs/`, if it has one.
    pub folder: Option<PathBuf>,
    /// Bytes of the files in that folder.
    pub folder_bytes: u64,
    /// Why it is kept; empty: it is pruned.
    pub kept: Vec<Keep>,
}

/// What [`prune`] removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nothing was removed.
    pub dry_run: bool,
    /// The policy applied.
    pub policy: Policy,
    /// Runs considered.
    pub runs: usize,
    /// Runs kept.
    pub kept: usize,
    /// Runs kept beyond the policy because a failure of theirs is pending.
    pub kept_pending: Vec<String>,
    /// Runs kept beyond the policy because they may still be running.
    pub kept_running: Vec<String>,
    /// The runs pruned, oldest first.
    pub pruned: Vec<RunEntry>,
    /// Refs deleted (would be, in a dry run).
    pub refs_removed: usize,
    /// Folders removed (would be, in a dry run).
    pub folders_removed: usize,
    /// Bytes of those folders: freed at once.
    pub folder_bytes: u64,
    /// Bytes of the objects only the pruned refs reached: freed when git's own gc expires
    /// them (promptloop does not run it). `None` when git cannot tell.
    pub object_bytes: Option<u64>,
    /// Runs with refs that this project's record does not know, left alone.
    pub unrecorded: Vec<String>,
    /// What could not be removed (the rest was).
    pub errors: Vec<String>,
}

/// Why retention could not work out what to prune.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Listing or measuring the refs.
    #[error(transparent)]
    Git(#[from] GitError),
    /// Reading the runs and failures.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listing the record's folders.
    #[error("read {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One run as retention sees it.
#[derive(Clone, Debug, Default)]
struct Candidate {
    id: String,
    start: Option<DateTime<Local>>,
    finished: bool,
    pending: bool,
}

/// Works out which runs of the project at `project_dir` to prune under `policy` and, unless
/// `options.dry_run`, deletes their refs and folders. `store` is the project's store (`None`
/// when the project has none: then every run with refs is unrecorded).
pub fn prune(
    project_dir: &Path,
    repo: &Repo,
    store: Option<&dyn RuleStore>,
    policy: &Policy,
    options: &Options,
) -> Result<Report, RetentionError> {
    prune_at(project_dir, repo, store, policy, options, Local::now())
}

/// [`prune`] at a given time (tests).
pub fn prune_at(
    project_dir: &Path,
    repo: &Repo,
    store: Option<&dyn RuleStore>,
    policy: &Policy,
    options: &Options,
    now: DateTime<Local>,
) -> Result<Report, RetentionError> {
    let runs_dir = project_dir.join(DIR_NAME).join("runs");
    let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in repo.list_refs(RUN_REF_PREFIX.trim_end_matches('/'))? {
        if let Some((id, _)) = name
            .strip_prefix(RUN_REF_PREFIX)
            .and_then(|rest| rest.split_once('/'))
        {
            refs.entry(id.to_string()).or_default().push(name);
        }
    }
    let folders = run_folders(&runs_dir)?;

    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    if let Some(store) = store {
        for row in store.runs(i64::MAX as usize)? {
            let start =
                start_of(&row.id).or_else(|| row.started_at.as_deref().and_then(parse_time));
            candidates.insert(
                row.id.clone(),
                Candidate {
                    id: row.id,
                    start,
                    finished: row.outcome.is_some(),
                    pending: false,
                },
            );
        }
        for failure in store.failures()? {
            if failure.status == FailureStatus::Pending
                && let Some(run) = &failure.context.run_id
                && let Some(c) = candidates.get_mut(run)
            {
                c.pending = true;
            }
        }
    }
    for (id, path) in &folders {
        candidates.entry(id.clone()).or_insert_with(|| Candidate {
            id: id.clone(),
            start: start_of(id).or_else(|| modified(path)),
            ..Candidate::default()
        });
    }
    let mut unrecorded = Vec::new();
    for id in refs.keys() {
        if candidates.contains_key(id) {
            continue;
        }
        if options.unrecorded {
            candidates.insert(
                id.clone(),
                Candidate {
                    id: id.clone(),
                    start: start_of(id),
                    ..Candidate::default()
                },
            );
        } else {
            unrecorded.push(id.clone());
        }
    }

    let mut ordered: Vec<Candidate> = candidates.into_values().collect();
    let decisions = select(&mut ordered, policy, now);
    let mut report = Report {
        dry_run: options.dry_run,
        policy: *policy,
        runs: ordered.len(),
        kept: 0,
        kept_pending: Vec::new(),
        kept_running: Vec::new(),
        pruned: Vec::new(),
        refs_removed: 0,
        folders_removed: 0,
        folder_bytes: 0,
        object_bytes: Some(0),
        unrecorded,
        errors: Vec::new(),
    };
    for (run, kept) in ordered.iter().zip(decisions) {
        let by_policy = kept
            .iter()
            .any(|k| matches!(k, Keep::Recent | Keep::Young | Keep::NoLimit));
        if !kept.is_empty() {
            report.kept += 1;
            if !by_policy && kept.contains(&Keep::Pending) {
                report.kept_pending.push(run.id.clone());
            }
            if !by_policy && kept.contains(&Keep::MayBeRunning) {
                report.kept_running.push(run.id.clone());
            }
            continue;
        }
        let run_refs = refs.get(&run.id).cloned().unwrap_or_default();
        let folder = folders.get(&run.id).cloned();
        // A run whose artefacts are already gone (pruned before, or only in the store) has
        // nothing to remove.
        if run_refs.is_empty() && folder.is_none() {
            continue;
        }
        let folder_bytes = folder.as_deref().map_or(0, tree_size);
        report.pruned.push(RunEntry {
            id: run.id.clone(),
            started_at: run.start.map(|t| t.to_rfc3339()),
            refs: run_refs,
            folder,
            folder_bytes,
            kept,
        });
    }
    report.pruned.reverse();
    report.refs_removed = report.pruned.iter().map(|r| r.refs.len()).sum();
    report.folders_removed = report.pruned.iter().filter(|r| r.folder.is_some()).count();
    report.folder_bytes = report.pruned.iter().map(|r| r.folder_bytes).sum();
    let doomed: Vec<String> = report
        .pruned
        .iter()
        .flat_map(|r| r.refs.iter().cloned())
        .collect();
    // Measured while the refs still exist; a measurement that fails costs only the figure.
    report.object_bytes = repo.exclusive_disk_usage(&doomed).unwrap_or(None);
    if options.dry_run {
        return Ok(report);
    }
    if let Err(e) = repo.delete_refs(&doomed) {
        // Nothing of a failed batch is deleted; the folders stay with their refs.
        report.errors.push(format!("delete the snapshot refs: {e}"));
        report.refs_removed = 0;
        report.folders_removed = 0;
        report.folder_bytes = 0;
        return Ok(report);
    }
    for run in &report.pruned {
        let Some(folder) = &run.folder else { continue };
        if let Err(e) = fs::remove_dir_all(folder) {
            report
                .errors
                .push(format!("remove {}: {e}", folder.display()));
        }
    }
    Ok(report)
}

/// The decision for each run, after sorting `runs` newest first: why it is kept (empty:
/// prune it).
fn select(runs: &mut [Candidate], policy: &Policy, now: DateTime<Local>) -> Vec<Vec<Keep>> {
    // Newest first; an unknown start sorts last (and is kept).
    runs.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| b.id.cmp(&a.id)));
    let no_limit = policy.keep_runs.is_none() && policy.keep_days.is_none();
    let cutoff = policy
        .keep_days
        .map(|d| now - chrono::Duration::days(i64::from(d)));
    let running_since = now - chrono::Duration::hours(MAY_BE_RUNNING_HOURS);
    runs.iter()
        .enumerate()
        .map(|(rank, run)| {
            let mut kept = Vec::new();
            if no_limit {
                kept.push(Keep::NoLimit);
            }
            if policy.keep_runs.is_some_and(|n| rank < n as usize) {
                kept.push(Keep::Recent);
            }
            match run.start {
                Some(start) => {
                    if cutoff.is_some_and(|c| start >= c) {
                        kept.push(Keep::Young);
                    }
                    if !run.finished && start >= running_since {
                        kept.push(Keep::MayBeRunning);
                    }
                }
                None => kept.push(Keep::StartUnknown),
            }
            if run.pending {
                kept.push(Keep::Pending);
            }
            kept
        })
        .collect()
}

/// The folders directly under `.promptloop/runs/` whose names can be run ids.
fn run_folders(runs_dir: &Path) -> Result<BTreeMap<String, PathBuf>, RetentionError> {
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(runs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(RetentionError::Io {
                path: runs_dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // A real folder (not a link to somewhere else) with a run id's name.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && run_id_like(&name) {
            out.insert(name, entry.path());
        }
    }
    Ok(out)
}

/// `20261124-215501-3fa2` and other plain names: letters, digits, `-`, `_`, `.` (not first).
fn run_id_like(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The start a run id made by `record::new_id` carries (local time).
fn start_of(id: &str) -> Option<DateTime<Local>> {
    let stamp = id.get(..15)?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    Local.from_local_datetime(&naive).earliest()
}

/// A stored start: RFC 3339, or a local time without offset.
fn parse_time(s: &str) -> Option<DateTime<Local>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Local));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()?;
    Local.from_local_datetime(&naive).earliest()
}

/// A folder's modification time.
fn modified(path: &Path) -> Option<DateTime<Local>> {
    let time = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(DateTime::<Local>::from(time))
}

/// Bytes of the files under `dir`, links not followed.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Local> {
        start_of(s).unwrap()
    }

    fn run(id: &str, finished: bool, pending: bool) -> Candidate {
        Candidate {
            id: id.to_string(),
            start: start_of(id),
            finished,
            pending,
        }
    }

    fn kept_ids(runs: &mut [Candidate], policy: Policy, now: &str) -> Vec<String> {
        let decisions = select(runs, &policy, at(now));
        let mut ids: Vec<String> = runs
            .iter()
            .zip(decisions)
            .filter(|(_, k)| !k.is_empty())
            .map(|(r, _)| r.id.clone())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn whichever_policy_keeps_more_wins() {
        // One run a day for ten days, all finished.
        let mut runs: Vec<Candidate> = (1..=10)
            .map(|d| run(&format!("202611{d:02}-120000-000{}", d % 10), true, false))
            .collect();
        let now = "20261110-130000";
        // 3 most recent, or 5 days: 5 days keeps more (6th to 10th).
        let both = Policy {
            keep_runs: Some(3),
            keep_days: Some(5),
        };
        let kept = kept_ids(&mut runs, both, now);
        assert_eq!(kept.len(), 5, "{kept:?}");
        assert!(kept[0].starts_with("20261106"), "{kept:?}");
        // 7 most recent, or 2 days: 7 runs keep more.
        let more_runs = Policy {
            keep_runs: Some(7),
            keep_days: Some(2),
        };
        assert_eq!(kept_ids(&mut runs, more_runs, now).len(), 7);
        // Only a count.
        let count = Policy {
            keep_runs: Some(2),
            keep_days: None,
        };
        let kept = kept_ids(&mut runs, count, now);
        assert_eq!(kept, vec!["20261109-120000-0009", "20261110-120000-0000"]);
        // No limit keeps all.
        let none = Policy {
            keep_runs: None,
            keep_days: None,
        };
        assert_eq!(kept_ids(&mut runs, none, now).len(), 10);
    }

    #[test]
    fn pending_unfinished_and_undated_runs_are_kept_beyond_the_policy() {
        let mut runs = vec![
            run("20260101-000000-aaaa", true, true), // old, pending failure
            run("20260102-000000-bbbb", true, false), // old: pruned
            run("20261110-120000-cccc", false, false), // an hour ago, no outcome: running
            run("20261101-120000-dddd", false, false), // no outcome, but 9 days old: crashed
            Candidate {
                id: "imported".into(),
                ..Candidate::default()
            },
            run("20261110-125900-eeee", true, false), // newest
        ];
        let policy = Policy {
            keep_runs: Some(1),
            keep_days: None,
        };
        let decisions = select(&mut runs, &policy, at("20261110-130000"));
        let by_id: BTreeMap<&str, &Vec<Keep>> = runs
            .iter()
            .map(|r| r.id.as_str())
            .zip(decisions.iter())
            .collect();
        assert_eq!(by_id["20261110-125900-eeee"], &vec![Keep::Recent]);
        assert_eq!(by_id["20261110-120000-cccc"], &vec![Keep::MayBeRunning]);
        assert_eq!(by_id["20260101-000000-aaaa"], &vec![Keep::Pending]);
        assert_eq!(by_id["imported"], &vec![Keep::StartUnknown]);
        assert!(by_id["20260102-000000-bbbb"].is_empty());
        assert!(by_id["20261101-120000-dddd"].is_empty());
    }

    #[test]
    fn run_ids_and_stored_times_parse() {
        assert_eq!(
            start_of("20261124-215501-3fa2").map(|t| t.format("%F %T").to_string()),
            Some("2026-11-24 21:55:01".into())
        );
        assert!(start_of("capture-1").is_none());
        assert!(parse_time("2026-11-24T21:55:01+01:00").is_some());
        assert!(parse_time("2026-11-24T21:55:01").is_some());
        assert!(run_id_like("20261124-215501-3fa2"));
        assert!(!run_id_like(".."));
        assert!(!run_id_like("a/b"));
    }
}
