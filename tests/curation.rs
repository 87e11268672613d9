//! Curation through the binary: lessons reported four times in other words each leave one
//! rule counted four times; rules that differ only in their subject stay apart; a changed
//! value for the same thing is held as a conflict; `rules dedup` finds and merges the
//! duplicates of a store filled without dedup, and `rules undo` takes that back.

use std::time::Duration;

use promptloop::rules::Rule;
use promptloop::store::{Provenance, RuleStore, Scope, SqliteStore, Status, StoredRule};
use serde_json::Value;

use crate::support::Project;
use crate::support::fake_anthropic::{FakeAnthropic, Reply};

/// Three lessons, each in four wordings a teacher could write (the first two of the first
/// two lessons are the wordings of issue 13).
const LESSONS: [[(&str, &str); 4]; 3] = [
    [
        (
            "Always list the existing n8n workflows before creating a new one.",
            "Adding an automation in n8n",
        ),
        (
            "Check which n8n workflows already exist before you create another workflow.",
            "Building a new n8n automation",
        ),
        (
            "List existing n8n workflows first; only create a new workflow if none fits.",
            "Automating a task with n8n",
        ),
        (
            "Look up the n8n workflows that are already there before adding a new one.",
            "Creating n8n workflows",
        ),
    ],
    [
        (
            "Read the API token from an environment variable, never hard-code it in config files.",
            "Configuring API access",
        ),
        (
            "Do not put the API token in config files; take it from the environment.",
            "Setting up the client",
        ),
        (
            "Keep the API token out of config files and load it from an env var.",
            "Configuring the client",
        ),
        (
            "The API token comes from the environment (API_TOKEN); config files must never contain it.",
            "Handling credentials",
        ),
    ],
    [
        (
            "Run the full test suite before declaring the task done.",
            "Finishing a task",
        ),
        (
            "Before you say the task is complete, run the entire test suite.",
            "Wrapping up a change",
        ),
        (
            "Don't report a task as finished until the whole test suite has passed.",
            "Reporting back",
        ),
        (
            "Run every test, not only the one you changed, before you call the task finished.",
            "Completing work",
        ),
    ],
];

/// Lessons that must stay apart from each other, and one that contradicts the last.
const APART: [(&str, &str); 4] = [
    (
        "Pin numpy below 2 in requirements.txt.",
        "Editing the Python dependencies",
    ),
    (
        "Pin pandas below 2 in requirements.txt.",
        "Editing the Python dependencies",
    ),
    (
        "Set the HTTP timeout of the payments client to 30 seconds.",
        "Configuring the payments client",
    ),
    (
        "Set the HTTP timeout of the payments client to 5 seconds.",
        "Configuring the payments client",
    ),
];

fn answer(rule: &str, when: &str) -> String {
    format!(
        "Analysis: the agent repeated a known mistake.\n\n### Workflow\n- **Rule**: {rule}\n- **When**: {when}\n- **Why**: The reported mistake happened because of it.\n"
    )
}

/// A teacher on 127.0.0.1 that answers each report with the wording its description names
/// (`wording L.W`).
fn teacher() -> FakeAnthropic {
    FakeAnthropic::start(|r| {
        let text = r.text();
        for (l, lesson) in LESSONS.iter().enumerate() {
            for (w, (rule, when)) in lesson.iter().enumerate() {
                if text.contains(&format!("wording {l}.{w} ")) {
                    return Reply::text(answer(rule, when));
                }
            }
        }
        for (k, (rule, when)) in APART.iter().enumerate() {
            if text.contains(&format!("apart {k} ")) {
                return Reply::text(answer(rule, when));
            }
        }
        Reply::error(400, "unknown report")
    })
}

