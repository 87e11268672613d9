//! [`RuleStore`] on an embedded SQLite database (bundled, WAL mode).
//!
//! Dedup lookup without a scan: every rule's terms are kept in an inverted index
//! (`rule_tokens`) with their document frequencies (`token_df`), which also give each term
//! its rarity weight. A new rule probes only its heaviest (rarest) terms, as many as
//! weighted prefix filtering needs to find every stored rule within the minimum similarity
//! ([`dedup::probe_len`]); common terms weigh little and are rarely probed. Only the
//! candidates that can still reach the bound are read and compared.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::dedup::{self, Analysis, Judge, Relation, Thresholds, Verdict};
use super::{
    AttemptRow, FileChange, LearnOutcome, MergeChange, NewRule, Provenance, RuleEdit, RuleFilter,
    RuleStore, RunRow, Scope, Status, StoreChange, StoreError, StoredFailure, StoredRule, migrate,
    now,
};
use crate::rules::format::{Rule, one_line};

pub mod feedback;

/// A SQLite-backed store.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// True when this open created the schema (a new database).
    created: bool,
    thresholds: Thresholds,
    /// At most this many judge calls per insert (the closest unsure candidates).
    judge_calls: usize,
}

/// A stored rule the lookup found, with its analysis.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// Its analysed form.
    pub analysis: Analysis,
    /// Its rule text.
    pub text: String,
}

/// Asks `judge` about the `calls` closest borderline candidates of `text`; those it says
/// are the same rule become [`Relation::Same`].
pub(crate) fn ask_judge(
    found: &mut [(Candidate, Verdict)],
    text: &str,
    judge: &dyn Judge,
    calls: usize,
) {
    let mut unsure: Vec<usize> = (0..found.len())
        .filter(|k| found[*k].1.relation == Relation::Borderline)
        .collect();
    unsure.sort_by(|x, y| found[*y].1.similarity.total_cmp(&found[*x].1.similarity));
    for k in unsure.into_iter().take(calls) {
        if judge.same_rule(text, &found[k].0.text) == Some(true) {
            found[k].1.relation = Relation::Same;
        }
    }
}

/// Terms in more rules than this are not looked up (see [`SqliteStore::candidates`]).
pub const LOOKUP_POSTINGS: u64 = 1000;

/// Judge calls per insert when none is configured.
pub const DEFAULT_JUDGE_CALLS: usize = 3;

/// The `meta` key naming the analysis version of the stored rules.
const ANALYSIS_META: &str = "analysis_version";

const RULE_COLUMNS: &str = "id, category, rule, \"when\", why, scope, status, note, \
    conflicts_with, created_at, updated_at, activated_at, last_learned_at, times_learned, \
    recurrences, times_validated";

