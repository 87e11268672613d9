//! The rule store: every learned rule as an item with a stable id, its evidence and its
//! history, and the loop's record (runs, attempts, failures) beside it. Instruction files are
//! *rendered* from the store (see [`render`] and [`curate`]); the store decides what is
//! active and what fits a file's budget, the writer only replaces a managed section.
//!
//! Where it lives (see docs/rules.md):
//! - a project's store: `<project>/.promptloop/promptloop.db` (rules of scope `project`, and
//!   the project's runs, attempts and failures);
//! - the user's store: `$XDG_DATA_HOME/promptloop/promptloop.db`
//!   (`~/.local/share/promptloop/promptloop.db`), for rules of scope `global`.
//!
//! [`RuleStore`] is the seam: [`SqliteStore`] implements it; a server database for teams can
//! implement it too.

pub mod dedup;
pub mod evidence;
mod failure;
pub mod health;
mod legacy;
mod migrate;
pub mod offline;
mod open;
pub mod postgres;
pub mod render;
mod run_event;
pub mod search;
pub mod sqlite;
pub mod transfer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rules::format::Rule;
pub use failure::{FailureStatus, Recurrence, StoredFailure};
pub use legacy::open_project;
pub use open::{StoreChoice, open_for, project_key, send_queue, team_store_set};
pub use sqlite::SqliteStore;
pub use sqlite::feedback::{FeedbackCounts, FeedbackEntry};

/// The folder of promptloop's record inside a project (excluded from git through
/// `.git/info/exclude`).
pub const DIR_NAME: &str = ".promptloop";

/// The database's file name, in both places.
pub const DB_FILE: &str = "promptloop.db";

/// The project store's path: `<project>/.promptloop/promptloop.db`.
pub fn project_db_path(project_dir: &Path) -> PathBuf {
    project_dir.join(DIR_NAME).join(DB_FILE)
}

/// The user store's path: `$XDG_DATA_HOME/promptloop/promptloop.db`, else
/// `$HOME/.local/share/promptloop/promptloop.db`; `None` without either variable.
pub fn user_db_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match env("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env("HOME").filter(|v| !v.is_empty())?).join(".local/share"),
    };
    Some(base.join("promptloop").join(DB_FILE))
}

/// Where a rule is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for review (`promptloop rules approve`); written to no file.
    Proposed,
    /// Rendered into its target files (within their budgets).
    Active,
    /// Kept for its history; written to no file.
    Retired,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Active => "active",
            Status::Retired => "retired",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "proposed" => Some(Status::Proposed),
            "active" => Some(Status::Active),
            "retired" => Some(Status::Retired),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a rule is for one project or for every project of the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every project (lives in the user's store).
    Global,
    /// This project (lives in the project's store).
    #[default]
    Project,
    /// Every project of a team (lives in a team store on a server; see `postgres`).
    Team,
}

impl Scope {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Project => "project",
            Scope::Team => "team",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "global" => Some(Scope::Global),
            "project" => Some(Scope::Project),
            "team" => Some(Scope::Team),
            _ => None,
        }
    }
}

/// Where one arrival of a rule came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The failure it was learned from, if any.
    pub failure_id: Option<String>,
    /// `test_failure`, `planning_error`, … or `imported`, `hand_edit`.
    pub failure_type: String,
    /// `pytest`, `manual`, a file name for imports.
    pub source: String,
    /// The task the agent had.
    pub task: Option<String>,
    /// The teacher that wrote it.
    pub teacher: Option<String>,
    /// The teacher's model, where known.
    pub model: Option<String>,
    /// The run it came from.
    pub run_id: Option<String>,
    /// When (RFC 3339).
    pub learned_at: String,
    /// The wording it arrived in (differs from the rule's text after a merge).
    pub text: String,
}

/// A rule with its evidence, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRule {
    /// Stable, short, typable: `r-7f3a2c`.
    pub id: String,
    /// The rule itself.
    #[serde(flatten)]
    pub rule: Rule,
    /// Global or project.
    pub scope: Scope,
    /// The instruction files it is rendered into (paths relative to the project, or absolute).
    pub targets: Vec<String>,
    /// Proposed, active or retired.
    pub status: Status,
    /// Why it is proposed or retired (a conflict, a rejection, an undo).
    pub note: Option<String>,
    /// The active rule it contradicts, when flagged as a conflict.
    pub conflicts_with: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Last made active.
    pub activated_at: Option<String>,
    /// Last learned (first learned, or merged into).
    pub last_learned_at: String,
    /// How often this lesson arrived (1 when new; merges add one).
    pub times_learned: u32,
    /// How often a failure it came from recurred while it was active.
    pub recurrences: u32,
    /// How often a run that learned it then passed.
    pub times_validated: u32,
    /// Every arrival, oldest first.
    pub provenance: Vec<Provenance>,
}

