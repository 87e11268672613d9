//! The rule store, proved: repeated lessons merge, distinct ones stay, every rendered file
//! keeps its budget and the user's text, rendering is idempotent, review mode writes nothing
//! until approved, undo reverts, a newer schema is refused, older records are imported, and
//! the dedup method's precision and recall on the labelled pairs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use promptloop::learn::curate::{Curator, Target};
use promptloop::rules::Rule;
use promptloop::rules::file::read_section;
use promptloop::store::dedup::{Thresholds, eval};
use promptloop::store::render::Budget;
use promptloop::store::{
    LearnOutcome, Provenance, RuleFilter, RuleStore, Scope, SqliteStore, Status, StoreError,
};
use serde_json::Value;

use crate::support::{Project, events, fake_agent, of_type, repo_root};

fn rule(text: &str, category: &str) -> Rule {
    Rule {
        category: Some(category.into()),
        rule: text.into(),
        when: "Writing or changing the code it names".into(),
        why: "The tests caught the other behaviour".into(),
    }
}

fn provenance(i: usize) -> Provenance {
    Provenance {
        failure_id: Some(format!("f-{i}")),
        failure_type: "test_failure".into(),
        source: "pytest".into(),
        learned_at: "2026-11-24T21:40:00+00:00".into(),
        ..Provenance::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    project: PathBuf,
    store: SqliteStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().canonicalize().unwrap();
    let store = promptloop::store::open_project(&project).unwrap();
    Fixture {
        _dir: dir,
        project,
        store,
    }
}

fn curator<'a>(f: &'a Fixture, budget: Budget) -> Curator<'a> {
    Curator {
        store: &f.store,
        project_dir: f.project.clone(),
        budget,
        review: false,
        judge: None,
        unproven_max_age_days: None,
    }
}

/// Twenty wordings of one lesson, as different teachers (or one teacher on different days)
/// phrase it.
const SAME_LESSON: [&str; 20] = [
    "Return None, not 0, from safe_divide when the divisor is zero.",
    "When the divisor is zero, safe_divide must return None instead of 0.",
    "safe_divide should return None rather than 0 for a zero divisor.",
    "In safe_divide, return None (not 0) if the divisor is 0.",
    "Make safe_divide return None when dividing by zero, never 0.",
    "Division by zero in safe_divide returns None, not 0.",
    "Have safe_divide return None instead of 0 on a zero divisor.",
    "If safe_divide gets a zero divisor it must return None and not 0.",
    "Return None from safe_divide for a divisor of zero; do not return 0.",
    "safe_divide: a zero divisor gives None, not 0.",
    "For a divisor equal to zero, safe_divide returns None instead of returning 0.",
    "Always return None, not 0, from safe_divide on division by zero.",
    "safe_divide must not return 0 when the divisor is zero; return None.",
    "Return None rather than 0 from safe_divide whenever the divisor is zero.",
    "When dividing by zero, safe_divide has to return None, not the number 0.",
    "Ensure safe_divide returns None instead of 0 if the divisor is zero.",
    "safe_divide returns None on a zero divisor (0 is wrong).",
    "Zero divisor in safe_divide: return None, never 0.",
    "Use None, not 0, as the result of safe_divide when the divisor is zero.",
    "On a zero divisor, return None from safe_divide instead of 0.",
];

#[test]
fn the_same_lesson_twenty_times_is_one_rule_learned_twenty_times() {
    let f = fixture();
    let c = curator(&f, Budget::default());
    let target = c.target(Path::new("CLAUDE.md"));
    for (i, text) in SAME_LESSON.iter().enumerate() {
        let report = c
            .learn(
                &rule(text, "Return values"),
                provenance(i),
                Scope::Project,
                std::slice::from_ref(&target),
            )
            .unwrap();
        if i > 0 {
            assert!(
                matches!(report.outcome, LearnOutcome::Merged { .. }),
                "wording {i} was not merged: {text:?} → {:?}",
                report.outcome
            );
        }
    }
    let rules = f.store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0].status, Status::Active);
    assert_eq!(rules[0].times_learned, 20);
    assert_eq!(rules[0].provenance.len(), 20, "every arrival is kept");
    assert_eq!(rules[0].provenance[7].text, SAME_LESSON[7]);
    let file = std::fs::read_to_string(f.project.join("CLAUDE.md")).unwrap();
    assert_eq!(file.matches("- **Rule**:").count(), 1, "{file}");
}

