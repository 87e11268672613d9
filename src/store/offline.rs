//! Working while the team store's server cannot be reached: the project's record goes to a
//! local SQLite file (`.promptloop/offline.db`, a full store, so a run renders its instruction
//! files as usual), and every lesson learned there is also queued, with an id unique to it,
//! in `.promptloop/sync-queue.db`. [`sync`] sends the queue to the server: each lesson is
//! learned there once ([`PgStore::learn_once`] records its id in the same transaction), then
//! marked sent here, so a sync that is cut off or repeated neither loses nor doubles one.
//! Then the record kept offline follows: failures (upserted by id, so sending one again
//! changes nothing) and the runs' events (each recorded in `sync_applied` beside it).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::postgres::{PgStore, fnv1a};
use super::sqlite::Candidate;
use super::{
    AttemptRow, FeedbackCounts, FeedbackEntry, FileChange, LearnOutcome, NewRule, Provenance,
    RuleEdit, RuleFilter, RuleStore, RunRow, Scope, SqliteStore, Status, StoreChange, StoreError,
    StoredFailure, StoredRule, dedup, evidence, now,
};

/// The local store used while the server is unreachable.
pub const OFFLINE_DB: &str = "offline.db";
/// The lessons waiting to be sent.
pub const QUEUE_DB: &str = "sync-queue.db";

/// Where `project_dir`'s offline store is.
pub fn offline_path(project_dir: &Path) -> PathBuf {
    project_dir.join(super::DIR_NAME).join(OFFLINE_DB)
}

/// Where `project_dir`'s queue is.
pub fn queue_path(project_dir: &Path) -> PathBuf {
    project_dir.join(super::DIR_NAME).join(QUEUE_DB)
}

/// A project's store while its team store is unreachable.
pub struct OfflineStore {
    local: SqliteStore,
    queue: Queue,
    /// Lessons queued by this process.
    queued: Cell<usize>,
}

impl OfflineStore {
    /// Opens (creating) the local store and the queue of `project_dir`.
    pub fn open(project_dir: &Path) -> Result<OfflineStore, StoreError> {
        let path = offline_path(project_dir);
        let fresh = !path.exists();
        let local = SqliteStore::open(&path)?;
        let queue = Queue::open(&queue_path(project_dir))?;
        if fresh {
            // Its events are numbered from 1 again: they are another origin's.
            queue.new_origin()?;
        }
        Ok(OfflineStore {
            local,
            queue,
            queued: Cell::new(0),
        })
    }

    /// Learns `new` here, queued under `queue_id` when it is a lesson (the id an online
    /// attempt of the same learn used, so the server applies it at most once).
    pub fn learn_queued(
        &self,
        new: NewRule,
        judge: Option<&dyn dedup::Judge>,
        queue_id: &str,
    ) -> Result<LearnOutcome, StoreError> {
        let lesson = is_lesson(&new.provenance).then(|| new.clone());
        let outcome = self.local.learn(new, judge)?;
        if let Some(new) = lesson {
            self.queue.push(queue_id, &new, outcome.id())?;
            self.queued.set(self.queued.get() + 1);
        }
        Ok(outcome)
    }

    /// How many lessons this process queued.
    pub fn queued(&self) -> usize {
        self.queued.get()
    }
}

/// The queue file.
struct Queue {
    conn: Connection,
}

