//! The team store's schema, versioned in its own table (`promptloop_schema`, one row per
//! applied version). All versions above the server's are applied in one transaction under
//! an advisory lock, so two processes opening a new database at once apply each step once;
//! a database whose version is above what this binary knows is refused before anything is
//! written to it.

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: rules (owned by a project key, or '' for team rules) with their token index, the
    // file-change log, and each project's record.
    r#"
CREATE TABLE promptloop_schema (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);
CREATE TABLE owners (
    owner TEXT PRIMARY KEY,
    rules BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rules (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
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
    times_learned   BIGINT NOT NULL DEFAULT 1,
    recurrences     BIGINT NOT NULL DEFAULT 0,
    times_validated BIGINT NOT NULL DEFAULT 0,
    features        TEXT NOT NULL
);
CREATE INDEX rules_owner_status ON rules(owner, status);
CREATE TABLE rule_targets (
    rule_id TEXT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
    target  TEXT NOT NULL,
    PRIMARY KEY (rule_id, target)
);
CREATE INDEX rule_targets_target ON rule_targets(target);
CREATE TABLE rule_tokens (
    owner   TEXT NOT NULL,
    token   TEXT NOT NULL,
    rule_id TEXT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
    PRIMARY KEY (owner, token, rule_id)
);
CREATE INDEX rule_tokens_rule ON rule_tokens(rule_id);
CREATE TABLE token_df (
    owner TEXT NOT NULL,
    token TEXT NOT NULL,
    df    BIGINT NOT NULL,
    PRIMARY KEY (owner, token)
);
CREATE TABLE provenance (
    rule_id      TEXT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
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
    seq           BIGSERIAL PRIMARY KEY,
    project       TEXT NOT NULL,
    target        TEXT NOT NULL,
    at            TEXT NOT NULL,
    reason        TEXT NOT NULL,
    old_body      TEXT,
    new_body      TEXT NOT NULL,
    shown         TEXT NOT NULL,
    hidden        BIGINT NOT NULL,
    store_changes TEXT NOT NULL,
    undone_by     BIGINT
);
CREATE INDEX file_changes_target ON file_changes(project, target, seq);
CREATE TABLE failures (
    project      TEXT NOT NULL,
    id           TEXT NOT NULL,
    status       TEXT NOT NULL,
    failure_type TEXT NOT NULL,
    source       TEXT NOT NULL,
    run_id       TEXT,
    attempt      BIGINT,
    captured_at  TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE TABLE failure_keys (
    project    TEXT NOT NULL,
    key        TEXT NOT NULL,
    failure_id TEXT NOT NULL,
    PRIMARY KEY (project, key, failure_id)
);
CREATE TABLE rule_recurrences (
    rule_id    TEXT NOT NULL,
    failure_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, failure_id)
);
CREATE TABLE runs (
    project       TEXT NOT NULL,
    id            TEXT NOT NULL,
    task          TEXT NOT NULL DEFAULT '',
    agent         TEXT,
    teacher       TEXT,
    rules_file    TEXT,
    started_at    TEXT,
    outcome       TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    rules_learned BIGINT NOT NULL DEFAULT 0,
    pending       BIGINT NOT NULL DEFAULT 0,
    cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_ms   BIGINT,
    message       TEXT,
    PRIMARY KEY (project, id)
);
CREATE TABLE attempts (
    project       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    agent_status  TEXT,
    changed_files BIGINT NOT NULL DEFAULT 0,
    tests_outcome TEXT,
    failing       BIGINT NOT NULL DEFAULT 0,
    failure_id    TEXT,
    rule_id       TEXT,
    reverted      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (project, run_id, attempt)
);
CREATE TABLE events (
    project TEXT NOT NULL,
    run_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    type    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (project, run_id, seq)
);
"#,
    // 2: lessons learned while the server was unreachable, each applied once: the queue id
    // is inserted in the same transaction as the learn (see `PgStore::learn_once`).
    r#"
CREATE TABLE sync_applied (
    id         TEXT PRIMARY KEY,
    project    TEXT NOT NULL,
    rule_id    TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
"#,
    // 3: events and failures recorded offline are applied once too (no rule id), and every
    // learn made online carries an id, so one whose commit went unanswered is not doubled.
    r#"
ALTER TABLE sync_applied ALTER COLUMN rule_id DROP NOT NULL;
"#,
    // 4: the rules' evidence beside their counters: validations (`rules validate`) and
    // feedback (MCP `rule_feedback`), kept with the project that recorded them.
    r#"
CREATE TABLE rule_validations (
    seq            BIGSERIAL PRIMARY KEY,
    project        TEXT NOT NULL,
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
CREATE TABLE rule_feedback (
    seq     BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    helped  BOOLEAN NOT NULL,
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

/// The advisory lock (two-key form: class, object) taken while the schema is read and raised.
pub(crate) const MIGRATION_LOCK: (i32, i32) = (0x706c_6d67, 0);

/// The server's schema version (0: no promptloop tables yet).
pub(crate) fn version(tx: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    let exists: bool = tx
        .query_one("SELECT to_regclass('promptloop_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = tx
        .query_one("SELECT MAX(version) FROM promptloop_schema", &[])?
        .get(0);
    Ok(i64::from(v.unwrap_or(0)))
}