#[test]
fn three_distinct_lessons_are_three_rules() {
    let f = fixture();
    let c = curator(&f, Budget::default());
    let target = c.target(Path::new("CLAUDE.md"));
    let lessons = [
        "Return None, not 0, from safe_divide when the divisor is zero.",
        "Use true division (/) in average, not floor division (//).",
        "Raise ValueError for negative amounts in withdraw().",
    ];
    for round in 0..2 {
        for (i, text) in lessons.iter().enumerate() {
            c.learn(
                &rule(text, "Calculator"),
                provenance(round * 10 + i),
                Scope::Project,
                std::slice::from_ref(&target),
            )
            .unwrap();
        }
    }
    let rules = f.store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 3, "{rules:#?}");
    assert!(rules.iter().all(|r| r.times_learned == 2));
    let file = std::fs::read_to_string(f.project.join("CLAUDE.md")).unwrap();
    assert_eq!(file.matches("- **Rule**:").count(), 3, "{file}");
}

#[test]
fn a_contradiction_is_proposed_for_review_not_written() {
    let f = fixture();
    let c = curator(&f, Budget::default());
    let target = c.target(Path::new("CLAUDE.md"));
    let first = c
        .learn(
            &rule(SAME_LESSON[0], "Return values"),
            provenance(1),
            Scope::Project,
            std::slice::from_ref(&target),
        )
        .unwrap();
    let flipped = "Return 0, not None, from safe_divide when the divisor is zero.";
    let report = c
        .learn(
            &rule(flipped, "Return values"),
            provenance(2),
            Scope::Project,
            std::slice::from_ref(&target),
        )
        .unwrap();
    let LearnOutcome::Conflict { id, with } = &report.outcome else {
        panic!("not flagged: {:?}", report.outcome)
    };
    assert_eq!(with, first.outcome.id());
    let stored = f.store.get(id).unwrap();
    assert_eq!(stored.status, Status::Proposed);
    assert!(stored.note.as_deref().unwrap().contains(with), "{stored:?}");
    let file = std::fs::read_to_string(f.project.join("CLAUDE.md")).unwrap();
    assert!(!file.contains(flipped), "{file}");
}

/// Three hundred rules that are all different (different functions, files and values).
fn distinct_rules() -> Vec<Rule> {
    let verbs = [
        "Return None from `{f}` when `{a}` is empty",
        "Validate `{a}` at the top of `{f}` and raise ValueError",
        "Close the handle opened by `{f}` in a finally block",
        "Log the `{a}` passed to `{f}` at debug level",
        "Cache the result of `{f}` keyed by `{a}`",
        "Sort `{a}` before `{f}` compares it",
    ];
    (0..300)
        .map(|i| {
            let text = verbs[i % verbs.len()]
                .replace("{f}", &format!("step_{i}"))
                .replace("{a}", &format!("arg_{i}"));
            Rule {
                category: Some(format!("Module {}", i % 7)),
                rule: text,
                when: format!("Changing module_{} or its tests", i % 7),
                why: format!("test_step_{i} failed without it"),
            }
        })
        .collect()
}

const USER_HEAD: &str = "# My project\n\nRun `make test` before pushing.\n\n";
const USER_TAIL: &str = "\n## Deploy\n\nNever deploy on Fridays.\n\tTabbed line, ünïcödé 🚀\n";