impl Queue {
    fn open(path: &Path) -> Result<Queue, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (
                 id         TEXT PRIMARY KEY,
                 queued_at  TEXT NOT NULL,
                 lesson     TEXT NOT NULL,
                 sent_at    TEXT,
                 rule_id    TEXT
             );
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS sent_failures (
                 id     TEXT PRIMARY KEY,
                 digest TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS sent_events (
                 origin TEXT NOT NULL,
                 run_id TEXT NOT NULL,
                 seq    INTEGER NOT NULL,
                 PRIMARY KEY (origin, run_id)
             );",
        )?;
        // Queues written before lessons kept their offline rule's id.
        let has_local: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('queue') WHERE name = 'local_rule_id'")?
            .exists([])?;
        if !has_local {
            conn.execute_batch("ALTER TABLE queue ADD COLUMN local_rule_id TEXT")?;
        }
        Ok(Queue { conn })
    }

    fn push(&self, id: &str, new: &NewRule, local_rule_id: &str) -> Result<(), StoreError> {
        let lesson = Lesson {
            rule: new.rule.clone(),
            scope: new.scope,
            targets: new.targets.clone(),
            provenance: new.provenance.clone(),
            status: new.status,
        };
        let text =
            serde_json::to_string(&lesson).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO queue(id, queued_at, lesson, local_rule_id) VALUES (?1, ?2, ?3, ?4)",
            params![id, now(), text, local_rule_id],
        )?;
        Ok(())
    }

    /// The id of the offline store whose events are sent (a new one with a new file).
    fn origin(&self) -> Result<String, StoreError> {
        let found: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match found {
            Some(origin) => Ok(origin),
            None => self.new_origin(),
        }
    }

    fn new_origin(&self) -> Result<String, StoreError> {
        let origin = queue_id().replacen("q-", "o-", 1);
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('origin', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![origin],
        )?;
        Ok(origin)
    }

    /// Offline rule ids and the server's rule each was learned into.
    fn rule_map(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT local_rule_id, rule_id FROM queue
             WHERE local_rule_id IS NOT NULL AND rule_id IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn sent_digest(&self, failure_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT digest FROM sent_failures WHERE id = ?1",
                params![failure_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn mark_failure_sent(&self, failure_id: &str, digest: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sent_failures(id, digest) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET digest = excluded.digest",
            params![failure_id, digest],
        )?;
        Ok(())
    }

    fn sent_seq(&self, origin: &str, run_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sent_events WHERE origin = ?1 AND run_id = ?2",
                params![origin, run_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    fn mark_events_sent(&self, origin: &str, run_id: &str, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sent_events(origin, run_id, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(origin, run_id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            params![origin, run_id, seq],
        )?;
        Ok(())
    }

    fn pending(&self) -> Result<Vec<(String, Lesson)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, lesson FROM queue WHERE sent_at IS NULL ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text) = row?;
            let lesson: Lesson = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("queued lesson {id}: {e}")))?;
            out.push((id, lesson));
        }
        Ok(out)
    }

    fn mark_sent(&self, id: &str, rule_id: Option<&str>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE queue SET sent_at = ?2, rule_id = COALESCE(?3, rule_id) WHERE id = ?1",
            params![id, now(), rule_id],
        )?;
        Ok(())
    }
}

/// A queued lesson ([`NewRule`] as kept on disk).
#[derive(serde::Serialize, serde::Deserialize)]
struct Lesson {
    rule: crate::rules::format::Rule,
    scope: Scope,
    targets: Vec<String>,
    provenance: Provenance,
    status: Status,
}

/// An id no other queued lesson has, on this machine or another: the time in nanoseconds,
/// the process, a counter and the host's name, hashed together with them shown.
pub(crate) fn queue_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let host = std::fs::read_to_string("/etc/hostname")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    let h = fnv1a(host.trim().as_bytes());
    format!("q-{nanos:x}-{:x}-{n:x}-{h:016x}", std::process::id())
}

/// What [`sync`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Lessons learned by the server now.
    pub sent: usize,
    /// Lessons the server had already applied (an earlier sync cut off before they were
    /// marked sent here, or a learn whose commit reached the server unanswered).
    pub already: usize,
    /// Failures recorded offline (new, or changed since they were sent) sent now.
    pub failures: usize,
    /// Events of runs recorded offline sent now.
    pub events: usize,
    /// The runs they belong to.
    pub runs: usize,
}

