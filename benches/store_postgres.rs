//! `cargo bench --bench store_postgres`: the team store on PostgreSQL. Insert with dedup
//! (`PgStore::learn_once` with an id, as `run` learns through the team store) against a project holding 10,000 and 100,000 rules (latency per
//! insert: mean, median, p99), and the throughput of eight concurrent writers (eight
//! connections, as eight machines would be) learning into the 100,000-rule store.
//!
//! The server is a throwaway one started like the tests' (`tests/pg_server.rs`: Debian's
//! `postgresql` binaries, fsync off), or the one `PROMPTLOOP_BENCH_PG_URL` names (a database
//! the bench may fill; it creates its tables in it). Stores are filled with COPY (the rows
//! `PgStore::insert` would write, built here), then measured through the store's API.
//! The synthetic rules are those of `benches/store.rs` (Zipf over a 3,000-word vocabulary).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use promptloop::rules::Rule;
use promptloop::store::dedup;
use promptloop::store::postgres::PgStore;
use promptloop::store::{LearnOutcome, NewRule, Provenance, RuleStore, Scope, Status};

#[path = "../tests/pg_server.rs"]
mod pg_server;

const PROJECT: &str = "github.com/bench/api";

/// A database's URL by its name (created for the bench).
type UrlFor<'a> = Box<dyn Fn(&str) -> String + 'a>;
/// The environment the password is read from.
type Env = Box<dyn Fn(&str) -> Option<String>>;

/// A small deterministic generator (no dependency, same numbers every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Zipf-like rank in `0..n` (probability ∝ 1/(rank+1)), by inverse transform on the
    /// harmonic numbers, approximated by exp.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() as f64 + 1.0) / ((1u64 << 31) as f64 + 2.0);
        let h = (n as f64).ln() + 0.5772;
        ((u * h).exp() - 1.0).clamp(0.0, (n - 1) as f64) as usize
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ten", "ser", "va", "dor", "pla", "qui", "ron", "bel", "tas", "nu", "fer",
    "gal", "hos", "ji", "kle", "mor", "pen", "ras", "sti", "tru", "vel", "wen", "zo", "bri", "cha",
    "del", "fro",
];