#[test]
fn three_hundred_rules_keep_every_file_in_budget_and_all_in_the_store() {
    let f = fixture();
    let budget = Budget {
        lines: 200,
        chars: 12_000,
    };
    let c = curator(&f, budget);
    let names = ["CLAUDE.md", "AGENTS.md", "docs/GEMINI.md"];
    for (i, name) in names.iter().enumerate() {
        let path = f.project.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Different user text in each, CRLF in one.
        let text = format!("{USER_HEAD}## Learned Rules & Patterns\n{USER_TAIL}");
        let text = if i == 1 {
            text.replace('\n', "\r\n")
        } else {
            text
        };
        std::fs::write(&path, text).unwrap();
    }
    let targets: Vec<Target> = names.iter().map(|n| c.target(Path::new(n))).collect();
    for (i, r) in distinct_rules().iter().enumerate() {
        let report = c.learn(r, provenance(i), Scope::Project, &targets).unwrap();
        assert!(
            matches!(report.outcome, LearnOutcome::Added { .. }),
            "rule {i} was not kept apart: {:?}",
            report.outcome
        );
    }
    assert_eq!(f.store.count().unwrap(), 300, "the store keeps every rule");
    for (i, name) in names.iter().enumerate() {
        let bytes = std::fs::read(f.project.join(name)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines = text.lines().count();
        let chars = text.chars().count();
        assert!(lines <= budget.lines, "{name}: {lines} lines");
        assert!(chars <= budget.chars, "{name}: {chars} characters");
        let shown = text.matches("- **Rule**:").count();
        assert!(shown >= 20, "{name}: only {shown} rules shown");
        assert!(
            text.contains(&format!("_{} more learned rules are kept", 300 - shown)),
            "{name}: the hidden rules are not mentioned"
        );
        // The user's text, byte for byte, before and after the section.
        let (head, tail) = if i == 1 {
            (
                USER_HEAD.replace('\n', "\r\n"),
                USER_TAIL.replace('\n', "\r\n"),
            )
        } else {
            (USER_HEAD.to_string(), USER_TAIL.to_string())
        };
        assert!(text.starts_with(&head), "{name}: head changed");
        assert!(text.ends_with(&tail), "{name}: tail changed");
        if i == 1 {
            assert!(
                !text.replace("\r\n", "").contains('\n'),
                "a bare LF in a CRLF file"
            );
        }
    }
    // Idempotent: a second render changes no byte and logs nothing.
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(f.project.join(n)).unwrap())
        .collect();
    let log_len = f.store.file_changes(None, 10_000).unwrap().len();
    let reports = c.sync_all("render", &[]).unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| !r.written), "{reports:?}");
    let after: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(f.project.join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(f.store.file_changes(None, 10_000).unwrap().len(), log_len);
}

#[test]
fn hand_edits_are_folded_in_and_undo_reverts_the_last_change() {
    let f = fixture();
    let c = curator(&f, Budget::default());
    let target = c.target(Path::new("CLAUDE.md"));
    std::fs::write(
        &target.path,
        "# Notes\n\n## Learned Rules & Patterns\n\n### Old\n- **Rule**: Keep the old rule from before the store\n- **When**: Always\n- **Why**: It was there\n",
    )
    .unwrap();
    // The first render imports what the section already held.
    c.sync(&target, "render", &[]).unwrap();
    let rules = f.store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].provenance[0].failure_type, "imported");
    let learned = c
        .learn(
            &rule(SAME_LESSON[0], "Return values"),
            provenance(1),
            Scope::Project,
            std::slice::from_ref(&target),
        )
        .unwrap();
    let new_id = learned.outcome.id().to_string();
    let with_rule = std::fs::read_to_string(&target.path).unwrap();
    assert!(with_rule.contains(SAME_LESSON[0]));
    // Undo: the file is as before the lesson, the rule is retired.
    let before_lesson = f.store.file_changes(Some("CLAUDE.md"), 1).unwrap()[0]
        .old_body
        .clone()
        .unwrap();
    let (entry, _) = c.undo(&target).unwrap();
    assert!(entry.reason.starts_with("undo of #"), "{entry:?}");
    let now = read_section(&target.path).unwrap();
    assert_eq!(now.body.as_deref(), Some(before_lesson.as_str()));
    assert_eq!(f.store.get(&new_id).unwrap().status, Status::Retired);
    // Rendering again keeps it that way.
    let r = c.sync(&target, "render", &[]).unwrap();
    assert!(!r.shown.contains(&new_id));
    // A rule deleted by hand is retired; one added by hand is stored.
    let old_id = rules[0].id.clone();
    let text = std::fs::read_to_string(&target.path).unwrap();
    let start = text.find("### Old").unwrap();
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |e| start + e + 1);
    let mut edited = text[..start].to_string();
    edited.push_str("- **Rule**: Write docstrings for public functions in utils.py\n- **When**: Adding a function\n- **Why**: The docs build reads them\n");
    edited.push_str(&text[end..]);
    std::fs::write(&target.path, &edited).unwrap();
    let r = c.sync(&target, "render", &[]).unwrap();
    assert_eq!(
        f.store.get(&old_id).unwrap().status,
        Status::Retired,
        "{r:?}"
    );
    let active = f
        .store
        .list(&RuleFilter {
            statuses: vec![Status::Active],
            target: None,
        })
        .unwrap();
    assert_eq!(active.len(), 1, "{active:#?}");
    assert!(active[0].rule.rule.contains("docstrings"));
    let file = std::fs::read_to_string(&target.path).unwrap();
    assert!(
        file.starts_with("# Notes\n\n## Learned Rules & Patterns\n"),
        "{file}"
    );
    // The hand-edited body is kept in the log.
    let log = f.store.file_changes(Some("CLAUDE.md"), 10).unwrap();
    assert!(
        log.iter()
            .any(|c| c.new_body.contains("docstrings") && c.reason.contains("by hand"))
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promptloop.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).err().expect("refused");
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("upgrade promptloop"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the database was modified"
    );
}

