//! The project's record under `.promptloop/`: the store's database (runs, attempts, every
//! event, every failure with its status, so a failure the teacher could not analyse is kept
//! for `promptloop learn`; and the project's rules), plus each run's events as JSON lines
//! (appended as they happen, so a crash loses nothing) and each attempt's test output.
//!
//! Layout (one folder per project, excluded from git through `.git/info/exclude`):
//! ```text
//! .promptloop/
//!   promptloop.db                       the store (see `store`)
//!   runs/<run-id>/events.jsonl
//!   runs/<run-id>/attempt-<n>-tests.log
//!   failures/<failure-id>.json          written by versions before the store; imported
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::events::Event;
use crate::store::{
    self, DIR_NAME, FailureStatus, Recurrence, RuleStore, StoreError, StoredFailure,
};

/// A record that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file of the record.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store's database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordError {
    let path = path.to_path_buf();
    move |source| RecordError::Io {
        action,
        path,
        source,
    }
}

/// The `.promptloop/` folder of one project.
pub struct Record {
    dir: PathBuf,
    store: Rc<dyn RuleStore>,
}

impl Record {
    /// Opens (creating) the record folder in `project_dir`.
    pub fn open(project_dir: &Path) -> Result<Record, RecordError> {
        Self::create_dirs(project_dir)?;
        let store = Rc::new(store::open_project(project_dir)?);
        Ok(Record {
            dir: project_dir.join(DIR_NAME),
            store,
        })
    }

    /// Opens the record folder with the store the settings choose (`store.url`: a team
    /// store on a server; else the project's SQLite file).
    pub fn open_with(
        project_dir: &Path,
        settings: &crate::settings::StoreSettings,
    ) -> Result<Record, RecordError> {
        Self::create_dirs(project_dir)?;
        let store: Rc<dyn RuleStore> = Rc::from(store::open_for(project_dir, settings)?);
        Ok(Record {
            dir: project_dir.join(DIR_NAME),
            store,
        })
    }

    fn create_dirs(project_dir: &Path) -> Result<(), RecordError> {
        let dir = project_dir.join(DIR_NAME);
        for sub in ["runs", "failures"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        }
        Ok(())
    }

    /// The project's store (rules, runs, failures).
    pub fn store(&self) -> &dyn RuleStore {
        &*self.store
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new run's event log.
    pub fn start_run(&self, run_id: &str) -> Result<RunLog, RecordError> {
        let dir = self.dir.join("runs").join(run_id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = dir.join("events.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        Ok(RunLog {
            dir,
            path,
            file,
            run_id: run_id.to_string(),
            store: Rc::clone(&self.store),
        })
    }

    /// Saves a failure in the store (one transaction: a reader sees the old or the new one).
    pub fn save_failure(&self, failure: &StoredFailure) -> Result<(), RecordError> {
        Ok(self.store.save_failure(failure)?)
    }

    /// Every stored failure, oldest first.
    pub fn failures(&self) -> Result<Vec<StoredFailure>, RecordError> {
        Ok(self.store.failures()?)
    }

    /// Counts a recurrence on every learned failure that shares a fingerprint with the new
    /// failure `new_id`, and returns them.
    pub fn note_recurrences(
        &self,
        fingerprints: &[String],
        new_id: &str,
    ) -> Result<Vec<Recurrence>, RecordError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for mut stored in self.failures()? {
            // A repeat is counted on the original it repeats, not on itself.
            if stored.status != FailureStatus::Learned
                || stored.context.id == new_id
                || stored.recurrence_of.is_some()
            {
                continue;
            }
            let Some(shared) = stored
                .fingerprints
                .iter()
                .find(|f| fingerprints.contains(f))
                .cloned()
            else {
                continue;
            };
            // The same failure saved twice (a retry of `learn`) is not a recurrence.
            if stored.last_recurrence.as_deref() == Some(new_id) {
                continue;
            }
            stored.recurrences += 1;
            stored.last_recurrence = Some(new_id.to_string());
            self.save_failure(&stored)?;
            found.push(Recurrence {
                original: stored.context.id.clone(),
                fingerprint: shared,
                rule: stored.rule.clone(),
                count: stored.recurrences,
            });
        }
        Ok(found)
    }
}

/// One run's append-only event log.
pub struct RunLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    run_id: String,
    store: Rc<dyn RuleStore>,
}

impl RunLog {
    /// Appends one event as a JSON line (flushed) and records it in the store.
    pub fn append(&mut self, event: &Event) -> Result<(), RecordError> {
        let value = serde_json::to_value(event)
            .map_err(|e| io_err("encode", &self.path)(std::io::Error::other(e)))?;
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(io_err("append to", &self.path))?;
        Ok(self.store.record_event(&self.run_id, &value)?)
    }

    /// Keeps a text artefact (a test log) beside the events.
    pub fn save_text(&self, name: &str, text: &str) -> Result<PathBuf, RecordError> {
        let path = self.dir.join(name);
        fs::write(&path, text).map_err(io_err("write", &path))?;
        Ok(path)
    }

    /// The event log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new id: the local time and a few random-ish hex digits (`20261124-215501-3fa2`).
pub fn new_id() -> String {
    let now = chrono::Local::now();
    let nanos = now.timestamp_subsec_nanos();
    let mix = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{mix:04x}", now.format("%Y%m%d-%H%M%S"))
}