/// Sends `project_dir`'s queued lessons to `store`, each once, then the failures and runs'
/// events recorded offline; nothing to do without a queue.
pub fn sync(project_dir: &Path, store: &PgStore) -> Result<SyncReport, StoreError> {
    let path = queue_path(project_dir);
    let mut report = SyncReport::default();
    if !path.exists() {
        return Ok(report);
    }
    let queue = Queue::open(&path)?;
    for (id, lesson) in queue.pending()? {
        let new = NewRule {
            rule: lesson.rule,
            scope: lesson.scope,
            targets: lesson.targets,
            provenance: lesson.provenance,
            status: lesson.status,
        };
        match store.learn_once(new, None, Some(&id))? {
            Some(outcome) => {
                report.sent += 1;
                queue.mark_sent(&id, Some(outcome.id()))?;
            }
            None => {
                report.already += 1;
                queue.mark_sent(&id, store.applied_rule(&id)?.as_deref())?;
            }
        }
    }
    let offline = offline_path(project_dir);
    if !offline.exists() {
        return Ok(report);
    }
    let local = SqliteStore::open(&offline)?;
    // Failures: by id, so one sent again (a sync cut off) is the same row.
    for failure in local.failures()? {
        let data =
            serde_json::to_string(&failure).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let digest = format!("{:016x}", fnv1a(data.as_bytes()));
        if queue.sent_digest(&failure.context.id)?.as_deref() == Some(digest.as_str()) {
            continue;
        }
        store.save_failure(&failure)?;
        queue.mark_failure_sent(&failure.context.id, &digest)?;
        report.failures += 1;
    }
    // Events: a run's unsent ones in one transaction, with the offline rule ids they name
    // replaced by the server's.
    let origin = queue.origin()?;
    let rules = queue.rule_map()?;
    let mut runs: BTreeMap<String, Vec<(i64, serde_json::Value)>> = BTreeMap::new();
    for (run_id, seq, mut event) in local.events()? {
        if let Some(id) = event.get("rule_id").and_then(|v| v.as_str())
            && let Some(server) = rules.get(id)
        {
            event["rule_id"] = serde_json::Value::String(server.clone());
        }
        runs.entry(run_id).or_default().push((seq, event));
    }
    for (run_id, events) in runs {
        let sent = queue.sent_seq(&origin, &run_id)?;
        let unsent: Vec<_> = events.into_iter().filter(|(seq, _)| *seq > sent).collect();
        let Some(last) = unsent.last().map(|(seq, _)| *seq) else {
            continue;
        };
        let applied = store.apply_offline_events(&origin, &run_id, &unsent)?;
        queue.mark_events_sent(&origin, &run_id, last)?;
        if applied > 0 {
            report.events += applied;
            report.runs += 1;
        }
    }
    Ok(report)
}

