//! [`RuleStore`] on a PostgreSQL server, for a team: many machines and repositories, one
//! store (`store.url: postgres://…`).
//!
//! Every row belongs to a project key (a stable project identity, see
//! [`super::project_key`]), so every clone of a repository shares its rules and record;
//! rules of scope `team` belong to no project (owner `''`) and are seen by all of them.
//!
//! Dedup at insert holds under concurrency: a learn runs in one transaction that first takes
//! an advisory lock: the project's key exclusively (and the team's shared), or, for a team
//! rule, the team's key exclusively. So two writers learning the same lesson at once are
//! serialised: the second sees the first's rule and merges into it. The lock ends with the
//! transaction, also when the client dies (the server rolls the transaction back).

pub mod conninfo;
mod schema;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement, Transaction};

use super::dedup::{self, Analysis, Judge, Relation, Thresholds};
use super::evidence::{Validation, Verdict};
use super::sqlite::{Candidate, DEFAULT_JUDGE_CALLS, LOOKUP_POSTINGS, ask_judge, failure_keys};
use super::{
    AttemptRow, FeedbackCounts, FeedbackEntry, FileChange, LearnOutcome, MergeChange, NewRule,
    Provenance, RuleEdit, RuleFilter, RuleStore, RunRow, Scope, Status, StoreChange, StoreError,
    StoredFailure, StoredRule, now,
};
use crate::rules::format::{Rule, one_line};

/// The owner of team rules.
pub const TEAM: &str = "";

/// Advisory lock class of an owner's learn lock (the object is a hash of the owner).
const LEARN_LOCK_CLASS: i32 = 0x706c_726c;

/// A store on a PostgreSQL server, seen from one project.
pub struct PgStore {
    client: RefCell<Client>,
    /// Statements prepared on this connection, by their SQL.
    cache: RefCell<HashMap<String, Statement>>,
    project: String,
    url: String,
    thresholds: Thresholds,
}

const RULE_COLUMNS: &str = "id, category, rule, \"when\", why, scope, status, note, \
    conflicts_with, created_at, updated_at, activated_at, last_learned_at, times_learned, \
    recurrences, times_validated";

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        // The driver's messages never carry the connection's password.
        let lost = e.is_closed()
            || e.as_db_error().is_some_and(|db| {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P")
            })
            || std::error::Error::source(&e).is_some_and(|c| c.is::<std::io::Error>());
        if lost {
            return StoreError::Unreachable(format!(
                "use the team store: the connection was lost: {e}"
            ));
        }
        match e.as_db_error() {
            Some(db) => StoreError::Server(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Server(e.to_string()),
        }
    }
}

/// A transaction whose statements are prepared once per connection (a learn is a dozen
/// statements; unprepared, each would cost a second round trip).
struct Tx<'t> {
    tx: Transaction<'t>,
    cache: &'t RefCell<HashMap<String, Statement>>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Tx<'_> {
    fn stmt(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.cache.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.cache.borrow_mut().insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let s = self.stmt(sql)?;
        self.tx.query(&s, params)
    }

    fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, postgres::Error> {
        let s = self.stmt(sql)?;
        self.tx.query_one(&s, params)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let s = self.stmt(sql)?;
        self.tx.query_opt(&s, params)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let s = self.stmt(sql)?;
        self.tx.execute(&s, params)
    }

    fn commit(self) -> Result<(), postgres::Error> {
        self.tx.commit()
    }
}

/// What the dedup lookup decided for a new rule.
struct Decision {
    /// The analysed rule (stored with a new rule).
    features: Analysis,
    /// The best rule it says the same as: (similarity, id, status).
    same: Option<(f64, String, Status)>,
    /// The closest active rule it contradicts: (similarity, id).
    conflict: Option<(f64, String)>,
}