/// The method's figures on the labelled pairs (`cargo bench --bench curation` prints the
/// confusion matrices). The floors sit just under the figures measured when the method was
/// frozen (docs/rules.md), so a regression fails here; they are not the issue's target.
#[test]
fn dedup_precision_and_recall_on_the_labelled_pairs() {
    let sets = [
        (
            "tests/fixtures/curation/heldout.jsonl",
            [0.85, 0.80, 0.88, 0.77],
            256,
        ),
        (
            "tests/fixtures/curation/dev.jsonl",
            [0.90, 0.88, 0.97, 0.94],
            215,
        ),
        (
            "tests/fixtures/dedup_pairs.jsonl",
            [0.86, 0.88, 0.78, 0.80],
            167,
        ),
    ];
    let mut report = String::new();
    let mut failed = Vec::new();
    for (file, floors, count) in sets {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let pairs = eval::read_pairs(&text).unwrap();
        assert_eq!(pairs.len(), count, "{file}");
        let (c, scored) = eval::score(&pairs, &Thresholds::default());
        report.push_str(&c.table(file));
        let figures = [
            c.merge_precision(),
            c.merge_recall(),
            c.conflict_precision(),
            c.conflict_recall(),
        ];
        for (name, (got, floor)) in [
            "merge precision",
            "merge recall",
            "conflict precision",
            "conflict recall",
        ]
        .iter()
        .zip(figures.iter().zip(floors))
        {
            if *got < floor {
                failed.push(format!("{file}: {name} {got:.3} < {floor}"));
            }
        }
        // Splitting the pair the other way round changes few verdicts.
        assert!(
            scored.iter().filter(|s| s.reverse.is_some()).count() <= 3,
            "{file}"
        );
    }
    eprint!("{report}");
    assert!(failed.is_empty(), "{failed:#?}\n{report}");
}

/// The two sets were written apart: no pair of the held-out set is in the dev set.
#[test]
fn the_held_out_pairs_are_not_in_the_dev_pairs() {
    let read =
        |f: &str| eval::read_pairs(&std::fs::read_to_string(repo_root().join(f)).unwrap()).unwrap();
    let dev = read("tests/fixtures/curation/dev.jsonl");
    let held = read("tests/fixtures/curation/heldout.jsonl");
    let key = |p: &eval::Pair| (p.a.rule.clone(), p.b.rule.clone());
    let dev_keys: std::collections::BTreeSet<_> = dev.iter().map(key).collect();
    assert!(held.iter().all(|p| !dev_keys.contains(&key(p))));
    assert!(dev.len() + held.len() >= 400);
    for topic in [
        "python", "js", "go", "rust", "git", "ci", "config", "workflow",
    ] {
        assert!(held.iter().any(|p| p.topic == topic), "{topic}");
        assert!(dev.iter().any(|p| p.topic == topic), "{topic}");
    }
}

// ---------------------------------------------------------------------------
// Through the binary

