//! Import of what `.promptloop/` held before the store: `runs/<id>/events.jsonl` and
//! `failures/<id>.json`. The files are left where they are (nothing is deleted); a file
//! that cannot be read is skipped and stays on disk for a person to look at.

use std::fs;
use std::path::Path;

use super::sqlite::{ImportCounts, SqliteStore};
use super::{DIR_NAME, RuleStore, StoreError, StoredFailure};

/// Opens a project's store and, when it is new, imports what `.promptloop/` held from
/// earlier versions (run logs and failures).
pub fn open_project(project_dir: &Path) -> Result<SqliteStore, StoreError> {
    let store = SqliteStore::open(&super::project_db_path(project_dir))?;
    if store.created() {
        import_record(&store, &project_dir.join(DIR_NAME))?;
    }
    Ok(store)
}

/// Imports the run logs and failures under `dir` (a project's `.promptloop/`).
pub(crate) fn import_record(store: &SqliteStore, dir: &Path) -> Result<ImportCounts, StoreError> {
    let mut counts = ImportCounts::default();
    let runs = dir.join("runs");
    if let Ok(entries) = fs::read_dir(&runs) {
        let mut run_dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        run_dirs.sort();
        for run_dir in run_dirs {
            let Some(run_id) = run_dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(run_dir.join("events.jsonl")) else {
                continue;
            };
            let mut any = false;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A line cut by a crash is skipped; the rest of the log still counts.
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
                    store.record_event(run_id, &event)?;
                    any = true;
                }
            }
            counts.runs += usize::from(any);
        }
    }
    let failures = dir.join("failures");
    if let Ok(entries) = fs::read_dir(&failures) {
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .collect();
        files.sort();
        for path in files {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(failure) = serde_json::from_str::<StoredFailure>(&text) {
                store.save_failure(&failure)?;
                counts.failures += 1;
            }
        }
    }
    store.set_meta(
        "legacy_import",
        &format!(
            "{} runs, {} failures imported from {}",
            counts.runs,
            counts.failures,
            dir.display()
        ),
    )?;
    Ok(counts)
}