fn report(project: &Project, server: &FakeAnthropic, marker: &str) {
    let out = project
        .promptloop()
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .timeout(Duration::from_secs(120))
        .args(["report-failure", "-f", "workflow_error", "-t", "anthropic"])
        .args([
            "-D",
            &format!("The agent made a mistake ({marker} reported)."),
        ])
        .args(["-T", "Automate the nightly export"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{marker}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rules(project: &Project) -> Vec<Value> {
    rules_in(project, &[])
}

/// `rules list --status all --json` with `env` set.
fn rules_in(project: &Project, env: &[(&str, String)]) -> Vec<Value> {
    let out = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "list", "--status", "all", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find<'a>(rules: &'a [Value], text: &str) -> &'a Value {
    rules
        .iter()
        .find(|r| r["rule"] == text)
        .unwrap_or_else(|| panic!("no rule {text:?} in {rules:#?}"))
}

#[test]
fn four_wordings_of_three_lessons_are_three_rules_and_subjects_and_values_stay_apart() {
    let project = Project::new();
    let server = teacher();
    // Interleaved, as lessons arrive in practice.
    for w in 0..4 {
        for l in 0..3 {
            report(&project, &server, &format!("wording {l}.{w}"));
        }
    }
    let stored = rules(&project);
    assert_eq!(stored.len(), 3, "{stored:#?}");
    for (l, lesson) in LESSONS.iter().enumerate() {
        let rule = find(&stored, lesson[0].0);
        assert_eq!(rule["status"], "active", "lesson {l}");
        assert_eq!(rule["times_learned"], 4, "lesson {l}: {rule:#}");
        let wordings: Vec<&str> = rule["provenance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = lesson.iter().map(|(r, _)| *r).collect();
        assert_eq!(wordings, expected, "every wording is kept as evidence");
    }
    let file = project.read("CLAUDE.md");
    assert_eq!(file.matches("- **Rule**:").count(), 3, "{file}");

    for k in 0..4 {
        report(&project, &server, &format!("apart {k}"));
    }
    let stored = rules(&project);
    assert_eq!(stored.len(), 7, "{stored:#?}");
    let numpy = find(&stored, APART[0].0);
    let pandas = find(&stored, APART[1].0);
    let slow = find(&stored, APART[2].0);
    let fast = find(&stored, APART[3].0);
    for r in [numpy, pandas, slow] {
        assert_eq!(r["status"], "active", "{r:#}");
        assert_eq!(r["times_learned"], 1, "{r:#}");
    }
    // The changed value for the same client is held for review, naming the rule it changes.
    assert_eq!(fast["status"], "proposed", "{fast:#}");
    assert_eq!(fast["conflicts_with"], slow["id"], "{fast:#}");
    let file = project.read("CLAUDE.md");
    assert!(
        file.contains(APART[1].0) && file.contains(APART[2].0),
        "{file}"
    );
    assert!(
        !file.contains(APART[3].0),
        "a conflict is not written: {file}"
    );
}

fn stored(id: &str, rule: &str, when: &str, learned: u32) -> StoredRule {
    let at = "2026-11-24T21:40:00+00:00".to_string();
    StoredRule {
        id: id.into(),
        rule: Rule {
            category: Some("Workflow".into()),
            rule: rule.into(),
            when: when.into(),
            why: "It went wrong before.".into(),
        },
        scope: Scope::Project,
        targets: vec!["CLAUDE.md".into()],
        status: Status::Active,
        note: None,
        conflicts_with: None,
        created_at: at.clone(),
        updated_at: at.clone(),
        activated_at: Some(at.clone()),
        last_learned_at: at.clone(),
        times_learned: learned,
        recurrences: 0,
        times_validated: 0,
        provenance: vec![Provenance {
            failure_type: "imported".into(),
            source: "an older store".into(),
            learned_at: at,
            text: rule.into(),
            ..Provenance::default()
        }],
    }
}

/// The binary's JSON answer to `args`, with `env` set.
fn json_in(project: &Project, env: &[(&str, String)], args: &[&str]) -> Value {
    let out = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn rules_dedup_merges_a_store_filled_without_dedup_and_undo_takes_it_back() {
    let project = Project::new();
    let store = promptloop::store::open_project(&project.path).unwrap();
    dedup_round_trip(&project, &store, &[]);
}

/// `rules dedup`, `--apply` and `rules undo` twice on `store` (empty, the store `project`
/// uses with `env` set), filled as an older promptloop left it: rewordings side by side.
pub(crate) fn dedup_round_trip(
    project: &Project,
    store: &dyn promptloop::store::RuleStore,
    env: &[(&str, String)],
) {
    {
        let rows = [
            ("r-000001", LESSONS[0][0].0, LESSONS[0][0].1, 2),
            ("r-000002", LESSONS[0][1].0, LESSONS[0][1].1, 1),
            ("r-000003", LESSONS[0][2].0, LESSONS[0][2].1, 1),
            ("r-000004", LESSONS[1][0].0, LESSONS[1][0].1, 1),
            ("r-000005", LESSONS[1][1].0, LESSONS[1][1].1, 3),
            ("r-000006", APART[0].0, APART[0].1, 1),
            ("r-000007", APART[1].0, APART[1].1, 1),
            ("r-000008", APART[2].0, APART[2].1, 1),
            ("r-000009", APART[3].0, APART[3].1, 1),
        ];
        for (id, rule, when, learned) in rows {
            store.insert(&stored(id, rule, when, learned)).unwrap();
        }
    }
    let json = |project: &Project, args: &[&str]| json_in(project, env, args);
    let rules = |project: &Project| rules_in(project, env);
    json(project, &["rules", "render", "--json"]);
    let before = project.read("CLAUDE.md");
    assert_eq!(before.matches("- **Rule**:").count(), 9, "{before}");

    let plan = json(project, &["rules", "dedup", "--json"]);
    assert_eq!(plan["applied"], false);
    assert_eq!(
        project.read("CLAUDE.md"),
        before,
        "a dry run changes nothing"
    );
    let merges: Vec<(String, String)> = plan["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["keep"].as_str().unwrap().to_string(),
                m["absorb"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // The most learned rule of each group is kept.
    assert_eq!(
        merges,
        pairs(&[
            ("r-000001", "r-000002"),
            ("r-000001", "r-000003"),
            ("r-000005", "r-000004")
        ]),
        "{plan:#}"
    );
    let conflicts = plan["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{plan:#}");
    assert_eq!(conflicts[0]["with"], "r-000008");
    assert_eq!(conflicts[0]["reason"], "value");
    // Dry run by name, and --apply with --dry-run is a usage error.
    assert_eq!(
        json(project, &["rules", "dedup", "--dry-run", "--json"])["merges"],
        plan["merges"]
    );
    let both = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "dedup", "--dry-run", "--apply"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));

    let applied = json(project, &["rules", "dedup", "--apply", "--json"]);
    assert_eq!(applied["applied"], true);
    let after = rules(project);
    let by_id = |id: &str| after.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("r-000001")["times_learned"], 4);
    assert_eq!(by_id("r-000001")["provenance"].as_array().unwrap().len(), 3);
    assert_eq!(by_id("r-000005")["times_learned"], 4);
    for gone in ["r-000002", "r-000003", "r-000004"] {
        let r = by_id(gone);
        assert_eq!(r["status"], "retired", "{r:#}");
        assert!(r["note"].as_str().unwrap().contains("merged into"), "{r:#}");
    }
    assert_eq!(by_id("r-000009")["status"], "proposed");
    assert_eq!(by_id("r-000009")["conflicts_with"], "r-000008");
    for kept in ["r-000006", "r-000007", "r-000008"] {
        assert_eq!(by_id(kept)["status"], "active");
    }
    let file = project.read("CLAUDE.md");
    assert_eq!(file.matches("- **Rule**:").count(), 5, "{file}");
    // A second scan finds nothing more.
    let again = json(project, &["rules", "dedup", "--json"]);
    assert!(again["merges"].as_array().unwrap().is_empty(), "{again:#}");
    assert!(
        again["conflicts"].as_array().unwrap().is_empty(),
        "{again:#}"
    );

    // Undo: the file and every rule as they were.
    project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "undo"])
        .assert()
        .success();
    assert_eq!(project.read("CLAUDE.md"), before);
    let undone = rules(project);
    let by_id = |id: &str| undone.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("r-000001")["times_learned"], 2);
    assert_eq!(by_id("r-000001")["provenance"].as_array().unwrap().len(), 1);
    assert_eq!(by_id("r-000005")["times_learned"], 3);
    for id in ["r-000002", "r-000003", "r-000004", "r-000009"] {
        assert_eq!(by_id(id)["status"], "active", "{id}");
    }
    // Undoing the undo applies it again.
    project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "undo"])
        .assert()
        .success();
    let redone = rules(project);
    let r1 = redone.iter().find(|r| r["id"] == "r-000001").unwrap();
    assert_eq!(r1["times_learned"], 4);
    assert_eq!(project.read("CLAUDE.md").matches("- **Rule**:").count(), 5);
}