/// How many lessons wait in `project_dir`'s queue.
pub fn pending(project_dir: &Path) -> Result<usize, StoreError> {
    let path = queue_path(project_dir);
    if !path.exists() {
        return Ok(0);
    }
    let queue = Queue::open(&path)?;
    let n: Option<i64> = queue
        .conn
        .query_row(
            "SELECT COUNT(*) FROM queue WHERE sent_at IS NULL",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(usize::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// Whether a learn is a lesson (queued) rather than a section folded back into the store
/// (an import or hand edit of the file rendered while offline, which the server has already).
fn is_lesson(p: &Provenance) -> bool {
    !matches!(p.failure_type.as_str(), "import" | "imported" | "hand_edit")
}

impl RuleStore for OfflineStore {
    fn learn(
        &self,
        new: NewRule,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<LearnOutcome, StoreError> {
        self.learn_queued(new, judge, &queue_id())
    }
    fn insert(&self, rule: &StoredRule) -> Result<String, StoreError> {
        self.local.insert(rule)
    }
    fn get(&self, id: &str) -> Result<StoredRule, StoreError> {
        self.local.get(id)
    }
    fn list(&self, filter: &RuleFilter) -> Result<Vec<StoredRule>, StoreError> {
        self.local.list(filter)
    }
    fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
    ) -> Result<StoreChange, StoreError> {
        self.local.set_status(id, status, note)
    }
    fn edit(&self, id: &str, edit: &RuleEdit) -> Result<StoreChange, StoreError> {
        self.local.edit(id, edit)
    }
    fn ranked_for_target(&self, target: &str) -> Result<Vec<StoredRule>, StoreError> {
        self.local.ranked_for_target(target)
    }
    fn targets(&self) -> Result<Vec<String>, StoreError> {
        self.local.targets()
    }
    fn log_file_change(&self, change: &FileChange) -> Result<i64, StoreError> {
        self.local.log_file_change(change)
    }
    fn file_changes(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileChange>, StoreError> {
        self.local.file_changes(target, limit)
    }
    fn mark_undone(&self, seq: i64, by: i64) -> Result<(), StoreError> {
        self.local.mark_undone(seq, by)
    }
    fn save_failure(&self, failure: &StoredFailure) -> Result<(), StoreError> {
        self.local.save_failure(failure)
    }
    fn failures(&self) -> Result<Vec<StoredFailure>, StoreError> {
        self.local.failures()
    }
    fn record_event(&self, run_id: &str, event: &serde_json::Value) -> Result<(), StoreError> {
        self.local.record_event(run_id, event)
    }
    fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.local.runs(limit)
    }
    fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        self.local.attempts(run_id)
    }
    fn events(&self) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError> {
        self.local.events()
    }
    fn record_validation(&self, v: &evidence::Validation) -> Result<i64, StoreError> {
        self.local.record_validation(v)
    }
    fn validations(&self, rule_id: Option<&str>) -> Result<Vec<evidence::Validation>, StoreError> {
        RuleStore::validations(&self.local, rule_id)
    }
    fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, FeedbackCounts), StoreError> {
        self.local.add_feedback(id, helped, note, source)
    }
    fn keep_feedback(&self, entry: &FeedbackEntry) -> Result<(), StoreError> {
        self.local.keep_feedback(entry)
    }
    fn feedback_counts(&self, rule_id: &str) -> Result<FeedbackCounts, StoreError> {
        self.local.feedback_counts(rule_id)
    }
    fn all_feedback_counts(&self) -> Result<HashMap<String, FeedbackCounts>, StoreError> {
        self.local.all_feedback_counts()
    }
    fn feedback_log(&self, rule_id: &str, limit: usize) -> Result<Vec<FeedbackEntry>, StoreError> {
        self.local.feedback_log(rule_id, limit)
    }
    fn recurrence_times(&self) -> Result<Vec<String>, StoreError> {
        self.local.recurrence_times()
    }
    fn relations(
        &self,
        a: &dedup::Analysis,
        text: &str,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<Vec<(Candidate, dedup::Verdict)>, StoreError> {
        self.local.relations(a, text, judge)
    }
    fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError> {
        self.local.flag_conflict(id, with)
    }
    fn merge_rules(&self, keep: &str, absorb: &str) -> Result<Vec<StoreChange>, StoreError> {
        self.local.merge_rules(keep, absorb)
    }
    fn revert_merge(&self, change: &StoreChange) -> Result<StoreChange, StoreError> {
        self.local.revert_merge(change)
    }
}

/// A team store that goes offline when its server is lost in the middle of a run: every
/// call goes to the server until one fails with [`StoreError::Unreachable`] (the server
/// rolled that call's transaction back), then that call and every later one to the
/// project's [`OfflineStore`].
pub struct FallbackStore {
    online: PgStore,
    offline: std::cell::OnceCell<OfflineStore>,
    project_dir: PathBuf,
}

impl FallbackStore {
    /// `online`, falling back to `project_dir`'s offline store.
    pub fn new(online: PgStore, project_dir: &Path) -> FallbackStore {
        FallbackStore {
            online,
            offline: std::cell::OnceCell::new(),
            project_dir: project_dir.to_path_buf(),
        }
    }

    fn call<T>(
        &self,
        f: impl Fn(&dyn RuleStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(offline) = self.offline.get() {
            return f(offline);
        }
        match f(&self.online) {
            Err(StoreError::Unreachable(why)) => f(self.go_offline(&why)?),
            other => other,
        }
    }

    /// Opens the offline store for every later call, and says so.
    fn go_offline(&self, why: &str) -> Result<&OfflineStore, StoreError> {
        if let Some(offline) = self.offline.get() {
            return Ok(offline);
        }
        let offline = OfflineStore::open(&self.project_dir)?;
        let waiting = pending(&self.project_dir)?;
        eprintln!("{}", offline_notice(why, waiting));
        note_offline(why, waiting);
        Ok(self.offline.get_or_init(|| offline))
    }
}

/// What is said on stderr when the team store cannot be reached.
pub fn offline_notice(why: &str, waiting: usize) -> String {
    format!(
        "promptloop: {why}\npromptloop: working offline: from the instruction files as rendered \
         and .promptloop/{OFFLINE_DB}; each lesson learned is queued ({waiting} waiting), and \
         `promptloop store sync` (or the next run that reaches the server) sends it with the \
         failures and runs recorded meanwhile"
    )
}

impl RuleStore for FallbackStore {
    fn learn(
        &self,
        new: NewRule,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<LearnOutcome, StoreError> {
        // One id for the online try and, if its answer is lost, the queued one: a commit
        // that reached the server unanswered is then not applied a second time by sync.
        let id = queue_id();
        if self.offline.get().is_none() {
            match self.online.learn_once(new.clone(), judge, Some(&id)) {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {
                    return Err(StoreError::Invalid(
                        "learn a rule: its new id was taken".into(),
                    ));
                }
                Err(StoreError::Unreachable(why)) => {
                    self.go_offline(&why)?;
                }
                Err(e) => return Err(e),
            }
        }
        match self.offline.get() {
            Some(offline) => offline.learn_queued(new, judge, &id),
            None => Err(StoreError::Invalid("learn a rule: no store".into())),
        }
    }
    fn insert(&self, rule: &StoredRule) -> Result<String, StoreError> {
        self.call(|s| s.insert(rule))
    }
    fn get(&self, id: &str) -> Result<StoredRule, StoreError> {
        self.call(|s| s.get(id))
    }
    fn list(&self, filter: &RuleFilter) -> Result<Vec<StoredRule>, StoreError> {
        self.call(|s| s.list(filter))
    }
    fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
    ) -> Result<StoreChange, StoreError> {
        self.call(|s| s.set_status(id, status, note))
    }
    fn edit(&self, id: &str, edit: &RuleEdit) -> Result<StoreChange, StoreError> {
        self.call(|s| s.edit(id, edit))
    }
    fn ranked_for_target(&self, target: &str) -> Result<Vec<StoredRule>, StoreError> {
        self.call(|s| s.ranked_for_target(target))
    }
    fn targets(&self) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.targets())
    }
    fn log_file_change(&self, change: &FileChange) -> Result<i64, StoreError> {
        self.call(|s| s.log_file_change(change))
    }
    fn file_changes(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileChange>, StoreError> {
        self.call(|s| s.file_changes(target, limit))
    }
    fn mark_undone(&self, seq: i64, by: i64) -> Result<(), StoreError> {
        self.call(|s| s.mark_undone(seq, by))
    }
    fn save_failure(&self, failure: &StoredFailure) -> Result<(), StoreError> {
        self.call(|s| s.save_failure(failure))
    }
    fn failures(&self) -> Result<Vec<StoredFailure>, StoreError> {
        self.call(|s| s.failures())
    }
    fn record_event(&self, run_id: &str, event: &serde_json::Value) -> Result<(), StoreError> {
        self.call(|s| s.record_event(run_id, event))
    }
    fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.call(|s| s.runs(limit))
    }
    fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        self.call(|s| s.attempts(run_id))
    }
    fn events(&self) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError> {
        self.call(|s| s.events())
    }
    fn record_validation(&self, v: &evidence::Validation) -> Result<i64, StoreError> {
        self.call(|s| s.record_validation(v))
    }
    fn validations(&self, rule_id: Option<&str>) -> Result<Vec<evidence::Validation>, StoreError> {
        self.call(|s| s.validations(rule_id))
    }
    fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, FeedbackCounts), StoreError> {
        self.call(|s| s.add_feedback(id, helped, note, source))
    }
    fn keep_feedback(&self, entry: &FeedbackEntry) -> Result<(), StoreError> {
        self.call(|s| s.keep_feedback(entry))
    }
    fn feedback_counts(&self, rule_id: &str) -> Result<FeedbackCounts, StoreError> {
        self.call(|s| s.feedback_counts(rule_id))
    }
    fn all_feedback_counts(&self) -> Result<HashMap<String, FeedbackCounts>, StoreError> {
        self.call(|s| s.all_feedback_counts())
    }
    fn feedback_log(&self, rule_id: &str, limit: usize) -> Result<Vec<FeedbackEntry>, StoreError> {
        self.call(|s| s.feedback_log(rule_id, limit))
    }
    fn recurrence_times(&self) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.recurrence_times())
    }
    fn relations(
        &self,
        a: &dedup::Analysis,
        text: &str,
        judge: Option<&dyn dedup::Judge>,
    ) -> Result<Vec<(Candidate, dedup::Verdict)>, StoreError> {
        self.call(|s| s.relations(a, text, judge))
    }
    fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError> {
        self.call(|s| s.flag_conflict(id, with))
    }
    fn merge_rules(&self, keep: &str, absorb: &str) -> Result<Vec<StoreChange>, StoreError> {
        self.call(|s| s.merge_rules(keep, absorb))
    }
    fn revert_merge(&self, change: &StoreChange) -> Result<StoreChange, StoreError> {
        self.call(|s| s.revert_merge(change))
    }
}

/// What was said on stderr about working offline, as events for `--json` (`type`:
/// `store_offline`), kept until [`take_notices`].
static NOTICES: std::sync::Mutex<Vec<serde_json::Value>> = std::sync::Mutex::new(Vec::new());

/// Keeps a `store_offline` event for `--json` output.
pub(crate) fn note_offline(why: &str, waiting: usize) {
    if let Ok(mut n) = NOTICES.lock() {
        n.push(serde_json::json!({
            "type": "store_offline",
            "reason": why,
            "local_store": format!("{}/{OFFLINE_DB}", super::DIR_NAME),
            "queued_before": waiting,
            "send_with": "promptloop store sync",
        }));
    }
}

/// The `store_offline` events kept so far (each returned once).
pub fn take_notices() -> Vec<serde_json::Value> {
    NOTICES
        .lock()
        .map(|mut n| std::mem::take(&mut *n))
        .unwrap_or_default()
}
