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
//!
//! With `PROMPTLOOP_BENCH_TEACHER_URL` (a model server: `PROMPTLOOP_BENCH_TEACHER_PROTOCOL`
//! `openai`, the default, for an OpenAI-compatible chat API such as Ollama's
//! `http://127.0.0.1:11434/v1`, or `anthropic` for the Messages API; the model
//! `PROMPTLOOP_BENCH_TEACHER_MODEL`; a key, where the server wants one, in the variable
//! `PROMPTLOOP_BENCH_TEACHER_KEY_ENV` names) the bench also prints what the teacher adds as
//! a judge: in the unsure band, as `rules.dedup_judge` does at insert; deciding (same,
//! conflict or different) every pair the store's lookup would put to a judge; and deciding
//! every pair alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use promptloop::learn::curate::TeacherJudge;
use promptloop::store::dedup::embed::{EmbeddingJudge, EmbeddingsConfig};
use promptloop::store::dedup::eval::{self, Confusion, Scored};
use promptloop::store::dedup::{Judge, Relation, Thresholds};
use promptloop::teacher::Teacher;
use promptloop::teacher::anthropic::{AnthropicConfig, AnthropicTeacher};
use promptloop::teacher::openai::{OpenAiConfig, OpenAiTeacher};

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
    let teacher = teacher();
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
        let within = |label: &str| {
            let of = scored.iter().filter(|s| s.pair.label == label);
            let reached = of.clone().filter(|s| s.reach >= t.unsure).count();
            format!("{label} {reached}/{}", of.count())
        };
        println!(
            "  pairs the lookup with a judge (bound {}) finds from both sides, the most a judge there could decide: {}, {}, {}",
            t.unsure,
            within("same"),
            within("conflict"),
            within("different")
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
        if let Some(teacher) = &teacher {
            print_teacher(teacher.as_ref(), &scored);
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

/// The teacher from `PROMPTLOOP_BENCH_TEACHER_*`, or none when no URL is set.
fn teacher() -> Option<Box<dyn Teacher>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let base_url = var("PROMPTLOOP_BENCH_TEACHER_URL")?;
    let Some(model) = var("PROMPTLOOP_BENCH_TEACHER_MODEL") else {
        eprintln!(
            "PROMPTLOOP_BENCH_TEACHER_URL needs PROMPTLOOP_BENCH_TEACHER_MODEL (the model id)"
        );
        std::process::exit(2);
    };
    let protocol = var("PROMPTLOOP_BENCH_TEACHER_PROTOCOL").unwrap_or_else(|| "openai".into());
    let key_env = var("PROMPTLOOP_BENCH_TEACHER_KEY_ENV");
    let api_key = key_env.as_deref().and_then(var);
    let api_key_env = key_env.unwrap_or_default();
    let deadline = Duration::from_secs(120);
    let teacher: Result<Box<dyn Teacher>, _> = match protocol.as_str() {
        "openai" => OpenAiTeacher::new(OpenAiConfig {
            base_url: base_url.clone(),
            api_key,
            api_key_env,
            model: model.clone(),
            max_tokens: 16,
            deadline,
        })
        .map(|t| Box::new(t) as Box<dyn Teacher>),
        "anthropic" => AnthropicTeacher::new(AnthropicConfig {
            base_url: base_url.clone(),
            api_key: api_key.unwrap_or_default(),
            api_key_env,
            model: model.clone(),
            max_tokens: 16,
            deadline,
        })
        .map(|t| Box::new(t) as Box<dyn Teacher>),
        other => {
            eprintln!("PROMPTLOOP_BENCH_TEACHER_PROTOCOL is openai or anthropic, not {other:?}");
            std::process::exit(2);
        }
    };
    match teacher {
        Ok(t) => {
            println!("teacher as judge: {protocol} {model} at {base_url}\n");
            Some(t)
        }
        Err(e) => {
            eprintln!("the teacher: {e}");
            std::process::exit(2);
        }
    }
}

/// Asks the same question once (the bench puts most pairs to the teacher twice).
struct Remembered<'j> {
    judge: &'j dyn Judge,
    answers: RefCell<HashMap<(String, String), Option<Relation>>>,
}

impl Judge for Remembered<'_> {
    fn same_rule(&self, a: &str, b: &str) -> Option<bool> {
        self.judge.same_rule(a, b)
    }

    fn relation(&self, a: &str, b: &str) -> Option<Relation> {
        let key = (a.to_string(), b.to_string());
        if let Some(known) = self.answers.borrow().get(&key) {
            return *known;
        }
        let answer = self.judge.relation(a, b);
        self.answers.borrow_mut().insert(key, answer);
        answer
    }
}

/// The store's question only (SAME or DIFFERENT), as `rules.dedup_judge` asks it.
struct SameOnly<'j>(&'j dyn Judge);

impl Judge for SameOnly<'_> {
    fn same_rule(&self, a: &str, b: &str) -> Option<bool> {
        self.0.same_rule(a, b)
    }
}

/// What the teacher adds as a judge, at three reaches.
fn print_teacher(teacher: &dyn Teacher, scored: &[Scored]) {
    let t = Thresholds::default();
    let judge = TeacherJudge { teacher };
    let remembered = Remembered {
        judge: &judge,
        answers: RefCell::new(HashMap::new()),
    };
    let line = |what: &str, (c, asked): (Confusion, usize)| {
        println!(
            "    {what} (asked {asked}): merge precision {:.3} recall {:.3}, conflict precision {:.3} recall {:.3}",
            c.merge_precision(),
            c.merge_recall(),
            c.conflict_precision(),
            c.conflict_recall()
        );
    };
    println!("  with the teacher as judge:");
    line(
        "in the unsure band, as rules.dedup_judge does",
        eval::judged(scored, &SameOnly(&judge), &|s| {
            s.verdict.relation == Relation::Borderline
        }),
    );
    line(
        &format!(
            "deciding every pair the lookup finds (sharing >= {} of the weight)",
            t.unsure
        ),
        eval::judged(scored, &remembered, &|s| s.reach >= t.unsure),
    );
    line(
        "deciding every pair",
        eval::judged(scored, &remembered, &|_| true),
    );
    println!();
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