impl StoredRule {
    /// The ranking used when a file's budget cannot hold every active rule: proven rules
    /// first (a run passed with them), then often learned ones, then recent ones. Integer
    /// evidence only, so a render does not change with the clock.
    pub fn value(&self) -> u64 {
        3 * u64::from(self.times_validated)
            + 2 * u64::from(self.times_learned)
            + u64::from(self.recurrences)
    }
}

/// A rule to learn.
#[derive(Clone, Debug)]
pub struct NewRule {
    /// The rule.
    pub rule: Rule,
    /// Global or project.
    pub scope: Scope,
    /// Target files.
    pub targets: Vec<String>,
    /// Where it came from.
    pub provenance: Provenance,
    /// `Active`, or `Proposed` in review mode.
    pub status: Status,
}

/// What [`RuleStore::learn`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LearnOutcome {
    /// A new rule was stored.
    Added {
        /// Its id.
        id: String,
        /// Active, or proposed in review mode.
        status: Status,
    },
    /// It says what a stored rule says: that rule's counters and provenance grew.
    Merged {
        /// The rule merged into.
        id: String,
        /// That rule's status (a retired rule stays retired).
        status: Status,
        /// How alike they are (Jaccard, 0..1).
        similarity: f64,
    },
    /// It contradicts an active rule: stored as proposed, with a note, for review.
    Conflict {
        /// The new, proposed rule.
        id: String,
        /// The active rule it contradicts.
        with: String,
    },
}

impl LearnOutcome {
    /// The rule the lesson ended up in.
    pub fn id(&self) -> &str {
        match self {
            LearnOutcome::Added { id, .. }
            | LearnOutcome::Merged { id, .. }
            | LearnOutcome::Conflict { id, .. } => id,
        }
    }
}

/// A change to a rule's fields (`promptloop rules edit`); `None` keeps the field.
#[derive(Clone, Debug, Default)]
pub struct RuleEdit {
    /// New category (`Some("")` clears it).
    pub category: Option<String>,
    /// New rule text.
    pub rule: Option<String>,
    /// New "when".
    pub when: Option<String>,
    /// New "why".
    pub why: Option<String>,
    /// New targets.
    pub targets: Option<Vec<String>>,
}

/// Which rules [`RuleStore::list`] returns.
#[derive(Clone, Debug, Default)]
pub struct RuleFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<Status>,
    /// Only rules rendered into this target.
    pub target: Option<String>,
}

/// One store change that a file change came from, kept so `rules undo` can revert it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreChange {
    /// The rule.
    pub rule_id: String,
    /// Its status before.
    pub status_before: Option<Status>,
    /// Its status after.
    pub status_after: Status,
    /// Its text before an edit (rule, when, why, category).
    pub text_before: Option<Rule>,
    /// Another rule merged into this one (`promptloop rules dedup --apply`), for undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeChange>,
}

impl StoreChange {
    /// A status change of `rule_id`.
    pub fn status(rule_id: String, before: Status, after: Status) -> StoreChange {
        StoreChange {
            rule_id,
            status_before: Some(before),
            status_after: after,
            text_before: None,
            merged: None,
        }
    }

    /// An edit of `rule_id` (status `status`) whose text was `before`.
    pub fn edited(rule_id: String, status: Status, before: Rule) -> StoreChange {
        StoreChange {
            text_before: Some(before),
            ..StoreChange::status(rule_id, status, status)
        }
    }

    /// `merge` into `rule_id` (status `status`), or its undo.
    pub fn merge(rule_id: String, status: Status, merge: MergeChange) -> StoreChange {
        StoreChange {
            merged: Some(merge),
            ..StoreChange::status(rule_id, status, status)
        }
    }
}

/// What merging a stored rule into another added to the rule kept, so undo can take it
/// back (and undoing the undo can add it again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeChange {
    /// The rule merged in (retired by the merge, with a note naming the rule kept).
    pub absorbed: String,
    /// Its times learned, recurrences and times validated, added to the rule kept.
    pub counts: [u32; 3],
    /// The provenance entries copied in start at this sequence number of the rule kept.
    pub provenance_from: i64,
    /// Targets the rule kept gained.
    pub targets_added: Vec<String>,
    /// True once undone.
    pub undone: bool,
}

