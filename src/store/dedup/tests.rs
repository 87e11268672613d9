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

/// A rule and a learned test expectation that agree on the value (`None` for a zero
/// divisor) are not a conflict just because the test's call also passes a 1.
#[test]
fn a_value_both_rules_mention_is_not_a_substitution() {
    let a = analyse(
        "Return None, not 0, from safe_divide when dividing by zero",
        "Writing safe_* helpers",
    );
    let b = analyse(
        "Keep `tests/test_calculator.py::test_safe_divide_by_zero_returns_none` passing: it \
         requires `safe_divide(1, 0) is None`.",
        "Changing `safe_divide`.",
    );
    let w = |_: &str| 1.0;
    for (x, y) in [(&a, &b), (&b, &a)] {
        let v = compare(x, y, &w, &Thresholds::default());
        assert_ne!(v.relation, Relation::Conflict, "{v:?}");
    }
    // A value that replaces another is still a conflict.
    let c = analyse("Set the HTTP client timeout to 30 s", "");
    let d = analyse("Set the HTTP client timeout to 5 s", "");
    assert_eq!(
        compare(&c, &d, &w, &Thresholds::default()).relation,
        Relation::Conflict
    );
}

/// Two orders whose earlier steps share nothing are two instructions for one moment; the
/// same steps the other way round stay an order conflict.
#[test]
fn orders_with_nothing_in_common_before_the_same_moment_are_distinct() {
    let w = |_: &str| 1.0;
    let t = Thresholds::default();
    let a = analyse("Run the tests before saying the task is finished.", "");
    let b = analyse(
        "Summarise the changes before saying the task is finished.",
        "",
    );
    assert_eq!(compare(&a, &b, &w, &t).relation, Relation::Distinct);
    assert_eq!(compare(&b, &a, &w, &t).relation, Relation::Distinct);
    let c = analyse("Run the tests before you commit.", "");
    let d = analyse("Commit before you run the tests.", "");
    assert_eq!(compare(&c, &d, &w, &t).relation, Relation::Conflict);
}
