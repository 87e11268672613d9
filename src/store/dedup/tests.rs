use super::*;

fn rel(a: &str, b: &str) -> Relation {
    let (x, y) = (analyse(a, ""), analyse(b, ""));
    compare(&x, &y, &|_| 1.0, &Thresholds::default()).relation
}

#[test]
fn analysis_round_trips_through_its_stored_form() {
    let a = analyse(
        "Use `===` instead of `==`; never call eval() on user_input, keep numpy<2 and a 30 s timeout.",
        "Writing the parser",
    );
    assert_eq!(Analysis::decode(&a.encode()), Some(a));
    assert_eq!(
        Analysis::decode(&Analysis::default().encode()),
        Some(Analysis::default())
    );
    assert_eq!(Analysis::decode("a b"), None);
}

#[test]
fn paraphrases_merge_and_flips_conflict() {
    let base = "Return None, not 0, from safe_divide when the divisor is zero.";
    assert_eq!(
        rel(
            base,
            "When dividing by zero in safe_divide, return None instead of 0."
        ),
        Relation::Same
    );
    assert_eq!(
        rel(
            base,
            "Return 0, not None, from safe_divide when the divisor is zero."
        ),
        Relation::Conflict
    );
    assert_eq!(
        rel(
            base,
            "Return None, not 0, from safe_modulo when the divisor is zero."
        ),
        Relation::Distinct
    );
}

#[test]
fn probe_len_leaves_out_less_than_the_bound() {
    assert_eq!(probe_len(&[], 0.5), 0);
    assert_eq!(probe_len(&[1.0], 0.5), 1);
    assert_eq!(probe_len(&[4.0, 3.0, 2.0, 1.0], 0.5), 2);
    assert_eq!(probe_len(&[1.0; 10], 0.5), 6);
}

/// Tuning aid (dev pairs only): `cargo test --lib dev_pairs_report -- --ignored --nocapture`.
#[test]
#[ignore]
fn dev_pairs_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("tests/fixtures/curation/dev.jsonl")).unwrap_or_default();
    let pairs = eval::read_pairs(&text).unwrap_or_default();
    let (confusion, scored) = eval::score(&pairs, &Thresholds::default());
    for s in scored
        .iter()
        .filter(|s| !s.correct() || s.reverse.is_some())
    {
        println!(
            "{} {:<9} {:<16} → {:?} {:?} {:.2}{}\n   A: {} | {}\n   B: {} | {}",
            s.pair.id,
            s.pair.label,
            s.pair.kind,
            s.verdict.relation,
            s.verdict.reason,
            s.verdict.similarity,
            s.reverse
                .map(|r| format!("  (reverse {:?})", r.relation))
                .unwrap_or_default(),
            s.pair.a.rule,
            s.pair.a.when,
            s.pair.b.rule,
            s.pair.b.when,
        );
        if std::env::var("SHOW_TERMS").is_ok() {
            let a = analyse(&s.pair.a.rule, &s.pair.a.when);
            let b = analyse(&s.pair.b.rule, &s.pair.b.when);
            println!("   a: {}\n   b: {}", a.encode(), b.encode());
        }
    }
    print!("{}", confusion.table("dev"));
}

/// Tuning aid: the pairs in the unsure band.
#[test]
#[ignore]
fn dev_pairs_band() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("tests/fixtures/curation/dev.jsonl")).unwrap_or_default();
    let pairs = eval::read_pairs(&text).unwrap_or_default();
    let (_, scored) = eval::score(&pairs, &Thresholds::default());
    for s in scored
        .iter()
        .filter(|s| s.verdict.relation == Relation::Borderline)
    {
        println!(
            "{} {:<9} {:.2} | {} || {}",
            s.pair.id, s.pair.label, s.verdict.similarity, s.pair.a.rule, s.pair.b.rule
        );
    }
}

/// Extra check: the older 167 pairs, figures only.
#[test]
#[ignore]
fn old_pairs_figures() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("tests/fixtures/dedup_pairs.jsonl")).unwrap_or_default();
    let pairs = eval::read_pairs(&text).unwrap_or_default();
    let (c, _) = eval::score(&pairs, &Thresholds::default());
    print!("{}", c.table("old pairs"));
}

/// Tuning aid: exact-overlap reach of the pairs merged or held as conflicts (dev).
#[test]
#[ignore]
fn dev_pairs_reach() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("tests/fixtures/curation/dev.jsonl")).unwrap_or_default();
    let pairs = eval::read_pairs(&text).unwrap_or_default();
    let (_, scored) = eval::score(&pairs, &Thresholds::default());
    let mut r: Vec<String> = scored
        .iter()
        .filter(|s| {
            matches!(s.verdict.relation, Relation::Same | Relation::Conflict) && s.correct()
        })
        .map(|s| format!("{:.2}", s.reach))
        .collect();
    r.sort();
    println!("reach: {}", r.join(" "));
}