/// One change to a managed section, as kept in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    /// Sequence number (0 before it is logged).
    pub seq: i64,
    /// The target, as rules name it.
    pub target: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why, in words ("learned r-7f3a2c", "approved r-…", "undo of #12").
    pub reason: String,
    /// The section's body before (`None`: there was no section).
    pub old_body: Option<String>,
    /// The body written.
    pub new_body: String,
    /// Rules shown in the new body.
    pub shown: Vec<String>,
    /// Active rules left out by the budget.
    pub hidden: usize,
    /// The store changes it came from.
    pub store_changes: Vec<StoreChange>,
    /// The log entry that undid this one.
    pub undone_by: Option<i64>,
}

/// A run, as `promptloop history` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// The task.
    pub task: String,
    /// Agent name.
    pub agent: Option<String>,
    /// Teacher name.
    pub teacher: Option<String>,
    /// Started (RFC 3339, or from the run id for imported runs).
    pub started_at: Option<String>,
    /// `passed`, `failed`, `interrupted`, `error`; `None` while running or cut off.
    pub outcome: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Rules learned.
    pub rules_learned: u32,
    /// Failures left pending.
    pub pending: u32,
    /// Agent cost in US dollars.
    pub cost_usd: f64,
    /// Wall-clock time.
    pub duration_ms: Option<u64>,
    /// Why it ended.
    pub message: Option<String>,
}

/// One attempt of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AttemptRow {
    /// Run id.
    pub run_id: String,
    /// 1-based.
    pub attempt: u32,
    /// How the agent ended (`success`, `timed_out`, …).
    pub agent_status: Option<String>,
    /// Files the agent changed.
    pub changed_files: u32,
    /// `passed`, `failed`, `timed_out`, …
    pub tests_outcome: Option<String>,
    /// Failing tests.
    pub failing: u32,
    /// The failure captured.
    pub failure_id: Option<String>,
    /// The rule it led to.
    pub rule_id: Option<String>,
    /// Whether its changes were undone before a retry.
    pub reverted: bool,
}

