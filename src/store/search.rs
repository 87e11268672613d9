//! Finding the rules that fit a task or the files being edited (`search_rules` over MCP),
//! so an agent can fetch rules the instruction file's budget leaves out.
//!
//! Each active rule is a small document: its text (category, rule, when, why), the tasks it
//! was learned on, and the files of the failures it came from (failing tests' files, the
//! files of their diffs). The query is the task text and the paths, analysed like rules are
//! for dedup ([`dedup::analyse`]: stemmed words, identifiers kept whole) and with identifiers
//! and paths also split into their words (`safe_divide` → `safe_divide`, `safe`, `divide`).
//! A rule scores the inverse document frequency of every query term it holds (terms from
//! its tasks count half), plus a bonus for each path that is a file its failures touched;
//! the sum is scaled by the feedback it got (helped up, misled down), and its evidence breaks
//! ties. Without a query or paths the rules come most valuable first.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::dedup;
use super::sqlite::feedback::FeedbackCounts;
use super::{StoredFailure, StoredRule};

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// A task or a question, in words.
    pub text: Option<String>,
    /// Files being edited, relative to the project (or absolute inside it).
    pub paths: Vec<String>,
    /// Only rules of this category (case-insensitive).
    pub category: Option<String>,
    /// At most this many hits.
    pub limit: usize,
}

/// One rule found, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Hit {
    /// The rule.
    pub rule: StoredRule,
    /// Its score (higher fits better); only comparable within one search.
    pub score: f64,
    /// The query's terms it holds.
    pub matched_terms: Vec<String>,
    /// The query's paths its failures touched.
    pub matched_files: Vec<String>,
    /// The files of the failures it was learned from.
    pub files: Vec<String>,
    /// What agents and people said about it.
    pub feedback: FeedbackCounts,
}