impl SqliteStore {
    /// Opens (creating, with parent directories) the database at `path` and brings its
    /// schema up to date. A database from a newer promptloop is refused untouched.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        // A file that is not a database, or is corrupt, says so (see `health`).
        let open_err = |source| super::health::open_error(path, source);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        // Checked before any write, WAL included: a newer schema is not ours to touch.
        let found = migrate::version(&conn).map_err(open_err)?;
        if found > migrate::latest() {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known: migrate::latest(),
            });
        }
        super::health::check_length(path, &conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        if found > 0 && found < migrate::latest() {
            super::health::backup_before_migration(&conn, path, found).map_err(open_err)?;
        }
        let from = migrate::migrate(&mut conn).map_err(open_err)?;
        if from > 0 {
            super::health::refresh_backup(&conn, path);
        }
        let store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            created: from == 0,
            thresholds: Thresholds::default(),
            judge_calls: DEFAULT_JUDGE_CALLS,
        };
        store.reanalyse_if_stale()?;
        Ok(store)
    }

    /// Rules analysed by an older method are analysed again, and their index rebuilt, once
    /// (in one transaction; the rules themselves are not changed).
    fn reanalyse_if_stale(&self) -> Result<(), StoreError> {
        if self.meta(ANALYSIS_META)?.as_deref() == Some(dedup::ANALYSIS_VERSION) {
            return Ok(());
        }
        let tx = self.write_tx()?;
        // Another process may have done it while we waited for the lock.
        if self.meta(ANALYSIS_META)?.as_deref() != Some(dedup::ANALYSIS_VERSION) {
            let rules: Vec<(String, String, String)> = {
                let mut stmt = self.conn.prepare("SELECT id, rule, \"when\" FROM rules")?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?
            };
            self.conn.execute("DELETE FROM rule_tokens", [])?;
            self.conn.execute("DELETE FROM token_df", [])?;
            let mut update = self
                .conn
                .prepare_cached("UPDATE rules SET features = ?2 WHERE id = ?1")?;
            for (id, rule, when) in &rules {
                let analysis = dedup::analyse(rule, when);
                update.execute(params![id, analysis.encode()])?;
                self.index_tokens(id, &analysis)?;
            }
            self.set_meta(ANALYSIS_META, dedup::ANALYSIS_VERSION)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Holds `id` for review as contradicting `with` (`rules dedup --apply`): it becomes
    /// proposed, with a note and `conflicts_with`; the change, for the log and undo.
    pub fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError> {
        let theirs: String =
            self.conn
                .query_row("SELECT rule FROM rules WHERE id = ?1", [with], |r| r.get(0))?;
        let note = format!("contradicts {with} (\"{theirs}\"); approve one, reject the other");
        let change = self.set_status(id, Status::Proposed, Some(&note))?;
        self.conn.execute(
            "UPDATE rules SET conflicts_with = ?2 WHERE id = ?1",
            params![change.rule_id, with],
        )?;
        Ok(change)
    }

    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A deferred
    /// one that reads and then writes fails at once with "database is locked" when another
    /// process wrote in between, instead of waiting for the busy timeout; taken first, the
    /// lock also serialises the duplicate check with the insert across processes.
    pub(crate) fn write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this open created the database.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The connection, for the store's other tables (`store::evidence`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The dedup thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Number of rules stored (every status).
    pub fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM rules", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// How many rules the store holds, for rarity weights: the largest rowid (rules are
    /// never deleted), read in O(log n) where `COUNT(*)` would scan.
    fn docs(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM rules", [], |r| {
                r.get(0)
            })?;
        Ok(n.max(0) as u64)
    }

    /// Document frequencies of `tokens`, added to `cache`.
    fn load_df<'t>(
        &self,
        tokens: impl IntoIterator<Item = &'t str>,
        cache: &mut HashMap<String, u64>,
    ) -> Result<(), StoreError> {
        let mut df_stmt = self
            .conn
            .prepare_cached("SELECT df FROM token_df WHERE token = ?1")?;
        for token in tokens {
            if cache.contains_key(token) {
                continue;
            }
            let df: i64 = df_stmt
                .query_row([token], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            cache.insert(token.to_string(), df.max(0) as u64);
        }
        Ok(())
    }

    /// Stored rules that may share `bound` of `a`'s weight: the postings of its heaviest
    /// terms (weighted prefix filtering: complete for every rule with a weighted similarity
    /// of at least `bound`), less those that cannot reach the bound with what they share.
    /// Returns them with the document frequencies their comparison needs.
    fn candidates(
        &self,
        a: &Analysis,
        bound: f64,
        df: &mut HashMap<String, u64>,
    ) -> Result<Vec<Candidate>, StoreError> {
        let docs = self.docs()?;
        self.load_df(a.tokens(), df)?;
        let mut by_weight: Vec<(f64, &str)> = a
            .terms
            .iter()
            .map(|t| {
                let w = dedup::term_weight(
                    t,
                    dedup::idf(docs, df[t.text.as_str()].max(1)),
                    &self.thresholds,
                );
                (w, t.text.as_str())
            })
            .collect();
        by_weight.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(y.1)));
        let total: f64 = by_weight.iter().map(|(w, _)| *w).sum();
        // Terms in more than LOOKUP_POSTINGS rules are not looked up (their weight is low;
        // their postings are long): the lookup is complete for rules that share `bound` of
        // the weight of this rule's other terms.
        let mut rare: Vec<(f64, &str)> = by_weight
            .iter()
            .copied()
            .filter(|(_, t)| df[*t] <= LOOKUP_POSTINGS)
            .collect();
        // A rule made mostly of common terms looks up its rarest ones too, until they carry
        // half its weight (longer postings, but such rules are few).
        let mut common: Vec<(f64, &str)> = by_weight
            .iter()
            .copied()
            .filter(|(_, t)| df[*t] > LOOKUP_POSTINGS)
            .collect();
        common.sort_by_key(|(_, t)| df[*t]);
        let mut common = common.into_iter();
        while rare.iter().map(|(w, _)| w).sum::<f64>() < total / 2.0 {
            match common.next() {
                Some(x) => rare.push(x),
                None => break,
            }
        }
        rare.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(y.1)));
        let rare_weights: Vec<f64> = rare.iter().map(|(w, _)| *w).collect();
        let rare_total: f64 = rare_weights.iter().sum();
        // Probe until what is left out weighs under half the bound: a candidate must then
        // share at least half the bound in probed terms, which the many rules that share one
        // word with this one do not.
        let probed = dedup::probe_len(&rare_weights, bound / 2.0);
        let unprobed: f64 = rare_weights[probed..].iter().sum();
        let mut shared: HashMap<String, f64> = HashMap::new();
        let mut post = self
            .conn
            .prepare_cached("SELECT rule_id FROM rule_tokens WHERE token = ?1")?;
        for (w, token) in rare.iter().take(probed) {
            if df[*token] == 0 {
                continue;
            }
            for id in post.query_map([token], |r| r.get::<_, String>(0))? {
                *shared.entry(id?).or_default() += w;
            }
        }
        let need_rare = bound * rare_total - 1e-9;
        let need = bound * total - 1e-9;
        let ids: Vec<String> = shared
            .into_iter()
            .filter(|(_, s)| s + unprobed >= need_rare)
            .map(|(id, _)| id)
            .collect();
        let mine: HashMap<&str, f64> = by_weight.iter().map(|(w, t)| (*t, *w)).collect();
        // Read in batches: one statement per 200 candidates, compact stored analyses; keep
        // those whose exact overlap with this rule reaches the bound.
        let mut out = Vec::new();
        for chunk in ids.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT id, status, features, rule FROM rules WHERE id IN ({marks})"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (id, status, features, text) = row?;
                let overlap: f64 = Analysis::tokens_of(&features)
                    .filter_map(|t| mine.get(t))
                    .sum();
                if overlap < need {
                    continue;
                }
                let analysis = Analysis::decode(&features)
                    .ok_or_else(|| StoreError::Corrupt(format!("analysis of {id}")))?;
                out.push(Candidate {
                    id,
                    status: parse_status(&status)?,
                    analysis,
                    text,
                });
            }
        }
        out.sort_by(|x, y| x.id.cmp(&y.id));
        let theirs: Vec<String> = out
            .iter()
            .flat_map(|c| c.analysis.tokens().map(str::to_string).collect::<Vec<_>>())
            .collect();
        self.load_df(theirs.iter().map(String::as_str), df)?;
        Ok(out)
    }

    /// How `a` relates to every stored rule it may relate to, with the judge asked about
    /// the closest unsure ones (at most `judge_calls` of them).
    pub fn relations(
        &self,
        a: &Analysis,
        text: &str,
        judge: Option<&dyn Judge>,
    ) -> Result<Vec<(Candidate, Verdict)>, StoreError> {
        let mut df = HashMap::new();
        let bound = if judge.is_some() {
            self.thresholds.unsure
        } else {
            self.thresholds.lookup
        };
        let found = self.candidates(a, bound, &mut df)?;
        let docs = self.docs()?;
        let rarity = |token: &str| dedup::idf(docs, df.get(token).copied().unwrap_or(0).max(1));
        let mut out: Vec<(Candidate, Verdict)> = found
            .into_iter()
            .map(|c| {
                let v = dedup::compare(a, &c.analysis, &rarity, &self.thresholds);
                (c, v)
            })
            .collect();
        if let Some(judge) = judge {
            ask_judge(&mut out, text, judge, self.judge_calls);
        }
        Ok(out)
    }

    fn new_id(&self, seed: &str) -> Result<String, StoreError> {
        let nanos = chrono::Local::now().timestamp_nanos_opt().unwrap_or(0);
        for attempt in 0u64..64 {
            let hash = fnv1a(format!("{seed}\u{0}{nanos}\u{0}{attempt}").as_bytes());
            // Six hex digits are easy to type; longer only when they are taken.
            let id = if attempt < 32 {
                format!("r-{:06x}", hash & 0xff_ffff)
            } else {
                format!("r-{:08x}", hash & 0xffff_ffff)
            };
            let taken: bool = self
                .conn
                .query_row("SELECT 1 FROM rules WHERE id = ?1", [&id], |_| Ok(()))
                .optional()?
                .is_some();
            if !taken {
                return Ok(id);
            }
        }
        Err(StoreError::Invalid(
            "make a rule id: every candidate is taken".into(),
        ))
    }

    /// Inserts a rule row with its targets, tokens and provenance (inside the caller's
    /// transaction).
    fn insert_row(&self, rule: &StoredRule, features: &Analysis) -> Result<(), StoreError> {
        let features_json = features.encode();
        self.conn.execute(
            &format!(
                "INSERT INTO rules ({RULE_COLUMNS}, features) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                rule.id,
                rule.rule.category,
                rule.rule.rule,
                rule.rule.when,
                rule.rule.why,
                rule.scope.as_str(),
                rule.status.as_str(),
                rule.note,
                rule.conflicts_with,
                rule.created_at,
                rule.updated_at,
                rule.activated_at,
                rule.last_learned_at,
                rule.times_learned,
                rule.recurrences,
                rule.times_validated,
                features_json,
            ],
        )?;
        self.add_targets(&rule.id, &rule.targets)?;
        self.index_tokens(&rule.id, features)?;
        for p in &rule.provenance {
            self.add_provenance(&rule.id, p)?;
        }
        Ok(())
    }

    fn add_targets(&self, id: &str, targets: &[String]) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO rule_targets(rule_id, target) VALUES (?1, ?2)",
        )?;
        for t in targets {
            stmt.execute(params![id, t])?;
        }
        Ok(())
    }

    fn index_tokens(&self, id: &str, features: &Analysis) -> Result<(), StoreError> {
        let mut post = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO rule_tokens(token, rule_id) VALUES (?1, ?2)")?;
        let mut df = self.conn.prepare_cached(
            "INSERT INTO token_df(token, df) VALUES (?1, 1)
             ON CONFLICT(token) DO UPDATE SET df = df + 1",
        )?;
        for token in features.tokens() {
            if post.execute(params![token, id])? > 0 {
                df.execute([token])?;
            }
        }
        Ok(())
    }

    fn unindex_tokens(&self, id: &str) -> Result<(), StoreError> {
        let tokens: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT token FROM rule_tokens WHERE rule_id = ?1")?;
            stmt.query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut df = self
            .conn
            .prepare_cached("UPDATE token_df SET df = df - 1 WHERE token = ?1")?;
        for t in &tokens {
            df.execute([t])?;
        }
        self.conn
            .execute("DELETE FROM rule_tokens WHERE rule_id = ?1", [id])?;
        Ok(())
    }

    fn add_provenance(&self, id: &str, p: &Provenance) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO provenance(rule_id, seq, failure_id, failure_type, source, task,
                 teacher, model, run_id, learned_at, text)
             VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM provenance WHERE rule_id = ?1),
                 ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                p.failure_id,
                p.failure_type,
                p.source,
                p.task,
                p.teacher,
                p.model,
                p.run_id,
                p.learned_at,
                p.text
            ],
        )?;
        Ok(())
    }

    /// Adds `gone`'s counts, provenance and targets to `kept` (inside the caller's
    /// transaction).
    fn add_merge(&self, kept: &StoredRule, gone: &StoredRule) -> Result<MergeChange, StoreError> {
        let provenance_from: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM provenance WHERE rule_id = ?1",
            [&kept.id],
            |r| r.get(0),
        )?;
        for p in &gone.provenance {
            self.add_provenance(&kept.id, p)?;
        }
        let counts = [gone.times_learned, gone.recurrences, gone.times_validated];
        let last = kept
            .last_learned_at
            .clone()
            .max(gone.last_learned_at.clone());
        self.conn.execute(
            "UPDATE rules SET times_learned = times_learned + ?2, recurrences = recurrences + ?3,
                 times_validated = times_validated + ?4, last_learned_at = ?5, updated_at = ?6
             WHERE id = ?1",
            params![kept.id, counts[0], counts[1], counts[2], last, now()],
        )?;
        let targets_added: Vec<String> = gone
            .targets
            .iter()
            .filter(|t| !kept.targets.contains(t))
            .cloned()
            .collect();
        self.add_targets(&kept.id, &targets_added)?;
        Ok(MergeChange {
            absorbed: gone.id.clone(),
            counts,
            provenance_from,
            targets_added,
            undone: false,
        })
    }

    /// Resolves an id or a unique prefix (`7f3a`, `r-7f3a`).
    fn resolve(&self, id: &str) -> Result<String, StoreError> {
        let id = id.trim();
        let wanted = if id.starts_with("r-") {
            id.to_string()
        } else {
            format!("r-{id}")
        };
        if wanted.len() <= 2 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let exact: Option<String> = self
            .conn
            .query_row("SELECT id FROM rules WHERE id = ?1", [&wanted], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(found) = exact {
            return Ok(found);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM rules WHERE substr(id, 1, length(?1)) = ?1 LIMIT 4")?;
        let found: Vec<String> = stmt
            .query_map([&wanted], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match found.len() {
            0 => Err(StoreError::NotFound(id.to_string())),
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            _ => Err(StoreError::Ambiguous(id.to_string(), found.join(", "))),
        }
    }

    fn load(&self, id: &str) -> Result<StoredRule, StoreError> {
        let mut rule = self
            .conn
            .query_row(
                &format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = ?1"),
                [id],
                rule_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))??;
        self.fill(&mut rule)?;
        Ok(rule)
    }

    /// Loads a rule's targets and provenance.
    fn fill(&self, rule: &mut StoredRule) -> Result<(), StoreError> {
        let mut targets = self
            .conn
            .prepare_cached("SELECT target FROM rule_targets WHERE rule_id = ?1 ORDER BY target")?;
        rule.targets = targets
            .query_map([&rule.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut prov = self.conn.prepare_cached(
            "SELECT failure_id, failure_type, source, task, teacher, model, run_id, learned_at, text
             FROM provenance WHERE rule_id = ?1 ORDER BY seq",
        )?;
        rule.provenance = prov
            .query_map([&rule.id], |r| {
                Ok(Provenance {
                    failure_id: r.get(0)?,
                    failure_type: r.get(1)?,
                    source: r.get(2)?,
                    task: r.get(3)?,
                    teacher: r.get(4)?,
                    model: r.get(5)?,
                    run_id: r.get(6)?,
                    learned_at: r.get(7)?,
                    text: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn query_rules(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredRule>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows: Vec<Result<StoredRule, StoreError>> = stmt
            .query_map(args, rule_from_row)?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut rule = row?;
            self.fill(&mut rule)?;
            out.push(rule);
        }
        Ok(out)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

fn rule_from_row(r: &Row<'_>) -> rusqlite::Result<Result<StoredRule, StoreError>> {
    let scope: String = r.get(5)?;
    let status: String = r.get(6)?;
    let (Some(scope), Ok(status)) = (Scope::parse(&scope), parse_status(&status)) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "rule {}: bad scope or status",
            r.get::<_, String>(0)?
        ))));
    };
    Ok(Ok(StoredRule {
        id: r.get(0)?,
        rule: Rule {
            category: r.get(1)?,
            rule: r.get(2)?,
            when: r.get(3)?,
            why: r.get(4)?,
        },
        scope,
        targets: Vec::new(),
        status,
        note: r.get(7)?,
        conflicts_with: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        activated_at: r.get(11)?,
        last_learned_at: r.get(12)?,
        times_learned: r.get(13)?,
        recurrences: r.get(14)?,
        times_validated: r.get(15)?,
        provenance: Vec::new(),
    }))
}

/// Status preference for a merge: an active rule first, then proposed, then retired.
fn status_rank(s: Status) -> u8 {
    match s {
        Status::Active => 0,
        Status::Proposed => 1,
        Status::Retired => 2,
    }
}

/// The keys that identify "the same failure" again: its fingerprints; for records without
/// them, its failing test ids, or (a plain test command) the same command failing on the
/// same task.
pub(super) fn failure_keys(f: &StoredFailure) -> BTreeSet<String> {
    // The failure's fingerprints (type, normalised test id, error shape) say best when the
    // same failure comes back; records from before fingerprints fall back to test ids.
    if !f.fingerprints.is_empty() {
        return f.fingerprints.iter().map(|fp| format!("fp:{fp}")).collect();
    }
    let c = &f.context;
    let mut keys: BTreeSet<String> = c.tests.iter().map(|t| format!("test:{}", t.id)).collect();
    keys.extend(c.failing_ids.iter().map(|id| format!("test:{id}")));
    if keys.is_empty()
        && let Some(command) = &c.test_command
    {
        keys.insert(format!("command:{}\u{1}{}", c.task, command));
    }
    keys
}

impl RuleStore for SqliteStore {
    fn learn(&self, new: NewRule, judge: Option<&dyn Judge>) -> Result<LearnOutcome, StoreError> {
        let rule = Rule {
            category: new
                .rule
                .category
                .as_deref()
                .map(one_line)
                .filter(|c| !c.is_empty()),
            rule: one_line(&new.rule.rule),
            when: one_line(&new.rule.when),
            why: one_line(&new.rule.why),
        };
        if rule.rule.is_empty() {
            return Err(StoreError::Invalid(
                "learn a rule: its text is empty".into(),
            ));
        }
        let features = dedup::analyse(&rule.rule, &rule.when);
        let tx = self.write_tx()?;
        let mut same: Option<(u8, f64, String, Status)> = None;
        let mut conflict: Option<(f64, String)> = None;
        for (c, verdict) in self.relations(&features, &rule.rule, judge)? {
            let sim = verdict.similarity;
            match verdict.relation {
                Relation::Same => {
                    let key = (status_rank(c.status), -sim);
                    if same
                        .as_ref()
                        .is_none_or(|(rank, s, _, _)| key < (*rank, -*s))
                    {
                        same = Some((status_rank(c.status), sim, c.id, c.status));
                    }
                }
                Relation::Conflict
                    if c.status == Status::Active
                        && conflict.as_ref().is_none_or(|(s, _)| sim > *s) =>
                {
                    conflict = Some((sim, c.id));
                }
                _ => {}
            }
        }
        let stamp = now();
        let mut provenance = new.provenance.clone();
        provenance.text = rule.rule.clone();
        if provenance.learned_at.is_empty() {
            provenance.learned_at = stamp.clone();
        }
        let outcome = if let Some((_, sim, id, status)) = same {
            self.conn.execute(
                "UPDATE rules SET times_learned = times_learned + 1, last_learned_at = ?2,
                     updated_at = ?2 WHERE id = ?1",
                params![id, stamp],
            )?;
            self.add_provenance(&id, &provenance)?;
            self.add_targets(&id, &new.targets)?;
            LearnOutcome::Merged {
                id,
                status,
                similarity: sim,
            }
        } else {
            let (status, note, conflicts_with) = match &conflict {
                Some((_, with)) => {
                    let theirs: String = self.conn.query_row(
                        "SELECT rule FROM rules WHERE id = ?1",
                        [with],
                        |r| r.get(0),
                    )?;
                    (
                        Status::Proposed,
                        Some(format!(
                            "contradicts {with} (\"{theirs}\"); approve one, reject the other"
                        )),
                        Some(with.clone()),
                    )
                }
                None => (new.status, None, None),
            };
            let id = self.new_id(&rule.rule)?;
            let stored = StoredRule {
                id: id.clone(),
                rule,
                scope: new.scope,
                targets: new.targets.clone(),
                status,
                note,
                conflicts_with: conflicts_with.clone(),
                created_at: stamp.clone(),
                updated_at: stamp.clone(),
                activated_at: (status == Status::Active).then(|| stamp.clone()),
                last_learned_at: stamp.clone(),
                times_learned: 1,
                recurrences: 0,
                times_validated: 0,
                provenance: vec![provenance],
            };
            self.insert_row(&stored, &features)?;
            match conflicts_with {
                Some(with) => LearnOutcome::Conflict { id, with },
                None => LearnOutcome::Added { id, status },
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    fn insert(&self, rule: &StoredRule) -> Result<String, StoreError> {
        if one_line(&rule.rule.rule).is_empty() {
            return Err(StoreError::Invalid(
                "import a rule: its text is empty".into(),
            ));
        }
        let tx = self.write_tx()?;
        let taken = rule.id.is_empty()
            || self
                .conn
                .query_row("SELECT 1 FROM rules WHERE id = ?1", [&rule.id], |_| Ok(()))
                .optional()?
                .is_some();
        let mut rule = rule.clone();
        if taken {
            rule.id = self.new_id(&rule.rule.rule)?;
        }
        let features = dedup::analyse(&rule.rule.rule, &rule.rule.when);
        self.insert_row(&rule, &features)?;
        tx.commit()?;
        Ok(rule.id)
    }

    fn get(&self, id: &str) -> Result<StoredRule, StoreError> {
        let id = self.resolve(id)?;
        self.load(&id)
    }

    fn list(&self, filter: &RuleFilter) -> Result<Vec<StoredRule>, StoreError> {
        let mut sql = format!("SELECT {RULE_COLUMNS} FROM rules r WHERE 1 = 1");
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        if !statuses.is_empty() {
            let quoted: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
            sql.push_str(&format!(" AND status IN ({})", quoted.join(", ")));
        }
        let target = filter.target.clone().unwrap_or_default();
        if filter.target.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM rule_targets t WHERE t.rule_id = r.id AND t.target = ?1)",
            );
            sql.push_str(" ORDER BY created_at, id");
            self.query_rules(&sql, &[&target])
        } else {
            sql.push_str(" ORDER BY created_at, id");
            self.query_rules(&sql, &[])
        }
    }

    fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
    ) -> Result<StoreChange, StoreError> {
        let id = self.resolve(id)?;
        let before: String =
            self.conn
                .query_row("SELECT status FROM rules WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })?;
        let before = parse_status(&before)?;
        let stamp = now();
        self.conn.execute(
            "UPDATE rules SET status = ?2, note = ?3, updated_at = ?4,
                 activated_at = CASE WHEN ?2 = 'active' AND status != 'active' THEN ?4
                                     ELSE activated_at END
             WHERE id = ?1",
            params![id, status.as_str(), note, stamp],
        )?;
        Ok(StoreChange::status(id, before, status))
    }

    fn edit(&self, id: &str, edit: &RuleEdit) -> Result<StoreChange, StoreError> {
        let id = self.resolve(id)?;
        let current = self.load(&id)?;
        let mut rule = current.rule.clone();
        if let Some(c) = &edit.category {
            let c = one_line(c);
            rule.category = (!c.is_empty()).then_some(c);
        }
        for (slot, value) in [
            (&mut rule.rule, &edit.rule),
            (&mut rule.when, &edit.when),
            (&mut rule.why, &edit.why),
        ] {
            if let Some(v) = value {
                let v = one_line(v);
                if v.is_empty() {
                    return Err(StoreError::Invalid(format!(
                        "edit rule {id}: a rule's text, when and why must not be empty"
                    )));
                }
                *slot = v;
            }
        }
        let tx = self.write_tx()?;
        let features = dedup::analyse(&rule.rule, &rule.when);
        let features_json = features.encode();
        self.conn.execute(
            "UPDATE rules SET category = ?2, rule = ?3, \"when\" = ?4, why = ?5, features = ?6,
                 updated_at = ?7 WHERE id = ?1",
            params![
                id,
                rule.category,
                rule.rule,
                rule.when,
                rule.why,
                features_json,
                now()
            ],
        )?;
        self.unindex_tokens(&id)?;
        self.index_tokens(&id, &features)?;
        if let Some(targets) = &edit.targets {
            self.conn
                .execute("DELETE FROM rule_targets WHERE rule_id = ?1", [&id])?;
            self.add_targets(&id, targets)?;
        }
        tx.commit()?;
        Ok(StoreChange::edited(id, current.status, current.rule))
    }

    fn ranked_for_target(&self, target: &str) -> Result<Vec<StoredRule>, StoreError> {
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM rules r
             WHERE status = 'active'
               AND EXISTS (SELECT 1 FROM rule_targets t WHERE t.rule_id = r.id AND t.target = ?1)
             ORDER BY 3 * times_validated + 2 * times_learned + recurrences DESC,
                      last_learned_at DESC, id"
        );
        self.query_rules(&sql, &[&target])
    }

    fn targets(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT target FROM rule_targets UNION SELECT target FROM file_changes ORDER BY 1",
        )?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn log_file_change(&self, change: &FileChange) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO file_changes(target, at, reason, old_body, new_body, shown, hidden,
                 store_changes, undone_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                change.target,
                change.at,
                change.reason,
                change.old_body,
                change.new_body,
                to_json(&change.shown),
                change.hidden as i64,
                to_json(&change.store_changes),
                change.undone_by,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn file_changes(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileChange>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, target, at, reason, old_body, new_body, shown, hidden, store_changes,
                 undone_by
             FROM file_changes WHERE ?1 IS NULL OR target = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![target, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, target, at, reason, old_body, new_body, shown, hidden, changes, undone_by) =
                row?;
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("log #{seq}: {e}"));
            out.push(FileChange {
                seq,
                target,
                at,
                reason,
                old_body,
                new_body,
                shown: serde_json::from_str(&shown).map_err(corrupt)?,
                hidden: hidden.max(0) as usize,
                store_changes: serde_json::from_str(&changes).map_err(corrupt)?,
                undone_by,
            });
        }
        Ok(out)
    }

    fn mark_undone(&self, seq: i64, by: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE file_changes SET undone_by = ?2 WHERE seq = ?1",
            params![seq, by],
        )?;
        Ok(())
    }

    fn save_failure(&self, failure: &StoredFailure) -> Result<(), StoreError> {
        let c = &failure.context;
        let data =
            serde_json::to_string(failure).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let status = serde_json::to_value(failure.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "pending".into());
        let tx = self.write_tx()?;
        let known = self
            .conn
            .query_row("SELECT 1 FROM failures WHERE id = ?1", [&c.id], |_| Ok(()))
            .optional()?
            .is_some();
        self.conn.execute(
            "INSERT INTO failures(id, status, failure_type, source, run_id, attempt, captured_at, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data",
            params![c.id, status, c.failure_type, c.source, c.run_id, c.attempt, c.captured_at, data],
        )?;
        if !known {
            let keys = failure_keys(failure);
            let mut add = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO failure_keys(key, failure_id) VALUES (?1, ?2)",
            )?;
            for key in &keys {
                add.execute(params![key, c.id])?;
            }
            // The same failing tests again, while a rule learned from them was active.
            let mut find = self.conn.prepare_cached(
                "SELECT DISTINCT p.rule_id FROM failure_keys k
                   JOIN provenance p ON p.failure_id = k.failure_id
                   JOIN rules r ON r.id = p.rule_id
                 WHERE k.key = ?1 AND k.failure_id != ?2 AND r.status = 'active'
                   AND r.activated_at IS NOT NULL AND r.activated_at <= ?3",
            )?;
            let mut rules = BTreeSet::new();
            for key in &keys {
                for id in
                    find.query_map(params![key, c.id, c.captured_at], |r| r.get::<_, String>(0))?
                {
                    rules.insert(id?);
                }
            }
            for id in rules {
                let added = self.conn.execute(
                    "INSERT OR IGNORE INTO rule_recurrences(rule_id, failure_id) VALUES (?1, ?2)",
                    params![id, c.id],
                )?;
                if added > 0 {
                    self.conn.execute(
                        "UPDATE rules SET recurrences = recurrences + 1 WHERE id = ?1",
                        [&id],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn failures(&self) -> Result<Vec<StoredFailure>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, data FROM failures ORDER BY captured_at, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, data) = row?;
            out.push(
                serde_json::from_str(&data)
                    .map_err(|e| StoreError::Corrupt(format!("failure {id}: {e}")))?,
            );
        }
        Ok(out)
    }

    fn record_event(&self, run_id: &str, event: &serde_json::Value) -> Result<(), StoreError> {
        use super::run_event::{self, RowUpdate};
        let (kind, update) = run_event::read(run_id, event);
        let tx = self.write_tx()?;
        self.conn.execute(
            "INSERT INTO events(run_id, seq, type, data)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?1), ?2, ?3)",
            params![run_id, kind, event.to_string()],
        )?;
        let c = &self.conn;
        match update {
            RowUpdate::RunStarted {
                task,
                agent,
                teacher,
                rules_file,
                started_at,
            } => {
                c.execute(
                    "INSERT INTO runs(id, task, agent, teacher, rules_file, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(id) DO UPDATE SET task = excluded.task",
                    params![run_id, task, agent, teacher, rules_file, started_at],
                )?;
            }
            RowUpdate::AttemptStarted { attempt } => {
                c.execute(
                    "INSERT OR IGNORE INTO attempts(run_id, attempt) VALUES (?1, ?2)",
                    params![run_id, attempt],
                )?;
            }
            RowUpdate::AgentFinished {
                attempt,
                status,
                changed_files,
            } => {
                c.execute(
                    "UPDATE attempts SET agent_status = ?3, changed_files = ?4
                     WHERE run_id = ?1 AND attempt = ?2",
                    params![run_id, attempt, status, changed_files],
                )?;
            }
            RowUpdate::TestsFinished {
                attempt,
                outcome,
                failing,
            } => {
                c.execute(
                    "UPDATE attempts SET tests_outcome = ?3, failing = ?4
                     WHERE run_id = ?1 AND attempt = ?2",
                    params![run_id, attempt, outcome, failing],
                )?;
            }
            RowUpdate::FailureCaptured {
                attempt,
                failure_id,
            } => {
                c.execute(
                    "UPDATE attempts SET failure_id = ?3 WHERE run_id = ?1 AND attempt = ?2",
                    params![run_id, attempt, failure_id],
                )?;
            }
            RowUpdate::RuleLearned {
                failure_id,
                rule_id,
            } => {
                c.execute(
                    "UPDATE attempts SET rule_id = ?3 WHERE run_id = ?1 AND failure_id = ?2",
                    params![run_id, failure_id, rule_id],
                )?;
            }
            RowUpdate::AttemptReverted { attempt } => {
                c.execute(
                    "UPDATE attempts SET reverted = 1 WHERE run_id = ?1 AND attempt = ?2",
                    params![run_id, attempt],
                )?;
            }
            RowUpdate::RunFinished {
                outcome,
                attempts,
                rules_learned,
                pending,
                cost_usd,
                duration_ms,
                message,
            } => {
                c.execute(
                    "UPDATE runs SET outcome = ?2, attempts = ?3, rules_learned = ?4, pending = ?5,
                         cost_usd = ?6, duration_ms = ?7, message = ?8 WHERE id = ?1",
                    params![
                        run_id,
                        outcome,
                        attempts,
                        rules_learned,
                        pending,
                        cost_usd,
                        duration_ms,
                        message
                    ],
                )?;
                if outcome == Some("passed") {
                    // The run passed after learning these: evidence that they help.
                    c.execute(
                        "UPDATE rules SET times_validated = times_validated + 1
                         WHERE id IN (SELECT DISTINCT rule_id FROM provenance WHERE run_id = ?1)",
                        [run_id],
                    )?;
                }
            }
            RowUpdate::Nothing => {}
        }
        tx.commit()?;
        Ok(())
    }

    fn events(&self) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run_id, seq, data FROM events ORDER BY run_id, seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (run_id, seq, data) = row?;
            let event = serde_json::from_str(&data)
                .map_err(|e| StoreError::Corrupt(format!("event {seq} of run {run_id}: {e}")))?;
            out.push((run_id, seq, event));
        }
        Ok(out)
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, task, agent, teacher, started_at, outcome, attempts, rules_learned,
                 pending, cost_usd, duration_ms, message
             FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                task: r.get(1)?,
                agent: r.get(2)?,
                teacher: r.get(3)?,
                started_at: r.get(4)?,
                outcome: r.get(5)?,
                attempts: r.get(6)?,
                rules_learned: r.get(7)?,
                pending: r.get(8)?,
                cost_usd: r.get(9)?,
                duration_ms: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
                message: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_validation(&self, v: &super::evidence::Validation) -> Result<i64, StoreError> {
        SqliteStore::record_validation(self, v)
    }

    fn validations(
        &self,
        rule_id: Option<&str>,
    ) -> Result<Vec<super::evidence::Validation>, StoreError> {
        SqliteStore::validations(self, rule_id)
    }

    fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, super::FeedbackCounts), StoreError> {
        SqliteStore::add_feedback(self, id, helped, note, source)
    }

    fn keep_feedback(&self, entry: &super::FeedbackEntry) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO rule_feedback(rule_id, helped, note, source, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                entry.rule_id,
                entry.helped,
                entry.note,
                entry.source,
                entry.at
            ],
        )?;
        Ok(())
    }

    fn feedback_counts(&self, rule_id: &str) -> Result<super::FeedbackCounts, StoreError> {
        SqliteStore::feedback_counts(self, rule_id)
    }

    fn all_feedback_counts(
        &self,
    ) -> Result<std::collections::HashMap<String, super::FeedbackCounts>, StoreError> {
        SqliteStore::all_feedback_counts(self)
    }

    fn feedback_log(
        &self,
        rule_id: &str,
        limit: usize,
    ) -> Result<Vec<super::FeedbackEntry>, StoreError> {
        SqliteStore::feedback_log(self, rule_id, limit)
    }

    fn relations(
        &self,
        a: &Analysis,
        text: &str,
        judge: Option<&dyn Judge>,
    ) -> Result<Vec<(Candidate, Verdict)>, StoreError> {
        SqliteStore::relations(self, a, text, judge)
    }

    fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError> {
        SqliteStore::flag_conflict(self, id, with)
    }

    fn recurrence_times(&self) -> Result<Vec<String>, StoreError> {
        // A failure counts once however many rules it recurred for.
        let mut stmt = self.conn.prepare(
            "SELECT f.captured_at FROM failures f
             WHERE EXISTS (SELECT 1 FROM rule_recurrences rr WHERE rr.failure_id = f.id)
             ORDER BY f.captured_at",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT run_id, attempt, agent_status, changed_files, tests_outcome, failing,
                 failure_id, rule_id, reverted
             FROM attempts WHERE run_id = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(AttemptRow {
                run_id: r.get(0)?,
                attempt: r.get(1)?,
                agent_status: r.get(2)?,
                changed_files: r.get(3)?,
                tests_outcome: r.get(4)?,
                failing: r.get(5)?,
                failure_id: r.get(6)?,
                rule_id: r.get(7)?,
                reverted: r.get::<_, i64>(8)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn merge_rules(&self, keep: &str, absorb: &str) -> Result<Vec<StoreChange>, StoreError> {
        let keep = self.resolve(keep)?;
        let absorb = self.resolve(absorb)?;
        if keep == absorb {
            return Err(StoreError::Invalid(format!("merge {keep} into itself")));
        }
        let tx = self.write_tx()?;
        let kept = self.load(&keep)?;
        let gone = self.load(&absorb)?;
        let merge = self.add_merge(&kept, &gone)?;
        let note = format!("merged into {keep} (promptloop rules dedup)");
        let retired = self.set_status(&absorb, Status::Retired, Some(&note))?;
        tx.commit()?;
        Ok(vec![StoreChange::merge(keep, kept.status, merge), retired])
    }

    fn revert_merge(&self, change: &StoreChange) -> Result<StoreChange, StoreError> {
        let Some(m) = &change.merged else {
            return Err(StoreError::Invalid(format!(
                "undo a merge into {}: the change records none",
                change.rule_id
            )));
        };
        let tx = self.write_tx()?;
        let kept = self.load(&change.rule_id)?;
        let merge = if m.undone {
            let gone = self.load(&m.absorbed)?;
            self.add_merge(&kept, &gone)?
        } else {
            self.conn.execute(
                "DELETE FROM provenance WHERE rule_id = ?1 AND seq >= ?2",
                params![kept.id, m.provenance_from],
            )?;
            self.conn.execute(
                "UPDATE rules SET times_learned = MAX(times_learned - ?2, 1),
                     recurrences = MAX(recurrences - ?3, 0),
                     times_validated = MAX(times_validated - ?4, 0), updated_at = ?5
                 WHERE id = ?1",
                params![kept.id, m.counts[0], m.counts[1], m.counts[2], now()],
            )?;
            for t in &m.targets_added {
                self.conn.execute(
                    "DELETE FROM rule_targets WHERE rule_id = ?1 AND target = ?2",
                    params![kept.id, t],
                )?;
            }
            MergeChange {
                undone: true,
                ..m.clone()
            }
        };
        tx.commit()?;
        Ok(StoreChange::merge(kept.id, kept.status, merge))
    }
}

/// JSON for log fields (plain data, so encoding cannot fail in practice).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

/// Counts of what an import brought in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportCounts {
    /// Runs imported.
    pub runs: usize,
    /// Failures imported.
    pub failures: usize,
}