fn offline_config(p: &Project, extra: &str) -> PathBuf {
    let agent = fake_agent(p.home.path());
    p.config(&format!(
        "claude:\n  command: {}\n  timeout: 10\n\
         tests:\n  command: grep -q '^fixed$' app.txt\n  timeout: 10\n\
         teacher:\n  mode: offline\n\
         learning:\n  max_retries: 1\n{extra}",
        agent.display()
    ))
}

fn project_with_app() -> Project {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.write("CLAUDE.md", "# Team notes\n\nBe kind.\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "app"]);
    p
}

fn run_json(p: &Project, config: &Path, extra_args: &[&str]) -> Vec<Value> {
    let out = p
        .promptloop()
        .args(["run", "make app.txt say fixed", "--json", "-c"])
        .arg(config)
        .args(extra_args)
        .env("FAKE_AGENT_MODE", "nothing")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&out.stdout)
}

fn rules_json(p: &Project, args: &[&str]) -> Value {
    let out = p
        .promptloop()
        .arg("rules")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rules {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_loop_merges_a_repeated_lesson_and_history_shows_the_runs() {
    let p = project_with_app();
    let config = offline_config(&p, "");
    // The agent changes nothing, so each attempt fails the same way: the offline teacher
    // writes the same rule each time.
    let evs = run_json(&p, &config, &[]);
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 2, "{evs:#?}");
    assert_eq!(learned[0]["action"], "added");
    assert_eq!(learned[1]["action"], "merged");
    assert_eq!(learned[0]["rule_id"], learned[1]["rule_id"]);
    let rules = rules_json(&p, &["list"]);
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0]["times_learned"], 2);
    // The second failure is the first one recurring while its rule was active.
    assert_eq!(rules[0]["recurrences"], 1);
    let claude_md = p.read("CLAUDE.md");
    assert!(
        claude_md.starts_with("# Team notes\n\nBe kind.\n"),
        "{claude_md}"
    );
    assert_eq!(claude_md.matches("- **Rule**:").count(), 1, "{claude_md}");
    assert!(claude_md.contains(rules[0]["id"].as_str().unwrap()));
    // History: one run, two attempts, both failing, the rule on each.
    let out = p.promptloop().args(["history", "--json"]).output().unwrap();
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run"]["outcome"], "failed");
    let attempts = runs[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["tests_outcome"], "failed");
    assert_eq!(attempts[1]["rule_id"], rules[0]["id"]);
    // `rules render` twice: the second changes nothing.
    let first = rules_json(&p, &["render"]);
    let second = rules_json(&p, &["render"]);
    assert!(
        second
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["written"] == false),
        "{first} {second}"
    );
}