/// Errors of the store. Messages are lowercase fragments meant to follow "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("open the rule store {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a readable database: not SQLite, cut short or corrupt.
    #[error("{}", health::damaged_message(path, cause, backup.as_deref()))]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite (or the file's header) says is wrong.
        cause: String,
        /// The newest backup beside it, if any.
        backup: Option<PathBuf>,
    },
    /// The database was written by a newer promptloop.
    #[error(
        "open the rule store {}: its schema version is {found}, newer than the {known} this \
         promptloop knows; upgrade promptloop (the database was left untouched)",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// The team store's server could not be reached (the message names its URL redacted).
    #[error("{0}")]
    Unreachable(String),
    /// The team store's server refused a query (the message names no password).
    #[error("use the team store: {0}")]
    Server(String),
    /// A query failed.
    #[error("use the rule store: {0}{hint}", hint = health::damage_hint(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data could not be decoded.
    #[error("read the rule store: {0}")]
    Corrupt(String),
    /// No rule has that id (or id prefix).
    #[error("find rule {0}: no such rule (`promptloop rules list` shows the ids)")]
    NotFound(String),
    /// The id prefix matches several rules.
    #[error("find rule {0}: the id is ambiguous ({1}); type more of it")]
    Ambiguous(String, String),
    /// The request does not make sense (empty rule text, bad status change).
    #[error("{0}")]
    Invalid(String),
    /// The legacy `.promptloop/` files could not be imported.
    #[error("import {}: {message}", path.display())]
    Import {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The store: rules with their evidence, the file-change log, and the loop's record.
pub trait RuleStore {
    /// Learns `new`: merges it into a stored rule that says the same, flags it as a conflict
    /// with an active rule it contradicts, or adds it.
    fn learn(
        &self,
        new: NewRule,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<LearnOutcome, StoreError>;
    /// Stores a rule as given (imports); its id is kept unless taken, then a new one is made.
    fn insert(&self, rule: &StoredRule) -> Result<String, StoreError>;
    /// The rule with this id or unique id prefix.
    fn get(&self, id: &str) -> Result<StoredRule, StoreError>;
    /// Rules matching `filter`, oldest first.
    fn list(&self, filter: &RuleFilter) -> Result<Vec<StoredRule>, StoreError>;
    /// Changes a rule's status (and note); returns the change for the log.
    fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
    ) -> Result<StoreChange, StoreError>;
    /// Edits a rule's text or targets; returns the change for the log.
    fn edit(&self, id: &str, edit: &RuleEdit) -> Result<StoreChange, StoreError>;
    /// Active rules rendered into `target`, most valuable first.
    fn ranked_for_target(&self, target: &str) -> Result<Vec<StoredRule>, StoreError>;
    /// Every target named by a rule or by the log.
    fn targets(&self) -> Result<Vec<String>, StoreError>;
    /// Appends a file change to the log; returns its sequence number.
    fn log_file_change(&self, change: &FileChange) -> Result<i64, StoreError>;
    /// File changes, newest first (`target` limits them to one file).
    fn file_changes(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileChange>, StoreError>;
    /// Marks a logged change as undone by another.
    fn mark_undone(&self, seq: i64, by: i64) -> Result<(), StoreError>;
    /// Saves (inserts or updates) a failure; a new failure whose failing tests match an
    /// active rule's failures counts as a recurrence of that rule.
    fn save_failure(&self, failure: &StoredFailure) -> Result<(), StoreError>;
    /// Every failure, oldest first.
    fn failures(&self) -> Result<Vec<StoredFailure>, StoreError>;
    /// Records one event of a run (as its JSON), updating the run and attempt rows.
    fn record_event(&self, run_id: &str, event: &serde_json::Value) -> Result<(), StoreError>;
    /// Runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError>;
    /// A run's attempts, in order.
    fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError>;
    /// Every event of the project's runs as recorded: (run id, sequence number, event), by
    /// run and in order.
    fn events(&self) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError>;
    /// Records a validation (`promptloop rules validate`); returns its sequence number.
    fn record_validation(&self, v: &evidence::Validation) -> Result<i64, StoreError>;
    /// Every validation of `rule_id` (or of every rule), oldest first.
    fn validations(&self, rule_id: Option<&str>) -> Result<Vec<evidence::Validation>, StoreError>;
    /// The latest validation of each validated rule, by id.
    fn verdicts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, evidence::Validation>, StoreError> {
        Ok(self
            .validations(None)?
            .into_iter()
            .map(|v| (v.rule_id.clone(), v))
            .collect())
    }
    /// Records that the rule with this id (or unique prefix) helped or misled; returns its
    /// full id and its counts after the report.
    fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, FeedbackCounts), StoreError>;
    /// Keeps a feedback report as it was made (its time and source; `store migrate`).
    fn keep_feedback(&self, entry: &FeedbackEntry) -> Result<(), StoreError>;
    /// The feedback counts of one rule (by its full id).
    fn feedback_counts(&self, rule_id: &str) -> Result<FeedbackCounts, StoreError>;
    /// The feedback counts of every rule that has feedback.
    fn all_feedback_counts(
        &self,
    ) -> Result<std::collections::HashMap<String, FeedbackCounts>, StoreError>;
    /// The newest `limit` feedback reports on one rule (by its full id), newest first.
    fn feedback_log(&self, rule_id: &str, limit: usize) -> Result<Vec<FeedbackEntry>, StoreError>;
    /// When each failure that counted as a recurrence of a rule was captured.
    fn recurrence_times(&self) -> Result<Vec<String>, StoreError>;
    /// How the analysed rule `a` (text `text`) relates to every stored rule it may relate
    /// to, with `judge` asked about the closest unsure ones (`promptloop rules dedup`).
    fn relations(
        &self,
        a: &dedup::Analysis,
        text: &str,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<Vec<(sqlite::Candidate, dedup::Verdict)>, StoreError>;
    /// Holds `id` for review as contradicting `with` (`rules dedup --apply`): it becomes
    /// proposed, with a note and `conflicts_with`; the change, for the log and undo.
    fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError>;
    /// Merges stored rule `absorb` into `keep` (counts, provenance, targets; `absorb` is
    /// retired with a note): the changes, for the log and undo.
    fn merge_rules(&self, keep: &str, absorb: &str) -> Result<Vec<StoreChange>, StoreError>;
    /// Takes back (or, for one already undone, applies again) the merge a change records;
    /// returns the change that does so.
    fn revert_merge(&self, change: &StoreChange) -> Result<StoreChange, StoreError>;
}

/// The current time in RFC 3339 (seconds), the store's timestamp format.
pub(crate) fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}