/// The files a stored failure touched: failing tests' files (from the report, or the test
/// id's `file::name` form) and the files of its diff.
pub fn files_of_failure(failure: &StoredFailure) -> BTreeSet<String> {
    let c = &failure.context;
    let mut files = BTreeSet::new();
    for t in &c.tests {
        if let Some(file) = t.file.as_deref().filter(|f| !f.is_empty()) {
            files.insert(file.to_string());
        }
    }
    for id in &c.failing_ids {
        if let Some((file, _)) = id.split_once("::")
            && file.contains('.')
        {
            files.insert(file.to_string());
        }
    }
    for line in c.diff.lines() {
        if let Some(rest) = line.strip_prefix("+++ b/") {
            files.insert(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("diff --git a/")
            && let Some((a, _)) = rest.split_once(" b/")
        {
            files.insert(a.trim().to_string());
        }
    }
    files
}

/// For every rule, the files of the failures it came from (through its provenance).
pub fn files_by_rule(
    rules: &[StoredRule],
    failures: &[StoredFailure],
) -> HashMap<String, BTreeSet<String>> {
    let by_failure: HashMap<&str, BTreeSet<String>> = failures
        .iter()
        .map(|f| (f.context.id.as_str(), files_of_failure(f)))
        .collect();
    rules
        .iter()
        .map(|r| {
            let files = r
                .provenance
                .iter()
                .filter_map(|p| p.failure_id.as_deref())
                .filter_map(|id| by_failure.get(id))
                .flatten()
                .cloned()
                .collect();
            (r.id.clone(), files)
        })
        .collect()
}

/// The terms of a text: its analysed tokens, and the words inside identifiers and paths.
pub fn terms(text: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = dedup::analyse(text, "")
        .tokens()
        .map(str::to_string)
        .collect();
    let split: String = text
        .split(|c: char| !(c.is_alphanumeric()))
        .flat_map(split_camel)
        .collect::<Vec<_>>()
        .join(" ");
    out.extend(dedup::analyse(&split, "").tokens().map(str::to_string));
    out
}

/// `safeDivide` → `safe Divide`; other words unchanged.
fn split_camel(word: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in word.chars() {
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// The terms of a path: its file name whole, its stem, its folders' and stem's words.
fn path_terms(path: &str) -> BTreeSet<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let folders: Vec<&str> = path.split('/').rev().skip(1).collect();
    let mut out = terms(&format!("{} {}", folders.join(" "), stem));
    if !name.is_empty() {
        out.insert(name.to_lowercase());
    }
    out
}

/// Whether two project paths name the same file (one may be longer: `./a/b.py`, `b.py`).
fn same_file(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches("./");
    let b = b.trim_start_matches("./");
    a == b || a.ends_with(&format!("/{b}")) || b.ends_with(&format!("/{a}"))
}

fn folder_of(path: &str) -> &str {
    path.trim_start_matches("./")
        .rsplit_once('/')
        .map_or("", |(d, _)| d)
}

/// Points for a path its failures touched; half as much for a file in the same folder.
const FILE_BONUS: f64 = 3.0;
const FOLDER_BONUS: f64 = 0.5;

/// Ranks `rules` (the caller passes the active ones) for `query`.
pub fn rank(
    rules: Vec<StoredRule>,
    files: &HashMap<String, BTreeSet<String>>,
    feedback: &HashMap<String, FeedbackCounts>,
    query: &Query,
) -> Vec<Hit> {
    let wanted_category = query
        .category
        .as_deref()
        .map(|c| c.trim().trim_start_matches('#').trim().to_lowercase())
        .filter(|c| !c.is_empty());
    let rules: Vec<StoredRule> =
        rules
            .into_iter()
            .filter(|r| match &wanted_category {
                None => true,
                Some(c) => r.rule.category.as_deref().is_some_and(|rc| {
                    rc.trim().trim_start_matches('#').trim().to_lowercase() == *c
                }),
            })
            .collect();
    let no_files = BTreeSet::new();
    let docs: Vec<(BTreeSet<String>, BTreeSet<String>)> = rules
        .iter()
        .map(|r| {
            let own = terms(&format!(
                "{} {} {} {}",
                r.rule.category.as_deref().unwrap_or(""),
                r.rule.rule,
                r.rule.when,
                r.rule.why
            ));
            let mut more = BTreeSet::new();
            for p in &r.provenance {
                if let Some(task) = &p.task {
                    more.extend(terms(task));
                }
            }
            for f in files.get(&r.id).unwrap_or(&no_files) {
                more.extend(path_terms(f));
            }
            more.retain(|t| !own.contains(t));
            (own, more)
        })
        .collect();

    let mut query_terms = query.text.as_deref().map(terms).unwrap_or_default();
    for p in &query.paths {
        query_terms.extend(path_terms(p));
    }
    let searching = !query_terms.is_empty() || !query.paths.is_empty();
    let n = docs.len() as f64;
    let idf = |t: &String| {
        let df = docs
            .iter()
            .filter(|(own, more)| own.contains(t) || more.contains(t))
            .count() as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    };
    let idfs: HashMap<&String, f64> = query_terms.iter().map(|t| (t, idf(t))).collect();

    let mut hits: Vec<Hit> = rules
        .into_iter()
        .zip(docs)
        .filter_map(|(rule, (own, more))| {
            let mut score = 0.0;
            let mut matched_terms = Vec::new();
            for (t, w) in &idfs {
                if own.contains(*t) {
                    score += w;
                    matched_terms.push((*t).clone());
                } else if more.contains(*t) {
                    score += w / 2.0;
                    matched_terms.push((*t).clone());
                }
            }
            let rule_files = files.get(&rule.id).unwrap_or(&no_files);
            let mut matched_files = Vec::new();
            for p in &query.paths {
                if rule_files.iter().any(|f| same_file(f, p)) {
                    score += FILE_BONUS;
                    matched_files.push(p.clone());
                } else if rule_files
                    .iter()
                    .any(|f| !folder_of(f).is_empty() && folder_of(f) == folder_of(p))
                {
                    score += FOLDER_BONUS;
                }
            }
            if searching && score <= 0.0 {
                return None;
            }
            let fb = feedback.get(&rule.id).copied().unwrap_or_default();
            let trust =
                (1.0 + 0.25 * f64::from(fb.helped.min(8))) / (1.0 + 0.5 * f64::from(fb.misled));
            // Evidence breaks ties (and orders everything when nothing is searched for).
            let evidence = (1.0 + rule.value() as f64).ln() * 0.01;
            matched_terms.sort();
            Some(Hit {
                score: score * trust + evidence,
                matched_terms,
                matched_files,
                files: rule_files.iter().cloned().collect(),
                feedback: fb,
                rule,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.rule.id.cmp(&b.rule.id))
    });
    hits.truncate(query.limit.max(1));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureContext;
    use crate::rules::format::Rule;
    use crate::store::{FailureStatus, Provenance, Scope, Status};

    fn rule(id: &str, text: &str, when: &str, failure: Option<&str>) -> StoredRule {
        StoredRule {
            id: id.into(),
            rule: Rule {
                category: None,
                rule: text.into(),
                when: when.into(),
                why: "it broke before".into(),
            },
            scope: Scope::Project,
            targets: vec!["CLAUDE.md".into()],
            status: Status::Active,
            note: None,
            conflicts_with: None,
            created_at: "2026-01-01T00:00:00+00:00".into(),
            updated_at: "2026-01-01T00:00:00+00:00".into(),
            activated_at: None,
            last_learned_at: "2026-01-01T00:00:00+00:00".into(),
            times_learned: 1,
            recurrences: 0,
            times_validated: 0,
            provenance: vec![Provenance {
                failure_id: failure.map(str::to_string),
                failure_type: "test_failure".into(),
                source: "pytest".into(),
                learned_at: "2026-01-01T00:00:00+00:00".into(),
                ..Provenance::default()
            }],
        }
    }

    fn failure(id: &str, failing: &str, diff: &str) -> StoredFailure {
        StoredFailure {
            status: FailureStatus::Learned,
            context: FailureContext {
                id: id.into(),
                failure_type: "test_failure".into(),
                source: "pytest".into(),
                task: "fix it".into(),
                project_dir: "/p".into(),
                run_id: None,
                attempt: None,
                captured_at: String::new(),
                test_command: None,
                tests: Vec::new(),
                failing_ids: vec![failing.into()],
                test_summary: String::new(),
                diff: diff.into(),
                agent_status: None,
                agent_message: None,
                description: None,
                context: None,
            },
            last_error: None,
            tries: 1,
            rule: None,
            rules_file: None,
            teacher: None,
            teacher_answer: None,
            fingerprints: Vec::new(),
            recurrences: 0,
            last_recurrence: None,
            recurrence_of: None,
        }
    }

    fn three() -> (Vec<StoredRule>, Vec<StoredFailure>) {
        let rules = vec![
            rule(
                "r-aaaaaa",
                "Return None, not 0, from safe_divide when the divisor is zero",
                "Writing safe_* helpers in calculator.py",
                Some("f1"),
            ),
            rule(
                "r-bbbbbb",
                "Run the migrations before the integration tests",
                "Changing the database schema",
                Some("f2"),
            ),
            rule(
                "r-cccccc",
                "Extend the existing webhook client instead of writing a new one",
                "Adding an integration with a remote service",
                None,
            ),
        ];
        let failures = vec![
            failure(
                "f1",
                "tests/test_calculator.py::test_safe_divide_by_zero",
                "diff --git a/calculator.py b/calculator.py\n+++ b/calculator.py\n",
            ),
            failure(
                "f2",
                "tests/db/test_schema.py::test_migrate",
                "diff --git a/db/schema.sql b/db/schema.sql\n",
            ),
        ];
        (rules, failures)
    }

    fn search(q: Query) -> Vec<String> {
        let (rules, failures) = three();
        let files = files_by_rule(&rules, &failures);
        rank(rules, &files, &HashMap::new(), &q)
            .into_iter()
            .map(|h| h.rule.id)
            .collect()
    }

    #[test]
    fn a_task_text_finds_the_rule_about_it_first_and_unrelated_rules_not_at_all() {
        let ids = search(Query {
            text: Some("make divide by zero safe".into()),
            limit: 5,
            ..Query::default()
        });
        assert_eq!(ids, ["r-aaaaaa"]);
        let ids = search(Query {
            text: Some("add a webhook integration".into()),
            limit: 5,
            ..Query::default()
        });
        assert_eq!(ids.first().map(String::as_str), Some("r-cccccc"), "{ids:?}");
    }

    #[test]
    fn a_file_its_failures_touched_finds_the_rule() {
        let ids = search(Query {
            paths: vec!["/p/db/schema.sql".into()],
            limit: 5,
            ..Query::default()
        });
        assert_eq!(ids.first().map(String::as_str), Some("r-bbbbbb"), "{ids:?}");
        let (rules, failures) = three();
        let files = files_by_rule(&rules, &failures);
        assert!(files["r-aaaaaa"].contains("calculator.py"));
        assert!(files["r-aaaaaa"].contains("tests/test_calculator.py"));
        let hits = rank(
            rules,
            &files,
            &HashMap::new(),
            &Query {
                paths: vec!["calculator.py".into()],
                limit: 1,
                ..Query::default()
            },
        );
        assert_eq!(hits[0].rule.id, "r-aaaaaa");
        assert_eq!(hits[0].matched_files, ["calculator.py"]);
    }

    #[test]
    fn misled_feedback_ranks_a_rule_below_one_that_helped() {
        let (mut rules, failures) = three();
        // Two rules that match the query equally well.
        rules[1].rule.rule = "Return None from safe_divide when the divisor is zero".into();
        rules[1].rule.when = "Writing safe_* helpers in calculator.py".into();
        let files = files_by_rule(&rules, &failures);
        let q = Query {
            text: Some("safe_divide".into()),
            limit: 5,
            ..Query::default()
        };
        let mut fb = HashMap::new();
        fb.insert(
            "r-aaaaaa".to_string(),
            FeedbackCounts {
                helped: 0,
                misled: 2,
            },
        );
        fb.insert(
            "r-bbbbbb".to_string(),
            FeedbackCounts {
                helped: 1,
                misled: 0,
            },
        );
        let hits = rank(rules, &files, &fb, &q);
        assert_eq!(hits[0].rule.id, "r-bbbbbb");
        assert_eq!(hits[1].rule.id, "r-aaaaaa");
    }

    #[test]
    fn category_filters_and_no_query_lists_by_evidence_within_the_limit() {
        let (mut rules, failures) = three();
        rules[2].rule.category = Some("Integrations".into());
        rules[0].times_validated = 3;
        let files = files_by_rule(&rules, &failures);
        let hits = rank(
            rules.clone(),
            &files,
            &HashMap::new(),
            &Query {
                category: Some("integrations".into()),
                limit: 5,
                ..Query::default()
            },
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].rule.id, "r-cccccc");
        let hits = rank(
            rules,
            &files,
            &HashMap::new(),
            &Query {
                limit: 2,
                ..Query::default()
            },
        );
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].rule.id, "r-aaaaaa", "the proven rule first");
    }

    #[test]
    fn identifiers_and_paths_are_split_into_words() {
        let t = terms("safeDivide in src/calc_utils.py");
        assert!(t.contains("safedivide"), "{t:?}");
        assert!(t.iter().any(|x| x.starts_with("divid")), "{t:?}");
        assert!(t.iter().any(|x| x.starts_with("util")), "{t:?}");
        let p = path_terms("src/calc_utils.py");
        assert!(p.contains("calc_utils.py"), "{p:?}");
        assert!(p.iter().any(|x| x.starts_with("calc")), "{p:?}");
    }
}