#[test]
fn review_mode_writes_nothing_until_approved() {
    let p = project_with_app();
    let config = offline_config(&p, "rules:\n  review: true\n");
    let before = p.read("CLAUDE.md");
    let evs = run_json(&p, &config, &[]);
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned[0]["action"], "proposed", "{evs:#?}");
    assert_eq!(learned[0]["added"], false);
    assert_eq!(p.read("CLAUDE.md"), before, "review mode wrote the file");
    let id = learned[0]["rule_id"].as_str().unwrap().to_string();
    let shown = rules_json(&p, &["show", &id]);
    assert_eq!(shown["status"], "proposed");
    // Approve (with a short id prefix): now it is written.
    let approved = rules_json(&p, &["approve", &id[..5], "-c", config.to_str().unwrap()]);
    assert_eq!(approved["change"]["status_after"], "active");
    let after = p.read("CLAUDE.md");
    assert!(after.starts_with(&before), "{after}");
    assert!(after.contains(&id), "{after}");
    // The log says what changed the file; undo takes it back out.
    let log = rules_json(&p, &["log"]);
    assert!(
        log[0]["reason"].as_str().unwrap().contains("approved"),
        "{log}"
    );
    rules_json(&p, &["undo"]);
    assert!(!p.read("CLAUDE.md").contains("- **Rule**:"));
    assert_eq!(rules_json(&p, &["show", &id])["status"], "proposed");
    // Reject: retired with the reason.
    let out = p
        .promptloop()
        .args(["rules", "reject", &id, "--reason", "too specific"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = rules_json(&p, &["show", &id]);
    assert_eq!(shown["status"], "retired");
    assert!(shown["note"].as_str().unwrap().contains("too specific"));
}

#[test]
fn rules_travel_between_projects_by_export_and_import() {
    let a = project_with_app();
    let config = offline_config(&a, "");
    run_json(&a, &config, &[]);
    let exported = a.home.path().join("rules.json");
    let out = a
        .promptloop()
        .args(["rules", "export", "--format", "json", "-o"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success());
    let md = a.promptloop().args(["rules", "export"]).output().unwrap();
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("- **Rule**:"), "{md}");

    let b = Project::new();
    b.write("README.md", "b\n");
    b.git(&["add", "-A"]);
    b.git(&["commit", "-qm", "b"]);
    let imported = b
        .promptloop()
        .args(["rules", "import", "--json"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let v: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(v["outcomes"][0]["action"], "added");
    assert!(b.read("CLAUDE.md").contains("- **Rule**:"));
    // Importing the markdown form again merges instead of duplicating.
    let md_file = b.home.path().join("rules.md");
    std::fs::write(&md_file, &md).unwrap();
    let again = b
        .promptloop()
        .args(["rules", "import", "--json"])
        .arg(&md_file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["outcomes"][0]["action"], "merged", "{v}");
    assert_eq!(rules_json(&b, &["list"]).as_array().unwrap().len(), 1);
}

#[test]
fn records_from_before_the_store_are_imported_on_first_open() {
    let p = Project::new();
    let dir = p.path.join(".promptloop");
    std::fs::create_dir_all(dir.join("runs/20261101-101010-abcd")).unwrap();
    std::fs::create_dir_all(dir.join("failures")).unwrap();
    let events = [
        r#"{"type":"run.started","run_id":"20261101-101010-abcd","task":"old task","project_dir":"/x","agent":"claude-code","teacher":"offline","rules_file":"/x/CLAUDE.md","max_attempts":1,"base_ref":"refs/promptloop/x"}"#,
        r#"{"type":"attempt.started","attempt":1,"max_attempts":1}"#,
        r#"{"type":"tests.finished","attempt":1,"tests":{"command":"false","outcome":"failed","exit":"exit 1","duration_ms":5,"report":null},"failing":["t::a"]}"#,
        r#"{"type":"run.finished","outcome":"failed","attempts":1,"rules_learned":0,"pending":1,"cost_usd":0.0,"duration_ms":10,"record":"/x","message":"m"}"#,
        r#"{"type":"cut off by a cra"#,
    ];
    std::fs::write(
        dir.join("runs/20261101-101010-abcd/events.jsonl"),
        events.join("\n"),
    )
    .unwrap();
    let failure = serde_json::json!({
        "status": "pending",
        "context": {
            "id": "20261101-101010-abcd-a1", "failure_type": "test_failure", "source": "tests",
            "task": "old task", "project_dir": "/x", "run_id": "20261101-101010-abcd",
            "attempt": 1, "captured_at": "2026-11-01T10:10:11+00:00", "test_command": "false",
            "tests": [], "failing_ids": ["t::a"], "test_summary": "", "diff": "",
            "agent_status": null, "agent_message": null, "description": null, "context": null
        },
        "last_error": "no teacher", "tries": 0, "rule": null, "rules_file": null,
        "teacher": null, "teacher_answer": null
    });
    std::fs::write(
        dir.join("failures/20261101-101010-abcd-a1.json"),
        failure.to_string(),
    )
    .unwrap();
    let out = p.promptloop().args(["history", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["run"]["id"], "20261101-101010-abcd");
    assert_eq!(runs[0]["run"]["task"], "old task");
    assert_eq!(runs[0]["run"]["outcome"], "failed");
    assert_eq!(runs[0]["attempts"][0]["failing"], 1);
    let out = p
        .promptloop()
        .args(["history", "--failures", "--json"])
        .output()
        .unwrap();
    let failures: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failures[0]["status"], "pending");
    // The old files are still there.
    assert!(dir.join("failures/20261101-101010-abcd-a1.json").exists());
}

#[test]
fn bad_ids_and_statuses_are_usage_errors() {
    let p = project_with_app();
    let out = p
        .promptloop()
        .args(["rules", "show", "r-000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such rule"));
    let out = p
        .promptloop()
        .args(["rules", "list", "--status", "archived"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = p.promptloop().args(["rules", "undo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has not changed it"));
}

/// Text a person wrote inside the managed section that is not a readable rule (a note, a rule
/// without When/Why) is theirs: every render keeps it, verbatim, and a second render changes
/// nothing.
#[test]
fn hand_written_text_in_the_section_survives_every_render() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    let note = "Ask Dana before touching billing.";
    let partial = "- **Rule**: Keep functions small\n  - **Source**: written by hand";
    p.write(
        "CLAUDE.md",
        &format!("# Team notes\n\n## Learned Rules & Patterns\n\n{note}\n\n{partial}\n\n## Style\n\nTabs.\n"),
    );
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "app"]);
    let config = offline_config(&p, "");
    let evs = run_json(&p, &config, &[]);
    assert!(!of_type(&evs, "rule.learned").is_empty(), "{evs:#?}");
    let after_run = p.read("CLAUDE.md");
    assert!(after_run.contains(&format!("\n{note}\n")), "{after_run}");
    assert!(after_run.contains(&format!("\n{partial}\n")), "{after_run}");
    assert!(after_run.starts_with("# Team notes\n\n## Learned Rules & Patterns\n"));
    assert!(after_run.ends_with("\n## Style\n\nTabs.\n"), "{after_run}");
    assert_eq!(after_run.matches("- **Rule**:").count(), 2, "{after_run}");
    // Rendering again keeps it all and writes nothing.
    let render = rules_json(&p, &["render"]);
    assert!(
        render
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["written"] == false),
        "{render}"
    );
    assert_eq!(p.read("CLAUDE.md"), after_run);
}

/// Eight promptloop processes learning at once into one project — the real write path: the
/// store's database, then the managed section rendered with compare-and-swap. Every rule lands,
/// once, in the store and in CLAUDE.md, and the user's text stays.
#[test]
fn eight_processes_learning_at_once_all_land() {
    // Distinct lessons (the dedup would rightly merge rewordings of one).
    const RULES: [&str; 8] = [
        "Pin the zebra payment SDK to the version in requirements.lock",
        "Evict quartz cache entries by key prefix, never flush the whole cache",
        "Write violet service logs as JSON lines with a request id",
        "Run harbor database migrations before deploying the web workers",
        "Cap falcon HTTP retries at three with exponential backoff",
        "Load copper translations from locales/ at start-up, not per request",
        "Read meadow feature flags through FlagClient, never from env vars",
        "Reject tundra uploads over 25 MB before streaming them to S3",
    ];
    let p = Project::new();
    p.write("CLAUDE.md", "# Team notes\n\nBe kind.\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "notes"]);
    let children: Vec<std::process::Child> = RULES
        .iter()
        .map(|rule| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("promptloop"));
            cmd.current_dir(&p.path)
                .env("HOME", p.home.path())
                .env("XDG_CONFIG_HOME", p.home.path().join(".config"))
                .env("XDG_DATA_HOME", p.home.path().join(".local/share"))
                .args([
                    "report-failure",
                    "-f",
                    "config_error",
                    "--teacher",
                    "offline",
                    "--json",
                ])
                .args(["-D", "The agent ignored a project convention"])
                .args(["-C", rule])
                .args(["-T", "Work on the service"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().expect("spawn promptloop")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = rules_json(&p, &["list"]);
    let rules = rules.as_array().unwrap();
    assert_eq!(
        rules.len(),
        8,
        "{rules:#?}\nevery rule: {:#}\nthe file log: {:#}",
        rules_json(&p, &["list", "--status", "all"]),
        rules_json(&p, &["log"])
    );
    let claude_md = p.read("CLAUDE.md");
    assert!(
        claude_md.starts_with("# Team notes\n\nBe kind.\n"),
        "{claude_md}"
    );
    assert_eq!(claude_md.matches("## Learned Rules & Patterns").count(), 1);
    for rule in RULES {
        let line = format!("- **Rule**: {rule}\n");
        assert_eq!(claude_md.matches(&line).count(), 1, "{rule}: {claude_md}");
    }
}
