//! Rule validation: a rule's originating failure rerun with the rule and without it (left
//! out of the instruction file), each rerun in its own copy of the work tree as it was
//! before the failing attempt (the snapshot `refs/promptloop/runs/<run>/attempt-<n>/before`
//! that the loop kept), and the verdict from the two pass counts:
//!
//! - **harmful**: it passed less often with the rule, or tests failed with it that never
//!   failed without it (the rule made the agent break something);
//! - **helpful**: it passed more often with the rule, and broke nothing;
//! - **no effect**: it passed as often either way, and broke nothing.
//!
//! Reruns make one attempt each and ask no teacher: the question is what the rule does to
//! the agent's first try, not what the loop would learn next.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Source, Split, Task, TrialResult};
use crate::store::StoredFailure;
use crate::store::StoredRule;
use crate::store::evidence::Verdict;

/// The verdict and the tests the rule broke (failed with it, never without it).
pub fn verdict(with: &[TrialResult], without: &[TrialResult]) -> (Verdict, Vec<String>) {
    let with_passed = with.iter().filter(|t| t.passed).count();
    let without_passed = without.iter().filter(|t| t.passed).count();
    let failing = |trials: &[TrialResult]| -> BTreeSet<String> {
        trials
            .iter()
            .flat_map(|t| t.failing.iter().flatten().cloned())
            .collect()
    };
    // A test counts as broken only when the reruns without the rule ran the tests and it
    // did not fail there.
    let without_ran = without.iter().any(|t| !t.failing.is_empty());
    let broken: Vec<String> = if without_ran {
        failing(with)
            .difference(&failing(without))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let verdict = if with_passed < without_passed || !broken.is_empty() {
        Verdict::Harmful
    } else if with_passed > without_passed {
        Verdict::Helpful
    } else {
        Verdict::NoEffect
    };
    (verdict, broken)
}

/// Where a rule came from, as far as a rerun needs: the failure and its snapshot.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The failure the rule was learned from.
    pub failure_id: String,
    /// The snapshot of the work tree before the failing attempt.
    pub snapshot: String,
    /// The rerun, as a bench task.
    pub task: Task,
}

/// The rerun of `rule`'s originating failure: the first of its arrivals whose failure came
/// from a run (a failure reported by hand has no snapshot) and had a test command. `root`
/// is the repository's top level, `project_dir` the project inside it.
pub fn origin(
    rule: &StoredRule,
    failures: &[StoredFailure],
    root: &Path,
    project_dir: &Path,
) -> Result<Origin, String> {
    let mut why = "it was not learned from a failure (imported or written by hand)".to_string();
    for p in &rule.provenance {
        let Some(id) = &p.failure_id else { continue };
        let Some(f) = failures.iter().find(|f| &f.context.id == id) else {
            why = format!("its failure {id} is not in the store");
            continue;
        };
        let c = &f.context;
        let (Some(run), Some(attempt)) = (&c.run_id, c.attempt) else {
            why = format!(
                "its failure {id} came from outside a run ({}), so no snapshot was kept",
                c.source
            );
            continue;
        };
        let Some(check) = c.test_command.clone().filter(|t| !t.trim().is_empty()) else {
            why = format!("its failure {id} has no test command to rerun");
            continue;
        };
        let snapshot = format!("refs/promptloop/runs/{run}/attempt-{attempt}/before");
        let dir = project_dir
            .strip_prefix(root)
            .ok()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf);
        return Ok(Origin {
            failure_id: id.clone(),
            snapshot: snapshot.clone(),
            task: Task {
                id: format!("validate-{}", rule.id),
                split: Split::Test,
                source: Source::Git {
                    repo: root.display().to_string(),
                    rev: Some(snapshot),
                },
                task: c.task.clone(),
                check,
                framework: None,
                hidden_tests: None,
                setup: None,
                dir,
                overrides: serde_json::Value::Object(Default::default()),
            },
        });
    }
    Err(format!("rule {} cannot be rerun: {why}", rule.id))
}

/// The rule's note when a validation retires it: the evidence, so `rules show` says why.
pub fn retire_note(summary: &str) -> String {
    format!("retired: harmful in validation ({summary}); `promptloop rules approve` brings it back")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(passed: bool, failing: &[&str]) -> TrialResult {
        TrialResult {
            passed,
            failing: vec![failing.iter().map(|s| s.to_string()).collect()],
            ..TrialResult::default()
        }
    }

    #[test]
    fn verdicts_follow_the_pass_counts_and_broken_tests() {
        let pass = || trial(true, &[]);
        let fail_a = || trial(false, &["a"]);
        let fail_b = || trial(false, &["b"]);
        assert_eq!(
            verdict(&[pass(), pass()], &[fail_a(), pass()]),
            (Verdict::Helpful, vec![])
        );
        assert_eq!(
            verdict(&[fail_a(), fail_a()], &[fail_a(), fail_a()]),
            (Verdict::NoEffect, vec![])
        );
        assert_eq!(
            verdict(&[pass(), pass()], &[pass(), pass()]),
            (Verdict::NoEffect, vec![])
        );
        assert_eq!(
            verdict(&[fail_a()], &[pass()]),
            (Verdict::Harmful, vec!["a".to_string()])
        );
        // As often failed, but the rule made the agent break b, which passed without it.
        assert_eq!(
            verdict(&[fail_b(), fail_b()], &[fail_a(), fail_a()]),
            (Verdict::Harmful, vec!["b".to_string()])
        );
        // Without reruns that ran tests nothing is known to be broken.
        assert_eq!(
            verdict(&[fail_b()], &[TrialResult::default()]),
            (Verdict::NoEffect, vec![])
        );
    }
}