impl PgStore {
    /// Connects to `url` (its password from the environment or `.pgpass`, see [`conninfo`])
    /// as project `project` and brings the schema up to date; a schema newer than this
    /// binary knows is refused untouched.
    pub fn connect(
        url: &str,
        project: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgStore, StoreError> {
        let shown = conninfo::redact(url);
        let mut config = conninfo::config(url, env).map_err(|e| StoreError::Invalid(e.0))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("promptloop");
        let client = config.connect(tls()?).map_err(|e| {
            StoreError::Unreachable(format!("connect to the team store {shown}: {e}"))
        })?;
        let store = PgStore {
            client: RefCell::new(client),
            cache: RefCell::new(HashMap::new()),
            project: project.to_string(),
            url: shown,
            thresholds: Thresholds::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The URL, redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The project key this store is seen from.
    pub fn project(&self) -> &str {
        &self.project
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        let (class, obj) = schema::MIGRATION_LOCK;
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&class, &obj])?;
        let found = schema::version(&mut tx.tx)?;
        if found > schema::latest() {
            tx.tx.rollback()?;
            return Err(StoreError::TooNew {
                path: self.url.clone().into(),
                found,
                known: schema::latest(),
            });
        }
        for (i, sql) in pending_migrations(found) {
            tx.tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO promptloop_schema(version, applied_at) VALUES ($1, $2)",
                &[&(i32::try_from(i + 1).unwrap_or(i32::MAX)), &now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of rules this project sees (its own and the team's, every status).
    pub fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT COUNT(*) FROM rules WHERE owner = ANY($1)",
                &[&self.visible()],
            )?
            .get(0);
        Ok(n.max(0) as usize)
    }

    /// Begins a transaction with this connection's statement cache.
    fn begin<'a>(&'a self, client: &'a mut Client) -> Result<Tx<'a>, StoreError> {
        Ok(Tx {
            tx: client.transaction()?,
            cache: &self.cache,
        })
    }

    /// The owners whose rules this project sees.
    fn visible(&self) -> Vec<String> {
        vec![self.project.clone(), TEAM.to_string()]
    }

    /// The owner a rule of `scope` is kept under.
    fn owner_of(&self, scope: Scope) -> String {
        match scope {
            Scope::Team => TEAM.to_string(),
            Scope::Project | Scope::Global => self.project.clone(),
        }
    }

    /// Takes the learn locks for `owner` until the transaction ends: a team learn excludes
    /// every other learn; a project learn excludes the project's others and team learns.
    fn lock_learn(tx: &mut Tx<'_>, owner: &str) -> Result<(), StoreError> {
        let team = lock_object(TEAM);
        if owner == TEAM {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&LEARN_LOCK_CLASS, &team],
            )?;
        } else {
            // The shared team lock first, then the project's: one order for every writer.
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1, $2), pg_advisory_xact_lock($1, $3)",
                &[&LEARN_LOCK_CLASS, &team, &lock_object(owner)],
            )?;
        }
        Ok(())
    }

    /// The dedup decision for `rule` among the rules of `owners`: the one place the dedup
    /// module is called at insert, the way `SqliteStore::learn` calls it (analyse, the
    /// weighted candidate lookup over the token index, compare with rarity weights, the
    /// judge for the closest unsure ones).
    fn decide(
        &self,
        tx: &mut Tx<'_>,
        owners: &[String],
        rule: &Rule,
        judge: Option<&dyn Judge>,
    ) -> Result<Decision, StoreError> {
        let features = dedup::analyse(&rule.rule, &rule.when);
        let verdicts = self.verdicts_in(tx, owners, &features, &rule.rule, judge)?;
        let mut same: Option<(u8, f64, String, Status)> = None;
        let mut conflict: Option<(f64, String)> = None;
        for (c, verdict) in verdicts {
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
        Ok(Decision {
            features,
            same: same.map(|(_, sim, id, status)| (sim, id, status)),
            conflict,
        })
    }

    /// How the analysed rule `features` relates to the rules of `owners` it may relate to
    /// (weighted candidate lookup over the token index, compared with rarity weights, the
    /// judge asked about the closest unsure ones).
    fn verdicts_in(
        &self,
        tx: &mut Tx<'_>,
        owners: &[String],
        features: &Analysis,
        text: &str,
        judge: Option<&dyn Judge>,
    ) -> Result<Vec<(Candidate, dedup::Verdict)>, StoreError> {
        let bound = if judge.is_some() {
            self.thresholds.unsure
        } else {
            self.thresholds.lookup
        };
        let mut df = HashMap::new();
        let docs = docs(tx, owners)?;
        let found = candidates(tx, owners, features, bound, docs, &self.thresholds, &mut df)?;
        let rarity = |token: &str| dedup::idf(docs, df.get(token).copied().unwrap_or(0).max(1));
        let mut verdicts: Vec<(Candidate, dedup::Verdict)> = found
            .into_iter()
            .map(|c| {
                let v = dedup::compare(features, &c.analysis, &rarity, &self.thresholds);
                (c, v)
            })
            .collect();
        if let Some(judge) = judge {
            ask_judge(&mut verdicts, text, judge, DEFAULT_JUDGE_CALLS);
        }
        Ok(verdicts)
    }

    /// Adds what `gone` holds (counters, provenance, targets) to `kept`, inside `tx`.
    fn add_merge(
        tx: &mut Tx<'_>,
        kept: &StoredRule,
        gone: &StoredRule,
    ) -> Result<MergeChange, StoreError> {
        let provenance_from: i64 = tx
            .query_one(
                "SELECT (COALESCE(MAX(seq), -1) + 1)::BIGINT FROM provenance WHERE rule_id = $1",
                &[&kept.id],
            )?
            .get(0);
        for p in &gone.provenance {
            add_provenance(tx, &kept.id, p)?;
        }
        let counts = [gone.times_learned, gone.recurrences, gone.times_validated];
        let last = kept
            .last_learned_at
            .clone()
            .max(gone.last_learned_at.clone());
        tx.execute(
            "UPDATE rules SET times_learned = times_learned + $2, recurrences = recurrences + $3,
                 times_validated = times_validated + $4, last_learned_at = $5, updated_at = $6
             WHERE id = $1",
            &[
                &kept.id,
                &i64::from(counts[0]),
                &i64::from(counts[1]),
                &i64::from(counts[2]),
                &last,
                &now(),
            ],
        )?;
        let targets_added: Vec<String> = gone
            .targets
            .iter()
            .filter(|t| !kept.targets.contains(t))
            .cloned()
            .collect();
        add_targets(tx, &kept.id, &targets_added)?;
        Ok(MergeChange {
            absorbed: gone.id.clone(),
            counts,
            provenance_from,
            targets_added,
            undone: false,
        })
    }

    /// Resolves an id or a unique prefix among the rules this project sees.
    fn resolve(&self, client: &mut impl GenericClient, id: &str) -> Result<String, StoreError> {
        let id = id.trim();
        let wanted = if id.starts_with("r-") {
            id.to_string()
        } else {
            format!("r-{id}")
        };
        if wanted.len() <= 2 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let visible = self.visible();
        if client
            .query_opt(
                "SELECT 1 FROM rules WHERE id = $1 AND owner = ANY($2)",
                &[&wanted, &visible],
            )?
            .is_some()
        {
            return Ok(wanted);
        }
        let found: Vec<String> = client
            .query(
                "SELECT id FROM rules WHERE starts_with(id, $1) AND owner = ANY($2)
                 ORDER BY id LIMIT 4",
                &[&wanted, &visible],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        match found.len() {
            0 => Err(StoreError::NotFound(id.to_string())),
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            _ => Err(StoreError::Ambiguous(id.to_string(), found.join(", "))),
        }
    }

    /// Rules by a query whose first columns are [`RULE_COLUMNS`], with targets and
    /// provenance (two more queries for all of them).
    fn query_rules(
        client: &mut impl GenericClient,
        sql: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredRule>, StoreError> {
        let mut rules = Vec::new();
        for row in client.query(sql, args)? {
            rules.push(rule_from_row(&row)?);
        }
        if rules.is_empty() {
            return Ok(rules);
        }
        let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        let mut targets: HashMap<String, Vec<String>> = HashMap::new();
        for row in client.query(
            "SELECT rule_id, target FROM rule_targets WHERE rule_id = ANY($1)
             ORDER BY rule_id, target",
            &[&ids],
        )? {
            targets.entry(row.get(0)).or_default().push(row.get(1));
        }
        let mut provenance: HashMap<String, Vec<Provenance>> = HashMap::new();
        for row in client.query(
            "SELECT rule_id, failure_id, failure_type, source, task, teacher, model, run_id,
                 learned_at, text
             FROM provenance WHERE rule_id = ANY($1) ORDER BY rule_id, seq",
            &[&ids],
        )? {
            provenance.entry(row.get(0)).or_default().push(Provenance {
                failure_id: row.get(1),
                failure_type: row.get(2),
                source: row.get(3),
                task: row.get(4),
                teacher: row.get(5),
                model: row.get(6),
                run_id: row.get(7),
                learned_at: row.get(8),
                text: row.get(9),
            });
        }
        for rule in &mut rules {
            rule.targets = targets.remove(&rule.id).unwrap_or_default();
            rule.provenance = provenance.remove(&rule.id).unwrap_or_default();
        }
        Ok(rules)
    }

    fn load(client: &mut impl GenericClient, id: &str) -> Result<StoredRule, StoreError> {
        Self::query_rules(
            client,
            &format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1"),
            &[&id],
        )?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }
}

/// Version `i` with its SQL, for every migration above `found`.
fn pending_migrations(found: i64) -> impl Iterator<Item = (usize, &'static str)> {
    schema::MIGRATIONS
        .iter()
        .copied()
        .enumerate()
        .skip(found.max(0) as usize)
}

/// TLS for `sslmode=prefer|require` (rustls with the platform's certificate verifier);
/// `sslmode=disable` never uses it.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier()
        .map_err(|e| StoreError::Invalid(format!("set up TLS for the team store: {e}")))?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The object id of an owner's advisory lock.
fn lock_object(owner: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in owner.as_bytes() {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

pub(in crate::store) fn fnv1a(bytes: &[u8]) -> u64 {
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

fn count_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn rule_from_row(r: &Row) -> Result<StoredRule, StoreError> {
    let id: String = r.get(0);
    let scope: String = r.get(5);
    let status: String = r.get(6);
    let (Some(scope), Ok(status)) = (Scope::parse(&scope), parse_status(&status)) else {
        return Err(StoreError::Corrupt(format!(
            "rule {id}: bad scope or status"
        )));
    };
    Ok(StoredRule {
        id,
        rule: Rule {
            category: r.get(1),
            rule: r.get(2),
            when: r.get(3),
            why: r.get(4),
        },
        scope,
        targets: Vec::new(),
        status,
        note: r.get(7),
        conflicts_with: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        activated_at: r.get(11),
        last_learned_at: r.get(12),
        times_learned: count_u32(r.get(13)),
        recurrences: count_u32(r.get(14)),
        times_validated: count_u32(r.get(15)),
        provenance: Vec::new(),
    })
}

/// Status preference for a merge: an active rule first, then proposed, then retired.
fn status_rank(s: Status) -> u8 {
    match s {
        Status::Active => 0,
        Status::Proposed => 1,
        Status::Retired => 2,
    }
}

/// How many rules `owners` hold, for rarity weights.
fn docs(tx: &mut Tx<'_>, owners: &[String]) -> Result<u64, StoreError> {
    let n: i64 = tx
        .query_one(
            "SELECT COALESCE(SUM(rules), 0)::BIGINT FROM owners WHERE owner = ANY($1)",
            &[&owners],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Document frequencies of `tokens` over `owners`, added to `cache` (0 for unknown ones).
fn load_df(
    tx: &mut Tx<'_>,
    owners: &[String],
    tokens: &[&str],
    cache: &mut HashMap<String, u64>,
) -> Result<(), StoreError> {
    let wanted: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|t| !cache.contains_key(*t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    for t in &wanted {
        cache.insert((*t).to_string(), 0);
    }
    for row in tx.query(
        "SELECT token, SUM(df)::BIGINT FROM token_df
         WHERE owner = ANY($1) AND token = ANY($2) GROUP BY token",
        &[&owners, &wanted],
    )? {
        let df: i64 = row.get(1);
        cache.insert(row.get(0), df.max(0) as u64);
    }
    Ok(())
}

/// Stored rules of `owners` that may share `bound` of `a`'s weight: the weighted prefix
/// lookup `SqliteStore::candidates` makes (terms in more than [`LOOKUP_POSTINGS`] rules
/// skipped unless the rare ones carry under half the weight; probed until what is left
/// out weighs under half the bound), with the postings summed on the server, then the exact
/// weighted overlap checked here. `df` ends up holding every token of `a` and of the
/// candidates, for the comparison's rarity weights.
fn candidates(
    tx: &mut Tx<'_>,
    owners: &[String],
    a: &Analysis,
    bound: f64,
    docs: u64,
    t: &Thresholds,
    df: &mut HashMap<String, u64>,
) -> Result<Vec<Candidate>, StoreError> {
    let mine: Vec<&str> = a.tokens().collect();
    load_df(tx, owners, &mine, df)?;
    let freq = |token: &str| df.get(token).copied().unwrap_or(0);
    let mut by_weight: Vec<(f64, &str)> = a
        .terms
        .iter()
        .map(|term| {
            let w = dedup::term_weight(term, dedup::idf(docs, freq(&term.text).max(1)), t);
            (w, term.text.as_str())
        })
        .collect();
    by_weight.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(y.1)));
    let total: f64 = by_weight.iter().map(|(w, _)| *w).sum();
    let mut rare: Vec<(f64, &str)> = by_weight
        .iter()
        .copied()
        .filter(|(_, tok)| freq(tok) <= LOOKUP_POSTINGS)
        .collect();
    let mut common: Vec<(f64, &str)> = by_weight
        .iter()
        .copied()
        .filter(|(_, tok)| freq(tok) > LOOKUP_POSTINGS)
        .collect();
    common.sort_by_key(|(_, tok)| freq(tok));
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
    let probed = dedup::probe_len(&rare_weights, bound / 2.0);
    let unprobed: f64 = rare_weights[probed..].iter().sum();
    let (probe_tokens, probe_weights): (Vec<&str>, Vec<f64>) = rare
        .iter()
        .take(probed)
        .filter(|(_, tok)| freq(tok) > 0)
        .map(|(w, tok)| (*tok, *w))
        .unzip();
    if probe_tokens.is_empty() {
        return Ok(Vec::new());
    }
    let need_rare = bound * rare_total - 1e-9;
    let need = bound * total - 1e-9;
    let ids: Vec<String> = tx
        .query(
            "SELECT t.rule_id FROM rule_tokens t
               JOIN unnest($2::TEXT[], $3::FLOAT8[]) AS p(token, w) ON p.token = t.token
             WHERE t.owner = ANY($1)
             GROUP BY t.rule_id HAVING SUM(p.w) + $4::FLOAT8 >= $5::FLOAT8",
            &[
                &owners,
                &probe_tokens,
                &probe_weights,
                &unprobed,
                &need_rare,
            ],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let weights: HashMap<&str, f64> = by_weight.iter().map(|(w, tok)| (*tok, *w)).collect();
    let mut out = Vec::new();
    for row in tx.query(
        "SELECT id, status, features, rule, \"when\" FROM rules WHERE id = ANY($1) ORDER BY id",
        &[&ids],
    )? {
        let id: String = row.get(0);
        let features: String = row.get(2);
        let overlap: f64 = Analysis::tokens_of(&features)
            .filter_map(|tok| weights.get(tok))
            .sum();
        if overlap < need {
            continue;
        }
        let text: String = row.get(3);
        // A form of another analysis version is analysed again from the stored text.
        let analysis = Analysis::decode(&features).unwrap_or_else(|| {
            let when: String = row.get(4);
            dedup::analyse(&text, &when)
        });
        let status: String = row.get(1);
        out.push(Candidate {
            id,
            status: parse_status(&status)?,
            analysis,
            text,
        });
    }
    let theirs: Vec<&str> = out.iter().flat_map(|c| c.analysis.tokens()).collect();
    load_df(tx, owners, &theirs, df)?;
    Ok(out)
}

fn new_id(client: &mut Tx<'_>, seed: &str) -> Result<String, StoreError> {
    let nanos = chrono::Local::now().timestamp_nanos_opt().unwrap_or(0);
    let pid = std::process::id();
    for attempt in 0u64..64 {
        let hash = fnv1a(format!("{seed}\u{0}{nanos}\u{0}{pid}\u{0}{attempt}").as_bytes());
        let id = if attempt < 32 {
            format!("r-{:06x}", hash & 0xff_ffff)
        } else {
            format!("r-{:08x}", hash & 0xffff_ffff)
        };
        if client
            .query_opt("SELECT 1 FROM rules WHERE id = $1", &[&id])?
            .is_none()
        {
            return Ok(id);
        }
    }
    Err(StoreError::Invalid(
        "make a rule id: every candidate is taken".into(),
    ))
}

/// A rule's distinct tokens, sorted.
fn token_set(f: &Analysis) -> Vec<String> {
    f.tokens()
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Inserts a rule row under `owner` with its targets, tokens and provenance (inside the
/// caller's transaction).
fn insert_row(
    tx: &mut Tx<'_>,
    owner: &str,
    rule: &StoredRule,
    features: &Analysis,
) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO rules ({RULE_COLUMNS}, owner, features) VALUES
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ),
        &[
            &rule.id,
            &rule.rule.category,
            &rule.rule.rule,
            &rule.rule.when,
            &rule.rule.why,
            &rule.scope.as_str(),
            &rule.status.as_str(),
            &rule.note,
            &rule.conflicts_with,
            &rule.created_at,
            &rule.updated_at,
            &rule.activated_at,
            &rule.last_learned_at,
            &i64::from(rule.times_learned),
            &i64::from(rule.recurrences),
            &i64::from(rule.times_validated),
            &owner,
            &features.encode(),
        ],
    )?;
    tx.execute(
        "INSERT INTO owners(owner, rules) VALUES ($1, 1)
         ON CONFLICT (owner) DO UPDATE SET rules = owners.rules + 1",
        &[&owner],
    )?;
    add_targets(tx, &rule.id, &rule.targets)?;
    index_tokens(tx, owner, &rule.id, features)?;
    for p in &rule.provenance {
        add_provenance(tx, &rule.id, p)?;
    }
    Ok(())
}

fn add_targets(tx: &mut Tx<'_>, id: &str, targets: &[String]) -> Result<(), StoreError> {
    if targets.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO rule_targets(rule_id, target) SELECT $1, t FROM unnest($2::TEXT[]) t
         ON CONFLICT DO NOTHING",
        &[&id, &targets],
    )?;
    Ok(())
}

fn index_tokens(
    tx: &mut Tx<'_>,
    owner: &str,
    id: &str,
    features: &Analysis,
) -> Result<(), StoreError> {
    let tokens = token_set(features);
    if tokens.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO rule_tokens(owner, token, rule_id) SELECT $1, t, $2 FROM unnest($3::TEXT[]) t
         ON CONFLICT DO NOTHING",
        &[&owner, &id, &tokens],
    )?;
    tx.execute(
        "INSERT INTO token_df(owner, token, df) SELECT $1, t, 1 FROM unnest($2::TEXT[]) t
         ON CONFLICT (owner, token) DO UPDATE SET df = token_df.df + 1",
        &[&owner, &tokens],
    )?;
    Ok(())
}

fn unindex_tokens(tx: &mut Tx<'_>, id: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE token_df d SET df = d.df - 1 FROM rule_tokens t
         WHERE t.rule_id = $1 AND d.owner = t.owner AND d.token = t.token",
        &[&id],
    )?;
    tx.execute("DELETE FROM rule_tokens WHERE rule_id = $1", &[&id])?;
    Ok(())
}

fn add_provenance(tx: &mut Tx<'_>, id: &str, p: &Provenance) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO provenance(rule_id, seq, failure_id, failure_type, source, task,
             teacher, model, run_id, learned_at, text)
         VALUES ($1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM provenance WHERE rule_id = $1),
             $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id,
            &p.failure_id,
            &p.failure_type,
            &p.source,
            &p.task,
            &p.teacher,
            &p.model,
            &p.run_id,
            &p.learned_at,
            &p.text,
        ],
    )?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

impl PgStore {
    /// Learns `new` as [`RuleStore::learn`] does; with `queue_id` (a lesson learned while the
    /// server was unreachable) only once: the id is recorded in `sync_applied` in the same
    /// transaction, and a lesson whose id is there already is skipped (`None`).
    pub fn learn_once(
        &self,
        new: NewRule,
        judge: Option<&dyn Judge>,
        queue_id: Option<&str>,
    ) -> Result<Option<LearnOutcome>, StoreError> {
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
        let owner = self.owner_of(new.scope);
        // A project's learn sees its own rules and the team's; a team learn the team's.
        let owners = if owner == TEAM {
            vec![TEAM.to_string()]
        } else {
            self.visible()
        };
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        Self::lock_learn(&mut tx, &owner)?;
        if let Some(qid) = queue_id {
            let seen = tx.query_opt("SELECT 1 FROM sync_applied WHERE id = $1", &[&qid])?;
            if seen.is_some() {
                return Ok(None);
            }
        }
        let decision = self.decide(&mut tx, &owners, &rule, judge)?;
        let stamp = now();
        let mut provenance = new.provenance.clone();
        provenance.text = rule.rule.clone();
        if provenance.learned_at.is_empty() {
            provenance.learned_at = stamp.clone();
        }
        let outcome = if let Some((sim, id, status)) = decision.same {
            // The row lock taken here orders concurrent merges into one team rule.
            tx.execute(
                "UPDATE rules SET times_learned = times_learned + 1, last_learned_at = $2,
                     updated_at = $2 WHERE id = $1",
                &[&id, &stamp],
            )?;
            add_provenance(&mut tx, &id, &provenance)?;
            add_targets(&mut tx, &id, &new.targets)?;
            LearnOutcome::Merged {
                id,
                status,
                similarity: sim,
            }
        } else {
            let (status, note, conflicts_with) = match &decision.conflict {
                Some((_, with)) => {
                    let theirs: String = tx
                        .query_one("SELECT rule FROM rules WHERE id = $1", &[with])?
                        .get(0);
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
            let id = new_id(&mut tx, &rule.rule)?;
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
            insert_row(&mut tx, &owner, &stored, &decision.features)?;
            match conflicts_with {
                Some(with) => LearnOutcome::Conflict { id, with },
                None => LearnOutcome::Added { id, status },
            }
        };
        if let Some(ms) = test_stall() {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if let Some(qid) = queue_id {
            tx.execute(
                "INSERT INTO sync_applied(id, project, rule_id, applied_at) VALUES ($1, $2, $3, $4)",
                &[&qid, &self.project, &outcome.id(), &stamp],
            )?;
        }
        tx.commit()?;
        Ok(Some(outcome))
    }
}

impl PgStore {
    /// Appends one event of a run inside `tx`, updating the run and attempt rows.
    fn apply_event(
        &self,
        tx: &mut Tx<'_>,
        run_id: &str,
        event: &serde_json::Value,
    ) -> Result<(), StoreError> {
        use super::run_event::{self, RowUpdate};
        let (kind, update) = run_event::read(run_id, event);
        let p = &self.project;
        tx.execute(
            "INSERT INTO events(project, run_id, seq, type, data)
             VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events
                              WHERE project = $1 AND run_id = $2), $3, $4)",
            &[p, &run_id, &kind, &event.to_string()],
        )?;
        match update {
            RowUpdate::RunStarted {
                task,
                agent,
                teacher,
                rules_file,
                started_at,
            } => {
                tx.execute(
                    "INSERT INTO runs(project, id, task, agent, teacher, rules_file, started_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (project, id) DO UPDATE SET task = excluded.task",
                    &[
                        p,
                        &run_id,
                        &task,
                        &agent,
                        &teacher,
                        &rules_file,
                        &started_at,
                    ],
                )?;
            }
            RowUpdate::AttemptStarted { attempt } => {
                tx.execute(
                    "INSERT INTO attempts(project, run_id, attempt) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[p, &run_id, &attempt],
                )?;
            }
            RowUpdate::AgentFinished {
                attempt,
                status,
                changed_files,
            } => {
                tx.execute(
                    "UPDATE attempts SET agent_status = $4, changed_files = $5
                     WHERE project = $1 AND run_id = $2 AND attempt = $3",
                    &[p, &run_id, &attempt, &status, &changed_files],
                )?;
            }
            RowUpdate::TestsFinished {
                attempt,
                outcome,
                failing,
            } => {
                tx.execute(
                    "UPDATE attempts SET tests_outcome = $4, failing = $5
                     WHERE project = $1 AND run_id = $2 AND attempt = $3",
                    &[p, &run_id, &attempt, &outcome, &failing],
                )?;
            }
            RowUpdate::FailureCaptured {
                attempt,
                failure_id,
            } => {
                tx.execute(
                    "UPDATE attempts SET failure_id = $4
                     WHERE project = $1 AND run_id = $2 AND attempt = $3",
                    &[p, &run_id, &attempt, &failure_id],
                )?;
            }
            RowUpdate::RuleLearned {
                failure_id,
                rule_id,
            } => {
                tx.execute(
                    "UPDATE attempts SET rule_id = $4
                     WHERE project = $1 AND run_id = $2 AND failure_id = $3",
                    &[p, &run_id, &failure_id, &rule_id],
                )?;
            }
            RowUpdate::AttemptReverted { attempt } => {
                tx.execute(
                    "UPDATE attempts SET reverted = TRUE
                     WHERE project = $1 AND run_id = $2 AND attempt = $3",
                    &[p, &run_id, &attempt],
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
                tx.execute(
                    "UPDATE runs SET outcome = $3, attempts = $4, rules_learned = $5,
                         pending = $6, cost_usd = $7, duration_ms = $8, message = $9
                     WHERE project = $1 AND id = $2",
                    &[
                        p,
                        &run_id,
                        &outcome,
                        &attempts,
                        &rules_learned,
                        &pending,
                        &cost_usd,
                        &duration_ms,
                        &message,
                    ],
                )?;
                if outcome == Some("passed") {
                    // The run passed after learning these: evidence that they help.
                    tx.execute(
                        "UPDATE rules SET times_validated = times_validated + 1
                         WHERE id IN (SELECT DISTINCT rule_id FROM provenance WHERE run_id = $1)",
                        &[&run_id],
                    )?;
                }
            }
            RowUpdate::Nothing => {}
        }
        Ok(())
    }

    /// Appends events of run `run_id` recorded while the server was unreachable, in one
    /// transaction, each only once: `(origin, seq)` names an event of one offline store, and
    /// is recorded in `sync_applied` beside it. Returns how many were new here.
    pub fn apply_offline_events(
        &self,
        origin: &str,
        run_id: &str,
        events: &[(i64, serde_json::Value)],
    ) -> Result<usize, StoreError> {
        let ids: Vec<String> = events
            .iter()
            .map(|(seq, _)| format!("ev:{origin}:{run_id}:{seq}"))
            .collect();
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        let seen: std::collections::HashSet<String> = tx
            .query("SELECT id FROM sync_applied WHERE id = ANY($1)", &[&ids])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let stamp = now();
        let mut applied = 0;
        for ((_, event), id) in events.iter().zip(&ids) {
            if seen.contains(id) {
                continue;
            }
            self.apply_event(&mut tx, run_id, event)?;
            tx.execute(
                "INSERT INTO sync_applied(id, project, rule_id, applied_at) VALUES ($1, $2, NULL, $3)",
                &[id, &self.project, &stamp],
            )?;
            applied += 1;
        }
        tx.commit()?;
        Ok(applied)
    }

    /// The rule a lesson with queue id `queue_id` was learned into, when the server has
    /// applied it.
    pub fn applied_rule(&self, queue_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT rule_id FROM sync_applied WHERE id = $1",
                &[&queue_id],
            )?
            .and_then(|r| r.get(0)))
    }
}

impl RuleStore for PgStore {
    fn learn(&self, new: NewRule, judge: Option<&dyn Judge>) -> Result<LearnOutcome, StoreError> {
        self.learn_once(new, judge, None)?
            .ok_or_else(|| StoreError::Invalid("learn a rule: nothing was learned".into()))
    }

    fn insert(&self, rule: &StoredRule) -> Result<String, StoreError> {
        if one_line(&rule.rule.rule).is_empty() {
            return Err(StoreError::Invalid(
                "import a rule: its text is empty".into(),
            ));
        }
        let owner = self.owner_of(rule.scope);
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        Self::lock_learn(&mut tx, &owner)?;
        let taken = rule.id.is_empty()
            || tx
                .query_opt("SELECT 1 FROM rules WHERE id = $1", &[&rule.id])?
                .is_some();
        let mut rule = rule.clone();
        if taken {
            rule.id = new_id(&mut tx, &rule.rule.rule)?;
        }
        let features = dedup::analyse(&rule.rule.rule, &rule.rule.when);
        insert_row(&mut tx, &owner, &rule, &features)?;
        tx.commit()?;
        Ok(rule.id)
    }

    fn get(&self, id: &str) -> Result<StoredRule, StoreError> {
        let mut client = self.client.borrow_mut();
        let id = self.resolve(&mut *client, id)?;
        Self::load(&mut *client, &id)
    }

    fn list(&self, filter: &RuleFilter) -> Result<Vec<StoredRule>, StoreError> {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        let all = statuses.is_empty();
        let mut client = self.client.borrow_mut();
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM rules r
             WHERE owner = ANY($1) AND ($2 OR status = ANY($3))
               AND ($4::TEXT IS NULL OR EXISTS (SELECT 1 FROM rule_targets t
                    WHERE t.rule_id = r.id AND t.target = $4))
             ORDER BY created_at, id"
        );
        Self::query_rules(
            &mut *client,
            &sql,
            &[&self.visible(), &all, &statuses, &filter.target],
        )
    }

    fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
    ) -> Result<StoreChange, StoreError> {
        let mut client = self.client.borrow_mut();
        let id = self.resolve(&mut *client, id)?;
        let mut tx = self.begin(&mut client)?;
        let before: String = tx
            .query_one("SELECT status FROM rules WHERE id = $1 FOR UPDATE", &[&id])?
            .get(0);
        let before = parse_status(&before)?;
        tx.execute(
            "UPDATE rules SET status = $2, note = $3, updated_at = $4,
                 activated_at = CASE WHEN $2 = 'active' AND status != 'active' THEN $4
                                     ELSE activated_at END
             WHERE id = $1",
            &[&id, &status.as_str(), &note, &now()],
        )?;
        tx.commit()?;
        Ok(StoreChange::status(id, before, status))
    }

    fn edit(&self, id: &str, edit: &RuleEdit) -> Result<StoreChange, StoreError> {
        let mut client = self.client.borrow_mut();
        let id = self.resolve(&mut *client, id)?;
        let current = Self::load(&mut *client, &id)?;
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
        let owner = self.owner_of(current.scope);
        let mut tx = self.begin(&mut client)?;
        Self::lock_learn(&mut tx, &owner)?;
        let features = dedup::analyse(&rule.rule, &rule.when);
        tx.execute(
            "UPDATE rules SET category = $2, rule = $3, \"when\" = $4, why = $5, features = $6,
                 updated_at = $7 WHERE id = $1",
            &[
                &id,
                &rule.category,
                &rule.rule,
                &rule.when,
                &rule.why,
                &features.encode(),
                &now(),
            ],
        )?;
        unindex_tokens(&mut tx, &id)?;
        index_tokens(&mut tx, &owner, &id, &features)?;
        if let Some(targets) = &edit.targets {
            tx.execute("DELETE FROM rule_targets WHERE rule_id = $1", &[&id])?;
            add_targets(&mut tx, &id, targets)?;
        }
        tx.commit()?;
        Ok(StoreChange::edited(id, current.status, current.rule))
    }

    fn ranked_for_target(&self, target: &str) -> Result<Vec<StoredRule>, StoreError> {
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM rules r
             WHERE owner = ANY($1) AND status = 'active'
               AND EXISTS (SELECT 1 FROM rule_targets t WHERE t.rule_id = r.id AND t.target = $2)
             ORDER BY 3 * times_validated + 2 * times_learned + recurrences DESC,
                      last_learned_at DESC, id"
        );
        let mut client = self.client.borrow_mut();
        Self::query_rules(&mut *client, &sql, &[&self.visible(), &target])
    }

    fn targets(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT t.target FROM rule_targets t JOIN rules r ON r.id = t.rule_id
               WHERE r.owner = ANY($1)
             UNION SELECT target FROM file_changes WHERE project = $2 ORDER BY 1",
            &[&self.visible(), &self.project],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn log_file_change(&self, change: &FileChange) -> Result<i64, StoreError> {
        let row = self.client.borrow_mut().query_one(
            "INSERT INTO file_changes(project, target, at, reason, old_body, new_body, shown,
                 hidden, store_changes, undone_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
            &[
                &self.project,
                &change.target,
                &change.at,
                &change.reason,
                &change.old_body,
                &change.new_body,
                &to_json(&change.shown),
                &(change.hidden as i64),
                &to_json(&change.store_changes),
                &change.undone_by,
            ],
        )?;
        Ok(row.get(0))
    }

    fn file_changes(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileChange>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT seq, target, at, reason, old_body, new_body, shown, hidden, store_changes,
                 undone_by
             FROM file_changes WHERE project = $1 AND ($2::TEXT IS NULL OR target = $2)
             ORDER BY seq DESC LIMIT $3",
            &[
                &self.project,
                &target,
                &(limit.min(i64::MAX as usize) as i64),
            ],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let seq: i64 = r.get(0);
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("log #{seq}: {e}"));
            let shown: String = r.get(6);
            let changes: String = r.get(8);
            let hidden: i64 = r.get(7);
            out.push(FileChange {
                seq,
                target: r.get(1),
                at: r.get(2),
                reason: r.get(3),
                old_body: r.get(4),
                new_body: r.get(5),
                shown: serde_json::from_str(&shown).map_err(corrupt)?,
                hidden: hidden.max(0) as usize,
                store_changes: serde_json::from_str(&changes).map_err(corrupt)?,
                undone_by: r.get(9),
            });
        }
        Ok(out)
    }

    fn mark_undone(&self, seq: i64, by: i64) -> Result<(), StoreError> {
        self.client.borrow_mut().execute(
            "UPDATE file_changes SET undone_by = $3 WHERE project = $1 AND seq = $2",
            &[&self.project, &seq, &by],
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
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        // `xmax = 0` only for a row this statement inserted.
        let inserted: bool = tx
            .query_one(
                "INSERT INTO failures(project, id, status, failure_type, source, run_id, attempt,
                     captured_at, data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (project, id) DO UPDATE SET status = excluded.status,
                     data = excluded.data
                 RETURNING (xmax = 0)",
                &[
                    &self.project,
                    &c.id,
                    &status,
                    &c.failure_type,
                    &c.source,
                    &c.run_id,
                    &c.attempt.map(i64::from),
                    &c.captured_at,
                    &data,
                ],
            )?
            .get(0);
        if inserted {
            let keys: Vec<String> = failure_keys(failure).into_iter().collect();
            tx.execute(
                "INSERT INTO failure_keys(project, key, failure_id)
                 SELECT $1, k, $2 FROM unnest($3::TEXT[]) k ON CONFLICT DO NOTHING",
                &[&self.project, &c.id, &keys],
            )?;
            // The same failing tests again, while a rule learned from them was active.
            let rules: Vec<String> = tx
                .query(
                    "SELECT DISTINCT p.rule_id FROM failure_keys k
                       JOIN provenance p ON p.failure_id = k.failure_id
                       JOIN rules r ON r.id = p.rule_id
                     WHERE k.project = $1 AND k.key = ANY($2) AND k.failure_id != $3
                       AND r.owner = ANY($5) AND r.status = 'active'
                       AND r.activated_at IS NOT NULL AND r.activated_at <= $4
                     ORDER BY 1",
                    &[&self.project, &keys, &c.id, &c.captured_at, &self.visible()],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for id in rules {
                let added = tx.execute(
                    "INSERT INTO rule_recurrences(rule_id, failure_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&id, &c.id],
                )?;
                if added > 0 {
                    tx.execute(
                        "UPDATE rules SET recurrences = recurrences + 1 WHERE id = $1",
                        &[&id],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn failures(&self) -> Result<Vec<StoredFailure>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT id, data FROM failures WHERE project = $1 ORDER BY captured_at, id",
            &[&self.project],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            let data: String = r.get(1);
            out.push(
                serde_json::from_str(&data)
                    .map_err(|e| StoreError::Corrupt(format!("failure {id}: {e}")))?,
            );
        }
        Ok(out)
    }

    fn record_event(&self, run_id: &str, event: &serde_json::Value) -> Result<(), StoreError> {
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        self.apply_event(&mut tx, run_id, event)?;
        tx.commit()?;
        Ok(())
    }

    fn events(&self) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT run_id, seq, data FROM events WHERE project = $1 ORDER BY run_id, seq",
            &[&self.project],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let (run_id, seq, data): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
            let event = serde_json::from_str(&data)
                .map_err(|e| StoreError::Corrupt(format!("event {seq} of run {run_id}: {e}")))?;
            out.push((run_id, seq, event));
        }
        Ok(out)
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT id, task, agent, teacher, started_at, outcome, attempts, rules_learned,
                 pending, cost_usd, duration_ms, message
             FROM runs WHERE project = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
            &[&self.project, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                id: r.get(0),
                task: r.get(1),
                agent: r.get(2),
                teacher: r.get(3),
                started_at: r.get(4),
                outcome: r.get(5),
                attempts: count_u32(r.get(6)),
                rules_learned: count_u32(r.get(7)),
                pending: count_u32(r.get(8)),
                cost_usd: r.get(9),
                duration_ms: r.get::<_, Option<i64>>(10).map(|v| v.max(0) as u64),
                message: r.get(11),
            })
            .collect())
    }

    fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT run_id, attempt, agent_status, changed_files, tests_outcome, failing,
                 failure_id, rule_id, reverted
             FROM attempts WHERE project = $1 AND run_id = $2 ORDER BY attempt",
            &[&self.project, &run_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| AttemptRow {
                run_id: r.get(0),
                attempt: count_u32(r.get(1)),
                agent_status: r.get(2),
                changed_files: count_u32(r.get(3)),
                tests_outcome: r.get(4),
                failing: count_u32(r.get(5)),
                failure_id: r.get(6),
                rule_id: r.get(7),
                reverted: r.get(8),
            })
            .collect())
    }

    fn record_validation(&self, v: &Validation) -> Result<i64, StoreError> {
        let at = if v.at.is_empty() { now() } else { v.at.clone() };
        let row = self.client.borrow_mut().query_one(
            "INSERT INTO rule_validations(project, rule_id, at, verdict, trials, with_passed,
                 without_passed, broken, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
            &[
                &self.project,
                &v.rule_id,
                &at,
                &v.verdict.as_str(),
                &i32::try_from(v.trials).unwrap_or(i32::MAX),
                &i32::try_from(v.with_passed).unwrap_or(i32::MAX),
                &i32::try_from(v.without_passed).unwrap_or(i32::MAX),
                &to_json(&v.broken),
                &to_json(&v.detail),
            ],
        )?;
        Ok(row.get(0))
    }

    fn validations(&self, rule_id: Option<&str>) -> Result<Vec<Validation>, StoreError> {
        // Every validation of a rule this project sees, whichever project ran it.
        let rows = self.client.borrow_mut().query(
            "SELECT v.seq, v.rule_id, v.at, v.verdict, v.trials, v.with_passed,
                    v.without_passed, v.broken, v.data
             FROM rule_validations v JOIN rules r ON r.id = v.rule_id
             WHERE r.owner = ANY($1) AND ($2::TEXT IS NULL OR v.rule_id = $2)
             ORDER BY v.seq",
            &[&self.visible(), &rule_id],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let seq: i64 = r.get(0);
            let verdict: String = r.get(3);
            let what = format!("validation #{seq}");
            out.push(Validation {
                seq,
                rule_id: r.get(1),
                at: r.get(2),
                verdict: Verdict::parse(&verdict).ok_or_else(|| {
                    StoreError::Corrupt(format!("{what}: unknown verdict {verdict:?}"))
                })?,
                trials: count_u32(i64::from(r.get::<_, i32>(4))),
                with_passed: count_u32(i64::from(r.get::<_, i32>(5))),
                without_passed: count_u32(i64::from(r.get::<_, i32>(6))),
                broken: from_json(&what, r.get(7))?,
                detail: from_json(&what, r.get(8))?,
            });
        }
        Ok(out)
    }

    fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, FeedbackCounts), StoreError> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        let rule_id = self.resolve(&mut tx.tx, id)?;
        tx.execute(
            "INSERT INTO rule_feedback(project, rule_id, helped, note, source, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&self.project, &rule_id, &helped, &note, &source, &now()],
        )?;
        let counts = feedback_counts_of(&mut tx.tx, &rule_id)?;
        tx.commit()?;
        Ok((rule_id, counts))
    }

    fn keep_feedback(&self, entry: &FeedbackEntry) -> Result<(), StoreError> {
        self.client.borrow_mut().execute(
            "INSERT INTO rule_feedback(project, rule_id, helped, note, source, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &self.project,
                &entry.rule_id,
                &entry.helped,
                &entry.note,
                &entry.source,
                &entry.at,
            ],
        )?;
        Ok(())
    }

    fn feedback_counts(&self, rule_id: &str) -> Result<FeedbackCounts, StoreError> {
        feedback_counts_of(&mut *self.client.borrow_mut(), rule_id)
    }

    fn all_feedback_counts(&self) -> Result<HashMap<String, FeedbackCounts>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT f.rule_id, COUNT(*) FILTER (WHERE f.helped), COUNT(*) FILTER (WHERE NOT f.helped)
             FROM rule_feedback f JOIN rules r ON r.id = f.rule_id
             WHERE r.owner = ANY($1) GROUP BY f.rule_id",
            &[&self.visible()],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    FeedbackCounts {
                        helped: count_u32(r.get(1)),
                        misled: count_u32(r.get(2)),
                    },
                )
            })
            .collect())
    }

    fn feedback_log(&self, rule_id: &str, limit: usize) -> Result<Vec<FeedbackEntry>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT seq, rule_id, helped, note, source, at FROM rule_feedback
             WHERE rule_id = $1 ORDER BY seq DESC LIMIT $2",
            &[&rule_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        Ok(rows
            .iter()
            .map(|r| FeedbackEntry {
                seq: r.get(0),
                rule_id: r.get(1),
                helped: r.get(2),
                note: r.get(3),
                source: r.get(4),
                at: r.get(5),
            })
            .collect())
    }

    fn relations(
        &self,
        a: &Analysis,
        text: &str,
        judge: Option<&dyn Judge>,
    ) -> Result<Vec<(Candidate, dedup::Verdict)>, StoreError> {
        let owners = self.visible();
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        let found = self.verdicts_in(&mut tx, &owners, a, text, judge)?;
        tx.commit()?;
        Ok(found)
    }

    fn flag_conflict(&self, id: &str, with: &str) -> Result<StoreChange, StoreError> {
        let theirs: String = {
            let mut client = self.client.borrow_mut();
            let with = self.resolve(&mut *client, with)?;
            client
                .query_one("SELECT rule FROM rules WHERE id = $1", &[&with])?
                .get(0)
        };
        let note = format!("contradicts {with} (\"{theirs}\"); approve one, reject the other");
        let change = self.set_status(id, Status::Proposed, Some(&note))?;
        self.client.borrow_mut().execute(
            "UPDATE rules SET conflicts_with = $2 WHERE id = $1",
            &[&change.rule_id, &with],
        )?;
        Ok(change)
    }

    fn merge_rules(&self, keep: &str, absorb: &str) -> Result<Vec<StoreChange>, StoreError> {
        let mut client = self.client.borrow_mut();
        let keep = self.resolve(&mut *client, keep)?;
        let absorb = self.resolve(&mut *client, absorb)?;
        if keep == absorb {
            return Err(StoreError::Invalid(format!("merge {keep} into itself")));
        }
        let mut tx = self.begin(&mut client)?;
        // Ordered with the learns that could merge into either rule.
        let owner: String = tx
            .query_one("SELECT owner FROM rules WHERE id = $1", &[&keep])?
            .get(0);
        Self::lock_learn(&mut tx, &owner)?;
        let kept = Self::load(&mut tx.tx, &keep)?;
        let gone = Self::load(&mut tx.tx, &absorb)?;
        let merge = Self::add_merge(&mut tx, &kept, &gone)?;
        let note = format!("merged into {keep} (promptloop rules dedup)");
        tx.execute(
            "UPDATE rules SET status = 'retired', note = $2, updated_at = $3 WHERE id = $1",
            &[&absorb, &note, &now()],
        )?;
        tx.commit()?;
        Ok(vec![
            StoreChange::merge(keep, kept.status, merge),
            StoreChange::status(absorb, gone.status, Status::Retired),
        ])
    }

    fn revert_merge(&self, change: &StoreChange) -> Result<StoreChange, StoreError> {
        let Some(m) = &change.merged else {
            return Err(StoreError::Invalid(format!(
                "undo a merge into {}: the change records none",
                change.rule_id
            )));
        };
        let mut client = self.client.borrow_mut();
        let mut tx = self.begin(&mut client)?;
        let kept = Self::load(&mut tx.tx, &change.rule_id)?;
        let merge = if m.undone {
            let gone = Self::load(&mut tx.tx, &m.absorbed)?;
            Self::add_merge(&mut tx, &kept, &gone)?
        } else {
            tx.execute(
                "DELETE FROM provenance WHERE rule_id = $1 AND seq >= $2::BIGINT",
                &[&kept.id, &m.provenance_from],
            )?;
            tx.execute(
                "UPDATE rules SET times_learned = GREATEST(times_learned - $2, 1),
                     recurrences = GREATEST(recurrences - $3, 0),
                     times_validated = GREATEST(times_validated - $4, 0), updated_at = $5
                 WHERE id = $1",
                &[
                    &kept.id,
                    &i64::from(m.counts[0]),
                    &i64::from(m.counts[1]),
                    &i64::from(m.counts[2]),
                    &now(),
                ],
            )?;
            tx.execute(
                "DELETE FROM rule_targets WHERE rule_id = $1 AND target = ANY($2)",
                &[&kept.id, &m.targets_added],
            )?;
            MergeChange {
                undone: true,
                ..m.clone()
            }
        };
        tx.commit()?;
        Ok(StoreChange::merge(kept.id, kept.status, merge))
    }

    fn recurrence_times(&self) -> Result<Vec<String>, StoreError> {
        // A failure counts once however many rules it recurred for.
        let rows = self.client.borrow_mut().query(
            "SELECT f.captured_at FROM failures f
             WHERE f.project = $1
               AND EXISTS (SELECT 1 FROM rule_recurrences rr WHERE rr.failure_id = f.id)
             ORDER BY f.captured_at",
            &[&self.project],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: String) -> Result<T, StoreError> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn feedback_counts_of(
    client: &mut impl GenericClient,
    rule_id: &str,
) -> Result<FeedbackCounts, StoreError> {
    let r = client.query_one(
        "SELECT COUNT(*) FILTER (WHERE helped), COUNT(*) FILTER (WHERE NOT helped)
         FROM rule_feedback WHERE rule_id = $1",
        &[&rule_id],
    )?;
    Ok(FeedbackCounts {
        helped: count_u32(r.get(0)),
        misled: count_u32(r.get(1)),
    })
}

/// A pause inside the learn transaction, after its writes and before the commit, for the
/// crash test (`PROMPTLOOP_TEST_PG_STALL_MS`; read only in debug builds).
fn test_stall() -> Option<u64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("PROMPTLOOP_TEST_PG_STALL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
}
