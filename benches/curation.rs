//! `cargo bench --bench curation`: the dedup method's merge and conflict precision and
//! recall on the labelled rule pairs, with the confusion matrices.
//!
//! - `tests/fixtures/curation/heldout.jsonl`: the held-out pairs, written before the method
//!   and never tuned on (the figures that count);
//! - `tests/fixtures/curation/dev.jsonl`: the pairs the method was tuned on;
//! - `tests/fixtures/dedup_pairs.jsonl`: the older 167 pairs, an extra check.
//!
//! Each pair is scored with the rarity weights of the rules of its own file, as a store
//! holding them would weigh them. `-- --errors` lists the pairs the method gets wrong;
//! `-- --only dev` (or `held-out`, `older`) scores one set.
//!
//! With `PROMPTLOOP_BENCH_EMBEDDINGS_URL` (an OpenAI-compatible server, e.g. a local Ollama
//! at `http://127.0.0.1:11434`; model `PROMPTLOOP_BENCH_EMBEDDINGS_MODEL`, default
//! `nomic-embed-text`) the pairs the method is unsure of are put to that embeddings judge, as
//! `rules.dedup_embeddings` does at insert, and the figures are the method's with the judge.

use std::path::Path;

use promptloop::store::dedup::embed::{EmbeddingJudge, EmbeddingsConfig};
use promptloop::store::dedup::eval::{self, Scored};
use promptloop::store::dedup::{Judge, Thresholds};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let errors = args.iter().any(|a| a == "--errors");
    // `--only dev` scores one set (tuning reads the dev pairs' errors, never the held-out's).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sets = [
        (
            "held-out (never tuned on)",
            "tests/fixtures/curation/heldout.jsonl",
        ),
        ("dev (tuned on)", "tests/fixtures/curation/dev.jsonl"),
        (
            "older pairs (extra check)",
            "tests/fixtures/dedup_pairs.jsonl",
        ),
    ];
    println!("promptloop curation: merge and conflict detection on labelled rule pairs\n");
    let cache = std::env::temp_dir().join(format!("promptloop-bench-{}", std::process::id()));
    let judge = std::env::var("PROMPTLOOP_BENCH_EMBEDDINGS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map(|url| {
            let model = std::env::var("PROMPTLOOP_BENCH_EMBEDDINGS_MODEL")
                .unwrap_or_else(|_| "nomic-embed-text".into());
            println!("judge: embeddings {model} at {url}\n");
            let config = EmbeddingsConfig {
                max_calls: usize::MAX >> 1,
                ..EmbeddingsConfig::new(&url, &model, cache.join("embeddings.db"))
            };
            EmbeddingJudge::new(config).unwrap_or_else(|e| {
                eprintln!("the embeddings judge: {e}");
                std::process::exit(2);
            })
        });
    let embedder = judge;
    let judge = embedder.as_ref().map(|j| j as &dyn Judge);
    for (title, file) in sets {
        if only.as_deref().is_some_and(|o| !title.starts_with(o)) {
            continue;
        }
        let text = match std::fs::read_to_string(root.join(file)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("read {file}: {e}");
                std::process::exit(2);
            }
        };
        let pairs = match eval::read_pairs(&text) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("read {file}: {e}");
                std::process::exit(2);
            }
        };
        let (confusion, scored) = eval::score_with(&pairs, &Thresholds::default(), judge);
        print!("{}", confusion.table(&format!("{title}: {file}")));
        let asymmetric = scored.iter().filter(|s| s.reverse.is_some()).count();
        println!("  verdicts that change when the pair is swapped: {asymmetric}");
        let t = Thresholds::default();
        let unreached = scored
            .iter()
            .filter(|s| s.correct() && s.pair.label != "different" && s.reach < t.lookup)
            .count();
        println!(
            "  right merges or conflicts the store's lookup (bound {}) misses from one side: {unreached}",
            t.lookup
        );
        let by_kind = eval::by(&scored, |p| format!("{}/{}", p.label, p.kind));
        let kinds: Vec<String> = by_kind
            .iter()
            .map(|(k, (right, n))| format!("{k} {right}/{n}"))
            .collect();
        println!("  by kind: {}\n", kinds.join(", "));
        if let Some(embedder) = &embedder {
            print_ceiling(embedder, &scored);
        }
        if errors {
            for s in scored.iter().filter(|s| !s.correct()) {
                print_error(s);
            }
            println!();
        }
    }
}

/// What an embeddings index could add: the pairs the method keeps apart for want of shared
/// words, merged from a cosine bound.
fn print_ceiling(embedder: &EmbeddingJudge, scored: &[Scored]) {
    let similarity = |a: &str, b: &str| embedder.similarity(a, b);
    println!(
        "  with candidates found by meaning (pairs kept apart for want of words, merged at cosine >= bound):"
    );
    for (bound, c) in eval::embedding_ceiling(scored, &similarity, &[0.75, 0.8, 0.85, 0.9, 0.95]) {
        let merged_wrongly = c.counts[1][0] + c.counts[2][0];
        println!(
            "    {bound:.2}: merge precision {:.3} recall {:.3} (same merged {}, different or conflict merged {merged_wrongly})",
            c.merge_precision(),
            c.merge_recall(),
            c.counts[0][0],
        );
    }
}

fn print_error(s: &Scored) {
    println!(
        "  {} {} ({}): {:?} by {:?}, similarity {:.2}\n    a: {}\n    b: {}",
        s.pair.id,
        s.pair.label,
        s.pair.kind,
        s.verdict.relation,
        s.verdict.reason,
        s.verdict.similarity,
        s.pair.a.rule,
        s.pair.b.rule
    );
}