fn new_rule(text: &str, when: &str) -> promptloop::store::NewRule {
    promptloop::store::NewRule {
        rule: Rule {
            category: None,
            rule: text.into(),
            when: when.into(),
            why: "It went wrong before.".into(),
        },
        scope: Scope::Project,
        targets: vec!["CLAUDE.md".into()],
        provenance: Provenance {
            failure_type: "test_failure".into(),
            source: "pytest".into(),
            ..Provenance::default()
        },
        status: Status::Active,
    }
}

/// An embeddings server on 127.0.0.1: texts that mention `$$` point one way, others another.
fn embeddings_server() -> crate::support::loopback::Loopback {
    use crate::support::loopback::{Answer, Loopback};
    Loopback::start(|r| {
        if r.path() != "/v1/embeddings" {
            return Answer::json(404, serde_json::json!({"error": "no such route"}));
        }
        let inputs = r.body["input"].as_array().cloned().unwrap_or_default();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = if t.as_str().unwrap_or("").contains("$$") {
                    [0.9, 0.1, 0.0]
                } else {
                    [0.0, 0.2, 0.9]
                };
                serde_json::json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        Answer::json(
            200,
            serde_json::json!({"object": "list", "data": data, "model": r.body["model"]}),
        )
    })
}

/// Two wordings of one rule (rule, when) that the method alone is unsure of: distinct
/// unless a judge says they are the same.
const UNSURE_PAIR: ((&str, &str), (&str, &str)) = (
    (
        "Escape `$` as `$$` in docker-compose.yml values.",
        "Writing compose files",
    ),
    (
        "In docker-compose.yml, write a literal dollar sign as $$.",
        "Editing docker-compose.yml",
    ),
);