fn vocabulary(n: usize) -> Vec<String> {
    let mut rng = Lcg(7);
    let mut words = std::collections::BTreeSet::new();
    while words.len() < n {
        let k = 2 + rng.below(2) as usize;
        let w: String = (0..k)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
            .collect();
        words.insert(w);
    }
    let mut v: Vec<String> = words.into_iter().collect();
    // Shuffle so rank is unrelated to spelling.
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

fn synthetic(rng: &mut Lcg, vocab: &[String], i: usize) -> Rule {
    let len = 7 + rng.below(8) as usize;
    let mut words: Vec<&str> = (0..len)
        .map(|_| vocab[rng.zipf(vocab.len())].as_str())
        .collect();
    let ident = format!("`fn_{i:x}`");
    words.insert(rng.below(len as u64) as usize, &ident);
    let mut text = words.join(" ");
    text[..1].make_ascii_uppercase();
    text.push('.');
    Rule {
        category: Some(format!("Area {}", i % 13)),
        rule: text,
        when: "Changing the code it names".into(),
        why: "A test failed without it".into(),
    }
}

fn new_rule(rule: Rule, i: usize) -> NewRule {
    NewRule {
        rule,
        scope: Scope::Project,
        targets: vec!["CLAUDE.md".into()],
        provenance: Provenance {
            failure_id: Some(format!("f-{i}")),
            failure_type: "test_failure".into(),
            source: "bench".into(),
            ..Provenance::default()
        },
        status: Status::Active,
    }
}

/// COPY's text format: backslash, tab and newline escaped.
fn copy_field(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

/// Fills the project with `size` rules by COPY; returns the rules kept for rewording.
fn fill(client: &mut postgres::Client, vocab: &[String], size: usize, rng: &mut Lcg) -> Vec<Rule> {
    let at = "2026-11-24T21:40:00+00:00";
    let mut kept = Vec::new();
    let (mut rules, mut targets, mut tokens, mut prov) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..size {
        let rule = synthetic(rng, vocab, i);
        let id = format!("r-b{i:07x}");
        let f = dedup::analyse(&rule.rule, &rule.when);
        writeln!(
            rules,
            "{id}\t{PROJECT}\t{}\t{}\t{}\t{}\tproject\tactive\t\\N\t\\N\t{at}\t{at}\t{at}\t{at}\t1\t0\t0\t{}",
            copy_field(rule.category.as_deref().unwrap_or("")),
            copy_field(&rule.rule),
            copy_field(&rule.when),
            copy_field(&rule.why),
            copy_field(&f.encode())
        )
        .unwrap();
        writeln!(targets, "{id}\tCLAUDE.md").unwrap();
        let unique: std::collections::BTreeSet<&str> = f.tokens().collect();
        for t in unique {
            writeln!(tokens, "{PROJECT}\t{}\t{id}", copy_field(t)).unwrap();
        }
        writeln!(
            prov,
            "{id}\t0\t\\N\ttest_failure\tbench\t\\N\t\\N\t\\N\t\\N\t{at}\t{}",
            copy_field(&rule.rule)
        )
        .unwrap();
        if i % (size / 1000) == 0 {
            kept.push(rule);
        }
    }
    let copy = |client: &mut postgres::Client, sql: &str, data: &[u8]| {
        let mut w = client.copy_in(sql).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
    };
    copy(
        client,
        "COPY rules (id, owner, category, rule, \"when\", why, scope, status, note,
             conflicts_with, created_at, updated_at, activated_at, last_learned_at,
             times_learned, recurrences, times_validated, features) FROM STDIN",
        &rules,
    );
    copy(
        client,
        "COPY rule_targets (rule_id, target) FROM STDIN",
        &targets,
    );
    copy(
        client,
        "COPY rule_tokens (owner, token, rule_id) FROM STDIN",
        &tokens,
    );
    copy(
        client,
        "COPY provenance (rule_id, seq, failure_id, failure_type, source, task, teacher,
             model, run_id, learned_at, text) FROM STDIN",
        &prov,
    );
    client
        .batch_execute(&format!(
            "INSERT INTO token_df (owner, token, df)
               SELECT owner, token, COUNT(*) FROM rule_tokens GROUP BY owner, token;
             INSERT INTO owners (owner, rules) VALUES ('{PROJECT}', {size});
             ANALYZE;"
        ))
        .unwrap();
    kept
}

fn reword(rule: &Rule) -> Rule {
    let mut words: Vec<&str> = rule.rule.trim_end_matches('.').split(' ').collect();
    words.rotate_left(2);
    if words.len() > 8 {
        words.remove(words.len() / 2);
    }
    Rule {
        rule: format!("Always {}.", words.join(" ")),
        ..rule.clone()
    }
}

/// A learn as `run` makes it on a team store: with an id recorded beside it (so one whose
/// answer is lost is not applied twice by `store sync`).
fn learn(store: &PgStore, new: NewRule, id: &str) -> LearnOutcome {
    let id = format!("bench-{}-{id}", std::process::id());
    store
        .learn_once(new, None, Some(&id))
        .unwrap()
        .expect("a new id is applied")
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    format!(
        "{:>7.2} {:>7.2} {:>7.2}",
        mean,
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100])
    )
}

