//! `cargo bench --bench store`: learning a rule (insert with dedup) against a store that
//! already holds 10,000 and 100,000 rules: time per insert and peak memory.
//!
//! The stored rules are synthetic but shaped like real ones: 7 to 14 content words drawn
//! from a Zipf distribution over a 3,000-word vocabulary (so common words sit in a large
//! share of the rules, as "return", "test" and "function" do), plus a code identifier.
//! Measured per size: 1,000 new distinct rules and 1,000 rewordings of stored rules (the
//! merge path), each through `RuleStore::learn`, the path the loop takes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use promptloop::rules::Rule;
use promptloop::store::{
    LearnOutcome, NewRule, Provenance, RuleStore, Scope, SqliteStore, Status, StoredRule,
};

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

fn stored(rule: Rule, i: usize) -> StoredRule {
    let at = "2026-11-24T21:40:00+00:00".to_string();
    StoredRule {
        id: format!("r-{:06x}", i),
        rule,
        scope: Scope::Project,
        targets: vec!["CLAUDE.md".into()],
        status: Status::Active,
        note: None,
        conflicts_with: None,
        created_at: at.clone(),
        updated_at: at.clone(),
        activated_at: Some(at.clone()),
        last_learned_at: at.clone(),
        times_learned: 1,
        recurrences: 0,
        times_validated: 0,
        provenance: vec![Provenance {
            failure_type: "test_failure".into(),
            source: "bench".into(),
            learned_at: at,
            ..Provenance::default()
        }],
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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

fn main() {
    let vocab = vocabulary(3000);
    println!("promptloop rule store benchmark: insert with dedup (RuleStore::learn)\n");
    println!(
        "{:>9}  {:>12}  {:>12}  {:>12}  {:>10}  {:>10}",
        "stored", "load (s)", "new µs/ins", "dup µs/ins", "peak RSS", "db size"
    );
    for size in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("promptloop.db");
        let store = SqliteStore::open(&path).unwrap();
        let mut rng = Lcg(42);
        let started = Instant::now();
        let mut kept = Vec::with_capacity(size);
        for i in 0..size {
            let rule = synthetic(&mut rng, &vocab, i);
            store.insert(&stored(rule.clone(), i)).unwrap();
            if i % (size / 1000) == 0 {
                kept.push(rule);
            }
        }
        let load = started.elapsed().as_secs_f64();

        // 1,000 new, distinct rules.
        let started = Instant::now();
        let mut added = 0;
        for i in 0..1000 {
            let rule = synthetic(&mut rng, &vocab, size + i);
            if matches!(
                store.learn(new_rule(rule, i), None).unwrap(),
                LearnOutcome::Added { .. }
            ) {
                added += 1;
            }
        }
        let new_us = started.elapsed().as_secs_f64() * 1e6 / 1000.0;

        // 1,000 rewordings of stored rules: a word dropped and the order changed.
        let started = Instant::now();
        let mut merged = 0;
        for (i, rule) in kept.iter().take(1000).enumerate() {
            let mut words: Vec<&str> = rule.rule.trim_end_matches('.').split(' ').collect();
            words.rotate_left(2);
            if words.len() > 8 {
                words.remove(words.len() / 2);
            }
            let reworded = Rule {
                rule: format!("Always {}.", words.join(" ")),
                ..rule.clone()
            };
            if matches!(
                store.learn(new_rule(reworded, i), None).unwrap(),
                LearnOutcome::Merged { .. }
            ) {
                merged += 1;
            }
        }
        let dup_us = started.elapsed().as_secs_f64() * 1e6 / kept.len().min(1000) as f64;
        let db_bytes: u64 = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "{:>9}  {:>12.1}  {:>12.0}  {:>12.0}  {:>7} MiB  {:>6} MiB",
            size,
            load,
            new_us,
            dup_us,
            peak_rss_kib() / 1024,
            db_bytes / (1024 * 1024)
        );
        println!(
            "           (new: {added}/1000 added as distinct; rewordings: {merged}/{} merged)",
            kept.len().min(1000)
        );
        // Every lesson is merged or added (as a rule, or as a conflict held for review).
        assert_eq!(
            store.count().unwrap(),
            size + added + kept.len().min(1000) - merged
        );
    }
    println!(
        "\npeak RSS is the process's high-water mark (VmHWM), so each line includes the ones above it"
    );
}