#[test]
fn an_embeddings_judge_decides_where_the_method_is_unsure_with_a_cache_and_a_budget() {
    use promptloop::store::LearnOutcome;
    use promptloop::store::dedup::embed::{EmbeddingJudge, EmbeddingsConfig};
    let (a, b) = UNSURE_PAIR;
    let dir = tempfile::tempdir().unwrap();
    let server = embeddings_server();
    let config = |max_calls| EmbeddingsConfig {
        api_key: Some("local-key".into()),
        max_calls,
        ..EmbeddingsConfig::new(
            &server.base_url(),
            "nomic-embed-text",
            dir.path().join("embeddings.db"),
        )
    };

    // The method alone keeps the pair apart (it is unsure).
    let alone = SqliteStore::open(&dir.path().join("alone.db")).unwrap();
    alone.learn(new_rule(a.0, a.1), None).unwrap();
    let out = alone.learn(new_rule(b.0, b.1), None).unwrap();
    assert!(matches!(out, LearnOutcome::Added { .. }), "{out:?}");

    // With the judge: merged, in one request for both texts.
    let store = SqliteStore::open(&dir.path().join("judged.db")).unwrap();
    store.learn(new_rule(a.0, a.1), None).unwrap();
    let judge = EmbeddingJudge::new(config(2)).unwrap();
    let out = store.learn(new_rule(b.0, b.1), Some(&judge)).unwrap();
    assert!(matches!(out, LearnOutcome::Merged { .. }), "{out:?}");
    assert_eq!(judge.calls(), 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], "nomic-embed-text");
    assert_eq!(requests[0].body["input"].as_array().unwrap().len(), 2);
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer local-key")
    );

    // Cached: the same question again asks the server nothing.
    let again = SqliteStore::open(&dir.path().join("again.db")).unwrap();
    again.learn(new_rule(a.0, a.1), None).unwrap();
    let cached = EmbeddingJudge::new(config(2)).unwrap();
    let out = again.learn(new_rule(b.0, b.1), Some(&cached)).unwrap();
    assert!(matches!(out, LearnOutcome::Merged { .. }), "{out:?}");
    assert_eq!(cached.calls(), 0);
    assert_eq!(server.requests().len(), 1);

    // A budget of no calls: the judge cannot tell, and the method's answer stands.
    let broke = EmbeddingJudge::new(config(0)).unwrap();
    assert_eq!(
        broke.similarity("Pin numpy below 2.", "Keep numpy<2."),
        None
    );
    assert_eq!(server.requests().len(), 1);

    // What is sent is redacted first.
    let secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
    let judge = EmbeddingJudge::new(config(1)).unwrap();
    assert!(
        judge
            .similarity(&format!("Never log {secret}."), "Never log tokens.")
            .is_some()
    );
    let body = server.requests().last().unwrap().body.to_string();
    assert!(
        !body.contains(secret) && body.contains("REDACTED"),
        "{body}"
    );
}