fn main() {
    let server;
    let (url_for, env): (UrlFor, Env) = match std::env::var("PROMPTLOOP_BENCH_PG_URL") {
        // A server of your own: databases bench_10000 and bench_100000 are made anew.
        Ok(base) => (
            Box::new(move |db: &str| {
                let config = promptloop::store::postgres::conninfo::config(
                    &base,
                    &promptloop::settings::process_env,
                )
                .unwrap();
                let mut client = config.connect(postgres::NoTls).unwrap();
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
                    .unwrap();
                client
                    .batch_execute(&format!("CREATE DATABASE {db}"))
                    .unwrap();
                match base.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{db}"),
                    None => base.clone(),
                }
            }),
            Box::new(promptloop::settings::process_env),
        ),
        Err(_) => {
            server = pg_server::PgServer::start().expect("a PostgreSQL server");
            let env = server.env();
            let s = &server;
            (Box::new(move |db: &str| s.create_db(db)), Box::new(env))
        }
    };
    let sizes: Vec<usize> = std::env::var("PROMPTLOOP_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let vocab = vocabulary(3000);
    println!(
        "promptloop team store (PostgreSQL) benchmark: insert with dedup (a learn with its id, as `run` makes it)\n"
    );
    println!(
        "{:>8}  {:>8}  {:>23}  {:>23}",
        "stored", "fill (s)", "new: mean p50 p99 ms", "dup: mean p50 p99 ms"
    );
    let mut last_url = String::new();
    for size in sizes {
        let url = url_for(&format!("bench_{size}"));
        let store = PgStore::connect(&url, PROJECT, &env).unwrap();
        let mut config = promptloop::store::postgres::conninfo::config(&url, &env).unwrap();
        let mut client = config.connect(postgres::NoTls).unwrap();
        let _ = &mut config;
        let mut rng = Lcg(42);
        let started = Instant::now();
        let kept = fill(&mut client, &vocab, size, &mut rng);
        let fill_s = started.elapsed().as_secs_f64();

        let mut new_times = Vec::new();
        let mut added = 0;
        for i in 0..1000 {
            let rule = synthetic(&mut rng, &vocab, size + i);
            let t = Instant::now();
            let outcome = learn(&store, new_rule(rule, i), &format!("new-{size}-{i}"));
            new_times.push(t.elapsed());
            added += usize::from(matches!(outcome, LearnOutcome::Added { .. }));
        }
        let mut dup_times = Vec::new();
        let mut merged = 0;
        for (i, rule) in kept.iter().take(1000).enumerate() {
            let t = Instant::now();
            let outcome = learn(
                &store,
                new_rule(reword(rule), i),
                &format!("dup-{size}-{i}"),
            );
            dup_times.push(t.elapsed());
            merged += usize::from(matches!(outcome, LearnOutcome::Merged { .. }));
        }
        println!(
            "{:>8}  {:>8.1}  {}  {}",
            size,
            fill_s,
            summary(new_times),
            summary(dup_times)
        );
        println!(
            "          (new: {added}/1000 added as distinct; rewordings: {merged}/{} merged)",
            kept.len().min(1000)
        );
        assert_eq!(store.count().unwrap(), size + added);
        last_url = url;
    }

    // Eight writers at once, each its own connection, into the 100,000-rule store: each
    // learns 100 distinct rules and 100 rewordings of rules all eight reword (so merges
    // into one rule contend).
    let mut rng = Lcg(99);
    let shared: Vec<Rule> = (0..100)
        .map(|i| synthetic(&mut rng, &vocab, 900_000 + i))
        .collect();
    let seed = PgStore::connect(&last_url, PROJECT, &env).unwrap();
    for (i, r) in shared.iter().enumerate() {
        seed.learn(new_rule(r.clone(), i), None).unwrap();
    }
    let before = seed.count().unwrap();
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let url = last_url.clone();
            let shared = shared.clone();
            let vocab = vocab.clone();
            let password = env("PROMPTLOOP_TEST_PG_PASSWORD");
            std::thread::spawn(move || {
                let env = move |k: &str| match k {
                    "PROMPTLOOP_TEST_PG_PASSWORD" => password.clone(),
                    other => promptloop::settings::process_env(other),
                };
                let store = PgStore::connect(&url, PROJECT, &env).unwrap();
                let mut rng = Lcg(1000 + w as u64);
                let mut merged = 0;
                for (i, shared) in shared.iter().enumerate() {
                    let rule = synthetic(&mut rng, &vocab, 1_000_000 + w * 1000 + i);
                    learn(&store, new_rule(rule, i), &format!("w{w}-new-{i}"));
                    let outcome = learn(
                        &store,
                        new_rule(reword(shared), i),
                        &format!("w{w}-dup-{i}"),
                    );
                    merged += usize::from(matches!(outcome, LearnOutcome::Merged { .. }));
                }
                merged
            })
        })
        .collect();
    let merged: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    let after = seed.count().unwrap();
    println!(
        "\n8 concurrent writers, 1,600 learns (800 new, 800 merges into 100 shared rules): \
         {secs:.2} s, {:.0} learns/s; {merged}/800 merged, {} rules added (800 expected)",
        1600.0 / secs,
        after - before
    );
}
