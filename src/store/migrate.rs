//! Versioned schema migrations, tracked in SQLite's `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the schema one version up and runs in its own
//! transaction, so a crash leaves the database at a whole version. A database whose version
//! is above what this binary knows is refused before anything is written to it.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only: never edit a
/// migration that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: rules with their token index, the file-change log, and the loop's record.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE rules (
    id              TEXT PRIMARY KEY,
    category        TEXT,
    rule            TEXT NOT NULL,
    "when"          TEXT NOT NULL,
    why             TEXT NOT NULL,
    scope           TEXT NOT NULL,
    status          TEXT NOT NULL,
    note            TEXT,
    conflicts_with  TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    activated_at    TEXT,
    last_learned_at TEXT NOT NULL,
    times_learned   INTEGER NOT NULL DEFAULT 1,
    recurrences     INTEGER NOT NULL DEFAULT 0,
    times_validated INTEGER NOT NULL DEFAULT 0,
    features        TEXT NOT NULL
);
CREATE INDEX rules_status ON rules(status);
CREATE TABLE rule_targets (
    rule_id TEXT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
    target  TEXT NOT NULL,
    PRIMARY KEY (rule_id, target)
) WITHOUT ROWID;
CREATE INDEX rule_targets_target ON rule_targets(target);
CREATE TABLE rule_tokens (
    token   TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    PRIMARY KEY (token, rule_id)
) WITHOUT ROWID;
CREATE TABLE token_df (
    token TEXT PRIMARY KEY,
    df    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE provenance (
    rule_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    failure_id   TEXT,
    failure_type TEXT NOT NULL,
    source       TEXT NOT NULL,
    task         TEXT,
    teacher      TEXT,
    model        TEXT,
    run_id       TEXT,
    learned_at   TEXT NOT NULL,
    text         TEXT NOT NULL,
    PRIMARY KEY (rule_id, seq)
);
CREATE INDEX provenance_failure ON provenance(failure_id);
CREATE INDEX provenance_run ON provenance(run_id);
CREATE TABLE file_changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    target        TEXT NOT NULL,
    at            TEXT NOT NULL,
    reason        TEXT NOT NULL,
    old_body      TEXT,
    new_body      TEXT NOT NULL,
    shown         TEXT NOT NULL,
    hidden        INTEGER NOT NULL,
    store_changes TEXT NOT NULL,
    undone_by     INTEGER
);
CREATE INDEX file_changes_target ON file_changes(target, seq);
CREATE TABLE failures (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    failure_type TEXT NOT NULL,
    source       TEXT NOT NULL,
    run_id       TEXT,
    attempt      INTEGER,
    captured_at  TEXT NOT NULL,
    data         TEXT NOT NULL
);
CREATE TABLE failure_keys (
    key        TEXT NOT NULL,
    failure_id TEXT NOT NULL,
    PRIMARY KEY (key, failure_id)
) WITHOUT ROWID;
CREATE TABLE rule_recurrences (
    rule_id    TEXT NOT NULL,
    failure_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, failure_id)
) WITHOUT ROWID;
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    task          TEXT NOT NULL DEFAULT '',
    agent         TEXT,
    teacher       TEXT,
    rules_file    TEXT,
    started_at    TEXT,
    outcome       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    rules_learned INTEGER NOT NULL DEFAULT 0,
    pending       INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL NOT NULL DEFAULT 0,
    duration_ms   INTEGER,
    message       TEXT
);
CREATE TABLE attempts (
    run_id        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    agent_status  TEXT,
    changed_files INTEGER NOT NULL DEFAULT 0,
    tests_outcome TEXT,
    failing       INTEGER NOT NULL DEFAULT 0,
    failure_id    TEXT,
    rule_id       TEXT,
    reverted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    // 2: evidence. Bench runs and their finished trials (so an interrupted bench resumes),
    // and the verdicts of rule validations (reruns of a rule's failure with and without it).
    r#"
CREATE TABLE bench_runs (
    id          TEXT PRIMARY KEY,
    suite       TEXT NOT NULL,
    suite_hash  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    options     TEXT NOT NULL
);
CREATE TABLE bench_trials (
    bench_id    TEXT NOT NULL,
    phase       TEXT NOT NULL,
    task        TEXT NOT NULL,
    arm         TEXT NOT NULL,
    trial       INTEGER NOT NULL,
    passed      INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (bench_id, phase, task, arm, trial)
);
CREATE TABLE rule_validations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id        TEXT NOT NULL,
    at             TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    trials         INTEGER NOT NULL,
    with_passed    INTEGER NOT NULL,
    without_passed INTEGER NOT NULL,
    broken         TEXT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX rule_validations_rule ON rule_validations(rule_id, seq);
"#,
    // 3: feedback on rules (an agent or a person says a rule helped or misled, over MCP):
    // one row per report, counted beside the rule's own evidence. Self-contained: it only
    // adds its own table, so it can be renumbered.
    r#"
CREATE TABLE rule_feedback (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    helped  INTEGER NOT NULL,
    note    TEXT,
    source  TEXT NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX rule_feedback_rule ON rule_feedback(rule_id, seq);
"#,
];

/// The schema version this binary writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// The database's schema version.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Applies the migrations above the database's version; returns the version it had.
/// The caller has checked that the version is not newer than [`latest`].
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    // One immediate transaction: the version is read and raised under the write lock, so
    // two processes opening a new database at once do not both apply the same step.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = version(&tx)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(from)
}