/// Reports the "first wording" and then the "second wording" of a compose-file mistake
/// through `report-failure`, with `config` (a `rules:` YAML) where given.
fn report_both_wordings(
    project: &Project,
    model: &FakeAnthropic,
    config: Option<&str>,
    env: &[(&str, &str)],
) {
    for marker in ["first wording", "second wording"] {
        let mut cmd = project.promptloop();
        cmd.env("ANTHROPIC_BASE_URL", model.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .envs(env.iter().copied())
            .args(["report-failure", "-f", "workflow_error", "-t", "anthropic"])
            .args(["-D", &format!("The compose file broke ({marker})")]);
        if let Some(yaml) = config {
            cmd.arg("--config").arg(project.config(yaml));
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `rules.dedup_embeddings` in the config puts the embeddings judge behind every learn:
/// two wordings the method alone keeps apart are one rule, the token read from the variable
/// the config names.
#[test]
fn rules_dedup_embeddings_in_the_config_judges_what_the_method_is_unsure_of() {
    let (a, b) = UNSURE_PAIR;
    let embeddings = embeddings_server();
    let model = FakeAnthropic::start(move |r| {
        if r.text().contains("first wording") {
            Reply::text(answer(a.0, a.1))
        } else {
            Reply::text(answer(b.0, b.1))
        }
    });
    let learn_both = |config: Option<&str>| {
        let project = Project::new();
        report_both_wordings(
            &project,
            &model,
            config,
            &[("EMBEDDINGS_TOKEN", "emb-secret")],
        );
        rules(&project)
    };
    let apart = learn_both(None);
    assert_eq!(apart.len(), 2, "the method alone is unsure: {apart:#?}");
    assert!(embeddings.requests().is_empty());
    let yaml = format!(
        "rules:\n  dedup_embeddings:\n    base_url: {}\n    model: nomic-embed-text\n    \
         api_key_env: EMBEDDINGS_TOKEN\n    max_calls: 2\n",
        embeddings.base_url()
    );
    let judged = learn_both(Some(&yaml));
    assert_eq!(judged.len(), 1, "{judged:#?}");
    assert_eq!(judged[0]["times_learned"], 2);
    let requests = embeddings.requests();
    assert!(!requests.is_empty());
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer emb-secret")
    );
    // A bad value is a configuration error that names the key.
    let project = Project::new();
    let out = project
        .promptloop()
        .args(["config", "check", "--config"])
        .arg(project.config("rules:\n  dedup_embeddings:\n    same_cosine: 2\n"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rules.dedup_embeddings.same_cosine"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rules.dedup_judge: true` asks the teacher about what the method is unsure of, one
/// question per unsure candidate: SAME merges the two wordings,
/// DIFFERENT keeps them apart, and without the setting the teacher is never asked.
#[test]
fn rules_dedup_judge_asks_the_teacher_what_the_method_is_unsure_of() {
    let (a, b) = UNSURE_PAIR;
    let learn_both = |verdict: &'static str, config: Option<&str>| {
        let (a, b) = (answer(a.0, a.1), answer(b.0, b.1));
        let model = FakeAnthropic::start(move |r| {
            let text = r.text();
            if text.contains("SAME or DIFFERENT") {
                Reply::text(verdict)
            } else if text.contains("first wording") {
                Reply::text(a.clone())
            } else {
                Reply::text(b.clone())
            }
        });
        let project = Project::new();
        report_both_wordings(&project, &model, config, &[]);
        let asked: Vec<String> = model
            .requests()
            .iter()
            .map(|r| r.text())
            .filter(|t| t.contains("SAME or DIFFERENT"))
            .collect();
        (rules(&project), asked)
    };
    let judge = Some("rules:\n  dedup_judge: true\n");

    let (apart, asked) = learn_both("SAME", None);
    assert_eq!(apart.len(), 2, "the method alone is unsure: {apart:#?}");
    assert!(asked.is_empty(), "{asked:?}");

    let (merged, asked) = learn_both("SAME", judge);
    assert_eq!(merged.len(), 1, "{merged:#?}");
    assert_eq!(merged[0]["times_learned"], 2);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains("Rule A: In docker-compose.yml") && asked[0].contains("Rule B: Escape"),
        "{}",
        asked[0]
    );

    let (kept, asked) = learn_both("DIFFERENT", judge);
    assert_eq!(kept.len(), 2, "{kept:#?}");
    assert_eq!(asked.len(), 1, "{asked:?}");
}
