//! The team store on a real PostgreSQL server (started per test, see `pg_server.rs`): the
//! `RuleStore` behaviours against both backends through one function, eight writer
//! processes of the real binary learning one lesson, a writer killed mid-transaction, a
//! newer schema refused untouched, team scope, and a password never printed.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use promptloop::rules::format::Rule;
use promptloop::store::postgres::PgStore;
use promptloop::store::{
    FileChange, LearnOutcome, NewRule, Provenance, RuleEdit, RuleFilter, RuleStore, Scope,
    SqliteStore, Status, StoreError, StoredFailure,
};
use serde_json::{Value, json};

use crate::support::Project;
use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};

#[path = "pg_server.rs"]
mod pg_server;
use pg_server::{PASSWORD_ENV, PgServer};

fn rule(text: &str) -> Rule {
    Rule {
        category: Some("Checks".into()),
        rule: text.into(),
        when: "Dividing numbers".into(),
        why: "A test failed".into(),
    }
}

fn new_rule(text: &str, target: &str) -> NewRule {
    NewRule {
        rule: rule(text),
        scope: Scope::Project,
        targets: vec![target.into()],
        provenance: Provenance {
            failure_type: "test_failure".into(),
            source: "pytest".into(),
            run_id: Some("20261203-101500-abcd".into()),
            ..Provenance::default()
        },
        status: Status::Active,
    }
}

fn failure(id: &str, fingerprint: &str, captured_at: &str) -> StoredFailure {
    serde_json::from_value(json!({
        "status": "pending",
        "context": {
            "id": id, "failure_type": "test_failure", "source": "pytest",
            "task": "Fix division", "project_dir": "/p", "run_id": null, "attempt": 1,
            "captured_at": captured_at, "test_command": "pytest", "tests": [],
            "failing_ids": ["tests/test_calc.py::test_div"], "test_summary": "1 failed",
            "diff": "", "agent_status": null, "agent_message": null,
            "description": null, "context": null,
        },
        "last_error": null, "tries": 0, "rule": null, "rules_file": null, "teacher": null,
        "teacher_answer": null, "fingerprints": [fingerprint],
    }))
    .expect("a stored failure")
}

const NONE_NOT_ZERO: &str = "Return None, not 0, from safe_divide when the divisor is zero.";
const PARAPHRASE: &str = "When dividing by zero in safe_divide, return None instead of 0.";
const FLIPPED: &str = "Return 0, not None, from safe_divide when the divisor is zero.";
const MODULO: &str = "Return None, not 0, from safe_modulo when the divisor is zero.";

/// Every `RuleStore` behaviour the loop relies on; run against both backends.
fn exercise(store: &dyn RuleStore) {
    // Learn: added, merged (a paraphrase), a conflict (the flip), distinct (another function).
    let first = store
        .learn(new_rule(NONE_NOT_ZERO, "CLAUDE.md"), None)
        .unwrap();
    let LearnOutcome::Added { id, status } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(*status, Status::Active);
    let merged = store
        .learn(new_rule(PARAPHRASE, "AGENTS.md"), None)
        .unwrap();
    assert!(
        matches!(&merged, LearnOutcome::Merged { id: m, .. } if m == id),
        "{merged:?}"
    );
    let conflict = store.learn(new_rule(FLIPPED, "CLAUDE.md"), None).unwrap();
    let LearnOutcome::Conflict { id: flipped, with } = &conflict else {
        panic!("{conflict:?}")
    };
    assert_eq!(with, id);
    let other = store.learn(new_rule(MODULO, "CLAUDE.md"), None).unwrap();
    assert!(matches!(other, LearnOutcome::Added { .. }), "{other:?}");
    assert!(matches!(
        store.learn(new_rule("  ", "CLAUDE.md"), None),
        Err(StoreError::Invalid(_))
    ));

    // Get, by a prefix too; the merged rule has both arrivals and both targets.
    let got = store
        .get(&id[2..6])
        .unwrap_or_else(|_| store.get(id).unwrap());
    assert_eq!(got.id, *id);
    assert_eq!(got.times_learned, 2);
    assert_eq!(got.provenance.len(), 2);
    assert_eq!(got.provenance[1].text, PARAPHRASE);
    assert_eq!(
        got.targets,
        vec!["AGENTS.md".to_string(), "CLAUDE.md".to_string()]
    );
    assert!(matches!(
        store.get("r-zzzzzz"),
        Err(StoreError::NotFound(_))
    ));
    let proposed = store.get(flipped).unwrap();
    assert_eq!(proposed.status, Status::Proposed);
    assert_eq!(proposed.conflicts_with.as_deref(), Some(id.as_str()));

    // List by status and target; ranked: the twice-learned rule first.
    let active = store
        .list(&RuleFilter {
            statuses: vec![Status::Active],
            target: None,
        })
        .unwrap();
    assert_eq!(active.len(), 2);
    let agents = store
        .list(&RuleFilter {
            statuses: vec![],
            target: Some("AGENTS.md".into()),
        })
        .unwrap();
    assert_eq!(agents.len(), 1);
    let ranked = store.ranked_for_target("CLAUDE.md").unwrap();
    assert_eq!(ranked.len(), 2);
    assert_eq!(ranked[0].id, *id);
    assert_eq!(
        store.targets().unwrap(),
        vec!["AGENTS.md".to_string(), "CLAUDE.md".to_string()]
    );

    // Status changes and edits come back as changes for the log; an edited text is found
    // by the next lookup under its new words.
    let change = store
        .set_status(flipped, Status::Retired, Some("rejected"))
        .unwrap();
    assert_eq!(change.status_before, Some(Status::Proposed));
    assert_eq!(
        store.get(flipped).unwrap().note.as_deref(),
        Some("rejected")
    );
    let modulo_id = other.id().to_string();
    let edit = store
        .edit(
            &modulo_id,
            &RuleEdit {
                rule: Some("Quote every path passed to rsync in deploy.sh".into()),
                ..RuleEdit::default()
            },
        )
        .unwrap();
    assert_eq!(edit.text_before.map(|r| r.rule), Some(MODULO.to_string()));
    let again = store
        .learn(
            new_rule(
                "Always quote every path passed to rsync in deploy.sh",
                "CLAUDE.md",
            ),
            None,
        )
        .unwrap();
    assert_eq!(again.id(), modulo_id, "{again:?}");
    // The old words no longer find it.
    let old = store.learn(new_rule(MODULO, "CLAUDE.md"), None).unwrap();
    assert!(matches!(old, LearnOutcome::Added { .. }), "{old:?}");

    // Imports keep a free id and replace a taken one.
    let mut imported = store.get(id).unwrap();
    imported.rule.rule = "Pin the numpy version in requirements.txt".into();
    let new_id = store.insert(&imported).unwrap();
    assert_ne!(new_id, *id);
    imported.id = "r-abc123".into();
    assert_eq!(store.insert(&imported).unwrap(), "r-abc123");

    // The file-change log, newest first, per target; undo marks.
    let change = |target: &str, reason: &str| FileChange {
        seq: 0,
        target: target.into(),
        at: "2026-12-03T10:00:00+00:00".into(),
        reason: reason.into(),
        old_body: None,
        new_body: format!("body {reason}"),
        shown: vec![id.clone()],
        hidden: 1,
        store_changes: vec![],
        undone_by: None,
    };
    let a = store.log_file_change(&change("CLAUDE.md", "one")).unwrap();
    let b = store.log_file_change(&change("CLAUDE.md", "two")).unwrap();
    store
        .log_file_change(&change("GEMINI.md", "three"))
        .unwrap();
    store.mark_undone(a, b).unwrap();
    let log = store.file_changes(Some("CLAUDE.md"), 10).unwrap();
    assert_eq!(
        log.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>(),
        ["two", "one"]
    );
    assert_eq!(log[1].undone_by, Some(b));
    assert_eq!(log[1].shown, vec![id.clone()]);
    assert_eq!(store.file_changes(None, 1).unwrap()[0].reason, "three");
    assert!(store.targets().unwrap().contains(&"GEMINI.md".to_string()));

    // Failures: saved, updated in place; one that repeats a learned failure's fingerprint
    // while the rule is active counts as a recurrence of that rule.
    let mut f1 = failure("f-1", "fp-div", "2026-12-03T10:00:00+00:00");
    store.save_failure(&f1).unwrap();
    f1.status = promptloop::store::FailureStatus::Learned;
    store.save_failure(&f1).unwrap();
    let mut learned = new_rule(
        "Check the divisor in average() before dividing",
        "CLAUDE.md",
    );
    learned.provenance.failure_id = Some("f-1".into());
    let from_f1 = store.learn(learned, None).unwrap();
    let later = chrono::Local::now() + chrono::Duration::hours(1);
    let f2 = failure("f-2", "fp-div", &later.to_rfc3339());
    store.save_failure(&f2).unwrap();
    store.save_failure(&f2).unwrap();
    let failures = store.failures().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(
        failures[0].status,
        promptloop::store::FailureStatus::Learned
    );
    assert_eq!(store.get(from_f1.id()).unwrap().recurrences, 1);

    // Runs and attempts from events; a passed run validates the rules it learned.
    let run = "20261203-101500-abcd";
    for event in [
        json!({"type": "run.started", "task": "Fix division", "agent": "claude"}),
        json!({"type": "attempt.started", "attempt": 1}),
        json!({"type": "agent.finished", "attempt": 1, "outcome": {"status": "success"},
               "changed_files": ["calc.py"]}),
        json!({"type": "tests.finished", "attempt": 1,
               "tests": {"outcome": "failed"}, "failing": ["t1", "t2"]}),
        json!({"type": "failure.captured", "attempt": 1, "failure_id": "f-1"}),
        json!({"type": "rule.learned", "failure_id": "f-1", "rule_id": id}),
        json!({"type": "attempt.reverted", "attempt": 1}),
        json!({"type": "run.finished", "outcome": "passed", "attempts": 2, "rules_learned": 1,
               "pending": 0, "cost_usd": 0.25, "duration_ms": 1200, "message": "done"}),
    ] {
        store.record_event(run, &event).unwrap();
    }
    let runs = store.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("passed"));
    assert_eq!(runs[0].attempts, 2);
    assert_eq!(runs[0].started_at.as_deref(), Some("2026-12-03T10:15:00"));
    let attempts = store.attempts(run).unwrap();
    assert_eq!(attempts.len(), 1);
    let a1 = &attempts[0];
    assert_eq!(
        (
            a1.agent_status.as_deref(),
            a1.changed_files,
            a1.failing,
            a1.reverted
        ),
        (Some("success"), 1, 2, true)
    );
    assert_eq!(a1.rule_id.as_deref(), Some(id.as_str()));
    // Every rule learned with this run id was validated once.
    assert_eq!(store.get(id).unwrap().times_validated, 1);
    // The failure that came back is counted once, when it was captured.
    assert_eq!(
        store.recurrence_times().unwrap(),
        vec![f2.context.captured_at.clone()]
    );

    // Evidence: validations (latest per rule) and feedback.
    use promptloop::store::evidence::{Validation, Verdict};
    let validation = |verdict, with_passed| Validation {
        seq: 0,
        rule_id: id.to_string(),
        at: String::new(),
        verdict,
        trials: 2,
        with_passed,
        without_passed: 0,
        broken: vec!["t1".into()],
        detail: json!({"task": "Fix division"}),
    };
    let first = store
        .record_validation(&validation(Verdict::NoEffect, 0))
        .unwrap();
    let second = store
        .record_validation(&validation(Verdict::Helpful, 2))
        .unwrap();
    assert!(second > first);
    let kept = store.validations(Some(id.as_str())).unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1].broken, vec!["t1".to_string()]);
    assert_eq!(kept[1].detail["task"], "Fix division");
    assert!(!kept[1].at.is_empty());
    assert_eq!(store.validations(None).unwrap().len(), 2);
    assert_eq!(store.verdicts().unwrap()[id].verdict, Verdict::Helpful);
    let short = &id[..5];
    let (full, counts) = store
        .add_feedback(short, true, Some(" it fixed it "), "mcp")
        .unwrap();
    assert_eq!(&full, id);
    assert_eq!((counts.helped, counts.misled), (1, 0));
    let (_, counts) = store.add_feedback(id, false, Some("  "), "mcp").unwrap();
    assert_eq!((counts.helped, counts.misled), (1, 1));
    assert_eq!(store.feedback_counts(id).unwrap(), counts);
    assert_eq!(store.all_feedback_counts().unwrap()[id], counts);
    let log = store.feedback_log(id, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert!(!log[0].helped, "newest first");
    assert_eq!(log[0].note, None, "a blank note is not kept");
    assert_eq!(log[1].note.as_deref(), Some("it fixed it"));
    assert!(matches!(
        store.add_feedback("r-ffffffff", true, None, "mcp"),
        Err(StoreError::NotFound(_))
    ));

    // The events as recorded, numbered from 1 in order.
    let events = store.events().unwrap();
    assert!(events.len() >= 5, "{events:#?}");
    assert!(events.iter().all(|(r, _, _)| r == run));
    let seqs: Vec<i64> = events.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    assert_eq!(events[0].2["type"], "run.started");
    assert_eq!(events.last().unwrap().2["type"], "run.finished");
}

#[test]
fn rule_store_behaviours_are_the_same_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("behaviours");
    let store = PgStore::connect(&url, "github.com/org/api", &server.env()).unwrap();
    exercise(&store);

    // Another project in the same database sees none of it; a reconnect sees all of it.
    let other = PgStore::connect(&url, "github.com/org/web", &server.env()).unwrap();
    assert!(other.list(&RuleFilter::default()).unwrap().is_empty());
    assert!(other.failures().unwrap().is_empty());
    assert!(other.runs(10).unwrap().is_empty());
    let again = PgStore::connect(&url, "github.com/org/api", &server.env()).unwrap();
    assert_eq!(
        again.list(&RuleFilter::default()).unwrap(),
        store.list(&RuleFilter::default()).unwrap()
    );

    // Team rules are seen by every project; a project's lesson merges into a team rule.
    let mut team = new_rule(
        "Run migrations with --lock-timeout=5s on production",
        "CLAUDE.md",
    );
    team.scope = Scope::Team;
    let team_id = other.learn(team, None).unwrap().id().to_string();
    let seen = store.get(&team_id).unwrap();
    assert_eq!(seen.scope, Scope::Team);
    let merged = store
        .learn(
            new_rule(
                "Run migrations with --lock-timeout=5s on production.",
                "CLAUDE.md",
            ),
            None,
        )
        .unwrap();
    assert_eq!(merged.id(), team_id, "{merged:?}");
    assert_eq!(other.get(&team_id).unwrap().times_learned, 2);
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("newer");
    drop(PgStore::connect(&url, "p", &server.env()).unwrap());
    let mut client = server.client("newer");
    client
        .batch_execute(
            "INSERT INTO promptloop_schema(version, applied_at) VALUES (99, 'later');
             CREATE TABLE from_the_future (x INT)",
        )
        .unwrap();
    let snapshot = |c: &mut postgres::Client| -> (Vec<i32>, i64) {
        let versions = c
            .query("SELECT version FROM promptloop_schema ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let tables: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .unwrap()
            .get(0);
        (versions, tables)
    };
    let before = snapshot(&mut client);
    let err = PgStore::connect(&url, "p", &server.env())
        .err()
        .expect("a newer schema is refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("newer"), "{message}");
    assert!(!message.contains(&server.password), "{message}");
    assert_eq!(snapshot(&mut client), before);

    // The binary says the same, exits 2, and prints no password even when one is in the URL.
    let project = Project::new();
    let out = project
        .promptloop()
        .args(["rules", "list"])
        .env("PROMPTLOOP_STORE_URL", server.url_with_password("newer"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("newer"), "{text}");
    assert!(!text.contains(&server.password), "{text}");
    assert_eq!(snapshot(&mut client), before);
}

/// The teacher's answer with one fixed rule; it holds every request until `wait_for` have
/// arrived (or 20 s passed), so the writers learn at the same moment.
fn teacher(rule_text: &'static str, wait_for: usize) -> FakeAnthropic {
    let gate = Arc::new((Mutex::new(0usize), Condvar::new()));
    FakeAnthropic::start(move |r: &Request| {
        if r.is_messages() {
            let (count, cv) = &*gate;
            let mut n = count.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let deadline = Instant::now() + Duration::from_secs(20);
            while *n < wait_for && Instant::now() < deadline {
                n = cv.wait_timeout(n, Duration::from_millis(100)).unwrap().0;
            }
        }
        Reply::text(format!(
            "Analysis: the agent built a second importer.\n\n### Checks\n\
             - **Rule**: {rule_text}\n\
             - **When**: Adding a data import.\n\
             - **Why**: A second importer duplicated the first.\n"
        ))
    })
}

/// `promptloop report-failure` in `project` against the team store, as a child process.
fn writer(
    project: &Project,
    server: &PgServer,
    teacher: &FakeAnthropic,
    db: &str,
    extra: &[(&str, &str)],
    scope: &str,
) -> Child {
    writer_cmd(project, server, teacher, db, extra, scope)
        .spawn()
        .expect("spawn promptloop")
}

fn writer_cmd(
    project: &Project,
    server: &PgServer,
    teacher: &FakeAnthropic,
    db: &str,
    extra: &[(&str, &str)],
    scope: &str,
) -> Command {
    let mut cmd = team_cmd(project, server, teacher, db);
    cmd.args([
        "report-failure",
        "-f",
        "integration_error",
        "-D",
        "Wrote a second CSV importer beside the existing one",
        "-T",
        "Import the CSV",
        "--teacher",
        "anthropic",
        "--scope",
        scope,
    ]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// The binary in `project` with a clean environment, the loopback teacher and the team
/// store `db` (its password in the environment).
fn team_cmd(project: &Project, server: &PgServer, teacher: &FakeAnthropic, db: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("promptloop"));
    cmd.current_dir(&project.path)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", project.home.path())
        .env("TMPDIR", project.home.path())
        .env("XDG_CONFIG_HOME", project.home.path().join(".config"))
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("ANTHROPIC_BASE_URL", teacher.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("PROMPTLOOP_STORE_URL", server.url(db))
        .env(PASSWORD_ENV, &server.password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn clone_of(remote: &str) -> Project {
    let project = Project::new();
    project.git(&["remote", "add", "origin", remote]);
    project
}

const LESSON: &str =
    "Extend the existing importer in importers/csv.py instead of writing a new one.";

#[test]
fn eight_writer_processes_learning_one_lesson_leave_one_rule_counted_eight_times() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("eight");
    let teacher = teacher(LESSON, 8);
    // Eight clones of one repository, by its remote's two spellings: one project key.
    let projects: Vec<Project> = (0..8)
        .map(|i| {
            clone_of(if i % 2 == 0 {
                "git@github.com:Org/Api.git"
            } else {
                "https://ci-bot@github.com/Org/Api"
            })
        })
        .collect();
    let children: Vec<Child> = projects
        .iter()
        .map(|p| writer(p, &server, &teacher, "eight", &[], "project"))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = PgStore::connect(&url, "github.com/Org/Api", &server.env()).unwrap();
    let rules = store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0].rule.rule, LESSON);
    assert_eq!(rules[0].times_learned, 8);
    assert_eq!(rules[0].provenance.len(), 8);
    assert_eq!(store.failures().unwrap().len(), 8);
    for p in &projects {
        let claude = std::fs::read_to_string(p.path.join("CLAUDE.md")).unwrap();
        assert!(claude.contains(LESSON), "{claude}");
    }
    // The rule is the project's, listed with `rules list` from any clone, not the team's.
    let listed = rules_list(&projects[3], &server, "eight", &["--scope", "project"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["times_learned"], 8);
    assert!(rules_list(&projects[3], &server, "eight", &["--scope", "team"]).is_empty());
}

fn rules_list(project: &Project, server: &PgServer, db: &str, args: &[&str]) -> Vec<Value> {
    let out = project
        .promptloop()
        .args(["rules", "list", "--json", "--status", "all"])
        .args(args)
        .env("PROMPTLOOP_STORE_URL", server.url(db))
        .env(PASSWORD_ENV, &server.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

#[test]
fn a_writer_killed_mid_transaction_loses_nothing_else() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("killed");
    let project = clone_of("https://github.com/org/killed.git");
    let store = PgStore::connect(&url, "github.com/org/killed", &server.env()).unwrap();
    let kept = store
        .learn(new_rule(NONE_NOT_ZERO, "CLAUDE.md"), None)
        .unwrap();
    store
        .save_failure(&failure("f-kept", "fp-kept", "2026-12-03T09:00:00+00:00"))
        .unwrap();

    // The writer stops inside its learn transaction, after its writes, before the commit.
    // Idle in that transaction for 2 s: between two statements of its schema check at open,
    // which holds an advisory lock too, it is idle in transaction only for a moment (killed
    // there, it had not yet saved its failure).
    let teacher = teacher(LESSON, 1);
    let mut child = writer(
        &project,
        &server,
        &teacher,
        "killed",
        &[("PROMPTLOOP_TEST_PG_STALL_MS", "120000")],
        "project",
    );
    let mut watch = server.client("killed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stalled: i64 = watch
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                 WHERE a.application_name = 'promptloop' AND a.state = 'idle in transaction'
                   AND a.state_change < now() - interval '2 seconds'
                   AND l.locktype = 'advisory' AND l.granted",
                &[],
            )
            .unwrap()
            .get(0);
        if stalled > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer ended before it stalled"
        );
        assert!(
            Instant::now() < deadline,
            "the writer never reached its learn"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its uncommitted rule is invisible; then SIGKILL.
    assert_eq!(store.count().unwrap(), 1);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    // The lock went with the connection: the next writer is not blocked, and what it learns
    // is new (the killed writer's insert was rolled back).
    let started = Instant::now();
    let after = store.learn(new_rule(LESSON, "CLAUDE.md"), None).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(after, LearnOutcome::Added { .. }), "{after:?}");
    let rules = store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 2, "{rules:#?}");
    let old = store.get(kept.id()).unwrap();
    assert_eq!((old.times_learned, old.provenance.len()), (1, 1));
    let new = store.get(after.id()).unwrap();
    assert_eq!((new.times_learned, new.provenance.len()), (1, 1));
    // The failure kept before, and the killed writer's own report (saved before its learn).
    let failures = store.failures().unwrap();
    assert!(failures.iter().any(|f| f.context.id == "f-kept"));
    assert_eq!(failures.len(), 2, "{failures:#?}");
    // Nothing of the rolled-back rule is left in the token index.
    let orphans: i64 = watch
        .query_one(
            "SELECT COUNT(*) FROM rule_tokens t LEFT JOIN rules r ON r.id = t.rule_id
             WHERE r.id IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

#[test]
fn team_rules_reach_every_project_and_the_password_is_never_printed() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("team");
    let teacher = teacher(LESSON, 1);
    let api = clone_of("https://github.com/org/api.git");
    let web = clone_of("https://github.com/org/web.git");
    let out = writer(&api, &server, &teacher, "team", &[], "team")
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let team = rules_list(&web, &server, "team", &["--scope", "team"]);
    assert_eq!(team.len(), 1, "{team:#?}");
    assert_eq!(team[0]["scope"], "team");
    assert!(rules_list(&web, &server, "team", &["--scope", "project"]).is_empty());

    // Without a team store, --scope team is a usage error.
    let out = api
        .promptloop()
        .args([
            "report-failure",
            "-f",
            "other",
            "-D",
            "x",
            "--scope",
            "team",
        ])
        .args(["--teacher", "offline"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A password written in store.url: not in `config check`, not in a connect error.
    let config = api.config(&format!(
        "store:\n  url: {}\n  project_id: org/api\n",
        server.url_with_password("team")
    ));
    let out = api
        .promptloop()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("postgres://postgres:***@127.0.0.1"), "{text}");
    assert!(!text.contains(&server.password), "{text}");
    let wrong = format!(
        "postgres://postgres:not-{}@127.0.0.1:{}/team?sslmode=disable",
        server.password, server.port
    );
    let out = api
        .promptloop()
        .args(["rules", "list"])
        .env("PROMPTLOOP_STORE_URL", &wrong)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(text.contains("postgres://postgres:***@127.0.0.1"), "{text}");
    assert!(!text.contains(&server.password), "{text}");
}

#[test]
fn store_migrate_copies_a_sqlite_store_there_and_back_with_every_count_checked() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("migrate");
    let project = clone_of("https://github.com/org/moved.git");
    {
        let local = promptloop::store::open_project(&project.path).unwrap();
        exercise(&local);
    }
    let local = promptloop::store::open_project(&project.path).unwrap();
    let migrate = || {
        project
            .promptloop()
            .args(["store", "migrate", "--json", "--to", &server.url("migrate")])
            .env(PASSWORD_ENV, &server.password)
            .output()
            .unwrap()
    };
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let team = PgStore::connect(&url, "github.com/org/moved", &server.env()).unwrap();
    // The same rules (ids, counters, provenance, targets), failures, runs, attempts, log.
    assert_eq!(
        team.list(&RuleFilter::default()).unwrap(),
        local.list(&RuleFilter::default()).unwrap()
    );
    let json = |f: Vec<StoredFailure>| serde_json::to_value(f).unwrap();
    assert_eq!(
        json(team.failures().unwrap()),
        json(local.failures().unwrap())
    );
    assert_eq!(team.runs(10).unwrap(), local.runs(10).unwrap());
    let run = &local.runs(1).unwrap()[0].id;
    assert_eq!(team.attempts(run).unwrap(), local.attempts(run).unwrap());
    let strip = |log: Vec<FileChange>| -> Vec<(String, String, bool)> {
        log.into_iter()
            .map(|c| (c.target, c.reason, c.undone_by.is_some()))
            .collect()
    };
    assert_eq!(
        strip(team.file_changes(None, 100).unwrap()),
        strip(local.file_changes(None, 100).unwrap())
    );
    assert_eq!(done["counts"]["rules"], local.count().unwrap());
    assert_eq!(done["counts"]["runs"], 1);
    assert_eq!(done["counts"]["validations"], 2, "{done}");
    assert_eq!(done["counts"]["feedback"], 2, "{done}");
    assert_eq!(
        team.validations(None).unwrap(),
        local.validations(None).unwrap()
    );
    let log = |s: &dyn RuleStore, id: &str| -> Vec<(bool, Option<String>, String, String)> {
        s.feedback_log(id, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.helped, e.note, e.source, e.at))
            .collect()
    };
    let validated = &local.validations(None).unwrap()[0].rule_id;
    assert_eq!(log(&team, validated), log(&local, validated));
    // A second migrate is refused, and nothing is doubled.
    let out = migrate();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(team.count().unwrap(), local.count().unwrap());

    // And back: a team rule on the server stays there; the project's part comes back whole.
    let mut team_rule = new_rule("Tag every release with its version number.", "CLAUDE.md");
    team_rule.scope = Scope::Team;
    team.learn(team_rule, None).unwrap();
    let back = |p: &Project, extra: &[&str]| {
        p.promptloop()
            .args(["store", "migrate", "--json", "--to", "sqlite", "--from"])
            .arg(server.url("migrate"))
            .args(extra)
            .env(PASSWORD_ENV, &server.password)
            .output()
            .unwrap()
    };
    let project_only = |rules: Vec<promptloop::store::StoredRule>| -> Vec<_> {
        rules
            .into_iter()
            .filter(|r| r.scope != Scope::Team)
            .collect()
    };
    let clone = clone_of("https://github.com/org/moved.git");
    let out = back(&clone, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["team_rules_left"], 1, "{done}");
    assert_eq!(done["counts"]["validations"], 2, "{done}");
    assert_eq!(done["counts"]["feedback"], 2, "{done}");
    assert!(!done.to_string().contains(&server.password));
    let home = promptloop::store::open_project(&clone.path).unwrap();
    assert_eq!(
        home.list(&RuleFilter::default()).unwrap(),
        project_only(team.list(&RuleFilter::default()).unwrap())
    );
    assert_eq!(
        home.list(&RuleFilter::default()).unwrap(),
        local.list(&RuleFilter::default()).unwrap()
    );
    assert_eq!(
        home.validations(None).unwrap(),
        local.validations(None).unwrap()
    );
    assert_eq!(log(&home, validated), log(&local, validated));
    assert_eq!(
        json(home.failures().unwrap()),
        json(team.failures().unwrap())
    );
    assert_eq!(home.runs(10).unwrap(), team.runs(10).unwrap());
    assert_eq!(home.attempts(run).unwrap(), team.attempts(run).unwrap());
    assert_eq!(
        strip(home.file_changes(None, 100).unwrap()),
        strip(team.file_changes(None, 100).unwrap())
    );
    // Into a SQLite file that holds data: refused, unless --replace moves it aside.
    let out = back(&project, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already holds") && stderr.contains("--replace"),
        "{stderr}"
    );
    let out = back(&project, &["--replace"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = std::path::PathBuf::from(done["moved_aside"].as_str().unwrap());
    assert!(aside.exists(), "{}", aside.display());
    let kept = SqliteStore::open(&aside).unwrap();
    assert_eq!(
        kept.list(&RuleFilter::default()).unwrap(),
        local.list(&RuleFilter::default()).unwrap()
    );
}

/// Stops the server at once, after a checkpoint: the test server runs with
/// `synchronous_commit=off`, so without one an immediate stop may drop the last commits.
fn stop_after_checkpoint(server: &PgServer, db: &str) {
    server.client(db).batch_execute("CHECKPOINT").unwrap();
    server.stop();
}

const OFFLINE_LESSON: &str =
    "Run the database migrations with make migrate before starting the integration tests.";

fn sync_json(project: &Project, server: &PgServer, db: &str) -> Value {
    let out = project
        .promptloop()
        .args(["store", "sync", "--json"])
        .env("PROMPTLOOP_STORE_URL", server.url(db))
        .env(PASSWORD_ENV, &server.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (rule text, times learned) of every rule, sorted.
fn counts(project: &Project, server: &PgServer, db: &str) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = rules_list(project, server, db, &[])
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["times_learned"].as_u64().unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_server_stopped_during_work_loses_and_doubles_no_lesson() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("off");
    let project = clone_of("https://github.com/org/off.git");
    let online = teacher(LESSON, 1);
    let offline = teacher(OFFLINE_LESSON, 1);
    let report = |t: &FakeAnthropic| {
        let out = writer(&project, &server, t, "off", &[], "project")
            .wait_with_output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    report(&online);
    assert_eq!(counts(&project, &server, "off"), vec![(LESSON.into(), 1)]);

    // The server goes away: the report still learns, into the instruction file and the queue.
    stop_after_checkpoint(&server, "off");
    let stderr = report(&offline);
    assert!(stderr.contains("working offline"), "{stderr}");
    assert!(stderr.contains("promptloop store sync"), "{stderr}");
    assert!(!stderr.contains(&server.password), "{stderr}");
    let claude = std::fs::read_to_string(project.path.join("CLAUDE.md")).unwrap();
    assert!(claude.contains(OFFLINE_LESSON), "{claude}");
    assert!(
        claude.contains(LESSON),
        "the team's rule stays in the file: {claude}"
    );

    // Back: one sync sends it once; a second sends nothing.
    server.start_again();
    let first = sync_json(&project, &server, "off");
    assert_eq!(
        (&first["sent"], &first["pending"]),
        (&json!(1), &json!(0)),
        "{first}"
    );
    let expected = vec![(OFFLINE_LESSON.to_string(), 1), (LESSON.to_string(), 1)];
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(counts(&project, &server, "off"), sorted);
    assert_eq!(
        sync_json(&project, &server, "off"),
        json!({"sent": 0, "already_applied": 0, "pending": 0, "failures": 0, "events": 0,
               "runs": 0})
    );
    assert_eq!(counts(&project, &server, "off"), sorted);

    // The same lesson again while offline merges into it once synced, here by the next
    // connected report (at open), whose fold of the offline-rendered section adds nothing.
    stop_after_checkpoint(&server, "off");
    let out = writer_cmd(&project, &server, &offline, "off", &[], "project")
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let notice = events
        .iter()
        .find(|e| e["type"] == "store_offline")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(notice["send_with"], "promptloop store sync");
    assert!(!notice.to_string().contains(&server.password));
    server.start_again();
    let stderr = report(&online);
    assert!(stderr.contains("sent 1 lesson"), "{stderr}");
    let mut twice = vec![(OFFLINE_LESSON.to_string(), 2), (LESSON.to_string(), 2)];
    twice.sort();
    assert_eq!(counts(&project, &server, "off"), twice);
    assert_eq!(
        sync_json(&project, &server, "off"),
        json!({"sent": 0, "already_applied": 0, "pending": 0, "failures": 0, "events": 0,
               "runs": 0})
    );
    assert_eq!(counts(&project, &server, "off"), twice);
}

/// A sync cut off after the server applied a lesson but before it was marked sent here
/// applies it no second time.
#[test]
fn a_lesson_applied_before_a_cut_off_sync_is_not_applied_again() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("cut");
    let project = Project::new();
    let store = PgStore::connect(&server.url("cut"), "p", &server.env()).unwrap();
    let new = new_rule(NONE_NOT_ZERO, "CLAUDE.md");
    let first = store.learn_once(new.clone(), None, Some("q-1")).unwrap();
    assert!(
        matches!(first, Some(LearnOutcome::Added { .. })),
        "{first:?}"
    );
    assert_eq!(
        store.learn_once(new.clone(), None, Some("q-1")).unwrap(),
        None
    );
    let again = store.learn_once(new, None, Some("q-2")).unwrap();
    assert!(
        matches!(again, Some(LearnOutcome::Merged { .. })),
        "{again:?}"
    );
    let rules = store.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].times_learned, 2);
    // No queue in a fresh project: nothing to send.
    let done = promptloop::store::offline::sync(&project.path, &store).unwrap();
    assert_eq!(done, promptloop::store::offline::SyncReport::default());
}

/// The server lost between two learns of one process: the second is kept offline, queued,
/// and sent once the server is back.
#[test]
fn a_connection_lost_mid_run_falls_back_to_the_offline_store() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("mid");
    let project = Project::new();
    let settings = promptloop::settings::StoreSettings {
        url: Some(server.url_with_password("mid")),
        project_id: Some("mid".into()),
    };
    let store = promptloop::store::open_for(&project.path, &settings).unwrap();
    store
        .learn(new_rule(NONE_NOT_ZERO, "CLAUDE.md"), None)
        .unwrap();
    stop_after_checkpoint(&server, "mid");
    let outcome = store.learn(new_rule(MODULO, "CLAUDE.md"), None).unwrap();
    assert!(matches!(outcome, LearnOutcome::Added { .. }), "{outcome:?}");
    assert_eq!(store.get(outcome.id()).unwrap().rule.rule, MODULO);
    assert_eq!(
        promptloop::store::offline::pending(&project.path).unwrap(),
        1
    );
    drop(store);
    server.start_again();
    let pg = PgStore::connect(&server.url("mid"), "mid", &server.env()).unwrap();
    let done = promptloop::store::offline::sync(&project.path, &pg).unwrap();
    assert_eq!(done.sent, 1);
    let mut texts: Vec<_> = pg
        .list(&RuleFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.rule.rule, r.times_learned))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![(NONE_NOT_ZERO.to_string(), 1), (MODULO.to_string(), 1)]
    );
    assert_eq!(
        promptloop::store::offline::pending(&project.path).unwrap(),
        0
    );
}

/// The server stopped while `promptloop run` works: the run finishes from the instruction
/// file and the offline store, and `store sync` sends its lesson, its failure and the rest
/// of its events once; a second sync sends nothing.
#[test]
fn a_run_whose_server_stops_finishes_and_its_record_is_synced_once() {
    use crate::support::builders::Config;
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("runoff");
    let project = clone_of("https://github.com/org/runoff.git");
    project.write("app.txt", "broken\n");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "broken app"]);
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    // The first attempt waits for the test to stop the server; an attempt whose AGENTS.md
    // holds the lesson fixes the app.
    let agent = format!(
        "if [ ! -f {m}/stopped ]; then touch {m}/started; \
         while [ ! -f {m}/stopped ]; do sleep 0.1; done; fi; \
         if grep -q 'make migrate' AGENTS.md 2>/dev/null; then echo fixed > app.txt; fi"
    );
    let teacher = teacher(OFFLINE_LESSON, 1);
    let config = Config::new()
        .command_agent(&agent, "AGENTS.md")
        .tests("grep -q '^fixed$' app.txt")
        .anthropic(&teacher.base_url())
        .retries(1)
        .write(&project);
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| {
            project
                .run(&["run", "fix the app"], &config)
                .env("ANTHROPIC_API_KEY", "test-key")
                .env("PROMPTLOOP_STORE_URL", server.url("runoff"))
                .env(PASSWORD_ENV, &server.password)
                .go()
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marks.path().join("started").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop_after_checkpoint(&server, "runoff");
        std::fs::write(marks.path().join("stopped"), "").unwrap();
        run.join().unwrap()
    });
    run.assert_code(0);
    assert!(run.stderr.contains("working offline"), "{}", run.stderr);
    assert!(!run.stderr.contains(&server.password), "{}", run.stderr);
    assert_eq!(run.finished()["outcome"], "passed", "{:#?}", run.events);
    let run_id = run.of_type("run.started")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(project.read("AGENTS.md").contains(OFFLINE_LESSON));

    server.start_again();
    let first = sync_json(&project, &server, "runoff");
    assert_eq!(first["sent"], 1, "{first}");
    assert_eq!(first["failures"], 1, "{first}");
    assert_eq!(first["runs"], 1, "{first}");
    assert!(first["events"].as_u64().unwrap() > 3, "{first}");
    let again = sync_json(&project, &server, "runoff");
    assert_eq!(
        again,
        json!({"sent": 0, "already_applied": 0, "pending": 0, "failures": 0, "events": 0,
               "runs": 0})
    );

    let team = PgStore::connect(
        &server.url("runoff"),
        "github.com/org/runoff",
        &server.env(),
    )
    .unwrap();
    let rules = team.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0].rule.rule, OFFLINE_LESSON);
    assert_eq!(rules[0].times_learned, 1);
    // The run passed after learning it: evidence counted on the server, once.
    assert_eq!(rules[0].times_validated, 1);
    let runs = team.runs(10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].id, run_id);
    assert_eq!(runs[0].outcome.as_deref(), Some("passed"));
    assert_eq!(runs[0].attempts, 2);
    let attempts = team.attempts(&run_id).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    // The attempt names the server's rule, not the offline store's.
    assert_eq!(attempts[0].rule_id.as_deref(), Some(rules[0].id.as_str()));
    let failures = team.failures().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].status,
        promptloop::store::FailureStatus::Learned
    );
    // The events the run recorded online and offline, each once, in order.
    let kinds: Vec<String> = team
        .events()
        .unwrap()
        .into_iter()
        .map(|(_, _, e)| e["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run.started"));
    assert_eq!(kinds.last().map(String::as_str), Some("run.finished"));
    assert_eq!(kinds.iter().filter(|k| *k == "run.started").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "rule.learned").count(), 1);
}

/// A learn whose commit reached the server but whose answer was lost is queued offline
/// under the id the server recorded with it, so sync does not apply it a second time.
#[test]
fn a_learn_committed_without_an_answer_is_not_doubled_by_sync() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("lost");
    let project = Project::new();
    let pg = PgStore::connect(&server.url("lost"), "lost", &server.env()).unwrap();
    // What FallbackStore does when the commit's answer is lost: the server has applied the
    // learn under its id, and the offline store queues it under the same id.
    let id = "q-test-answer-lost";
    let applied = pg
        .learn_once(new_rule(MODULO, "CLAUDE.md"), None, Some(id))
        .unwrap()
        .unwrap();
    let offline = promptloop::store::offline::OfflineStore::open(&project.path).unwrap();
    offline
        .learn_queued(new_rule(MODULO, "CLAUDE.md"), None, id)
        .unwrap();
    drop(offline);
    assert_eq!(
        promptloop::store::offline::pending(&project.path).unwrap(),
        1
    );
    let done = promptloop::store::offline::sync(&project.path, &pg).unwrap();
    assert_eq!((done.sent, done.already), (0, 1), "{done:?}");
    let rules = pg.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, applied.id());
    assert_eq!(rules[0].times_learned, 1);
}

/// With a team store set, the commands that record and read use it, and none of them
/// starts a SQLite record of its own beside it.
#[test]
fn capture_history_stats_mcp_and_serve_use_the_team_store() {
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("cmds");
    let project = clone_of("https://github.com/org/cmds.git");
    let t = teacher(LESSON, 1);
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(&server.password), "{text}");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            text,
        )
    };
    let (code, _, text) = run(&mut writer_cmd(
        &project,
        &server,
        &t,
        "cmds",
        &[],
        "project",
    ));
    assert_eq!(code, Some(0), "{text}");
    // capture --learn: a failing command's failure, learned into the same rule.
    let (_, _, text) = run(team_cmd(&project, &server, &t, "cmds").args([
        "capture",
        "--learn",
        "--framework",
        "none",
        "--teacher",
        "anthropic",
        "--",
        "echo 'FAILED test_import - a second importer'; exit 1",
    ]));
    let pg = PgStore::connect(&server.url("cmds"), "github.com/org/cmds", &server.env()).unwrap();
    assert_eq!(pg.failures().unwrap().len(), 2, "{text}");
    let rules = pg.list(&RuleFilter::default()).unwrap();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0].times_learned, 2);

    let (code, stdout, text) =
        run(team_cmd(&project, &server, &t, "cmds").args(["history", "--failures", "--json"]));
    assert_eq!(code, Some(0), "{text}");
    let listed: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 2, "{stdout}");
    let (code, stdout, text) =
        run(team_cmd(&project, &server, &t, "cmds").args(["stats", "--json"]));
    assert_eq!(code, Some(0), "{text}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["totals"]["failures"], 2, "{stats}");
    assert_eq!(stats["totals"]["rules_active"], 1, "{stats}");
    assert_eq!(stats["rules"][0]["learned"], 2, "{stats}");

    // MCP: the rules are the team store's, and feedback is kept there.
    let env = server.store_env("cmds");
    let mut mcp = crate::mcp::Client::start_in(&project.path, project.home.path(), &[], &env);
    let listed = mcp.ok("list_rules", json!({}));
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["rules"][0]["rule"], LESSON);
    let said = mcp.ok(
        "rule_feedback",
        json!({"id": rules[0].id, "helped": true, "note": "found the importer"}),
    );
    assert_eq!(said["feedback"]["helped"], 1, "{said}");
    let (_, _, stderr) = mcp.finish();
    assert!(!stderr.contains(&server.password), "{stderr}");
    assert_eq!(pg.feedback_counts(&rules[0].id).unwrap().helped, 1);

    // The page shows the team store's rule and failures.
    let page = crate::serve::Server::start(&project, &[], &env);
    let rules_page = page.get("/rules");
    assert_eq!(rules_page.status, 200, "{}", page.stderr());
    assert!(
        rules_page
            .body
            .contains("Extend the existing importer in importers"),
        "{}",
        rules_page.body
    );
    let failures_page = page.get("/failures");
    assert_eq!(failures_page.status, 200);
    assert!(failures_page.body.contains("integration_error"));
    drop(page);

    assert!(
        !project.path.join(".promptloop/promptloop.db").exists(),
        "a SQLite record was started beside the team store"
    );
}

/// `rules dedup` finds, merges and holds for review on a team store as on SQLite, and
/// `rules undo` takes the merges back (the same test as for SQLite, see `curation.rs`).
#[test]
fn rules_dedup_and_its_undo_work_on_a_team_store() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("dedup");
    let project = clone_of("https://github.com/org/dedup.git");
    let store = PgStore::connect(&url, "github.com/org/dedup", &server.env()).unwrap();
    let env = server.store_env("dedup");
    crate::curation::dedup_round_trip(&project, &store, &env);
    assert!(!project.path.join(".promptloop/promptloop.db").exists());
}

/// `rules validate` reruns a rule learned into the team store and keeps the verdict there,
/// where `rules show` and every other machine find it.
#[test]
fn rules_validate_keeps_its_verdict_in_the_team_store() {
    use crate::evidence::{RULE, calculator_agent, calculator_config, learn_rule_in, teacher_with};
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("validate");
    let project = Project::calculator();
    project.git(&["remote", "add", "origin", "https://github.com/org/calc.git"]);
    let agent = calculator_agent(&project, "helpful");
    let config = calculator_config(&project, &agent);
    let teacher = teacher_with(RULE);
    let env = server.store_env("validate");
    let (id, run) = learn_rule_in(&project, &config, &teacher, &env);
    assert_eq!(run["outcome"], "passed", "{run}");
    let v = crate::evidence::validate_in(&project, &config, &id, &env);
    assert_eq!(v["verdict"], "helpful", "{v:#}");
    let pg = PgStore::connect(&url, "github.com/org/calc", &server.env()).unwrap();
    let kept = pg.validations(Some(id.as_str())).unwrap();
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(
        (kept[0].with_passed, kept[0].without_passed, kept[0].trials),
        (2, 0, 2)
    );
    let shown = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("validation: helpful: passed 2/2 with it, 0/2 without"),
        "{text}"
    );
    assert!(!project.path.join(".promptloop/promptloop.db").exists());
}

/// `rules.scope: team` in the config makes a lesson a team rule, seen by another project;
/// without a team store it is a usage error, and nothing is learned.
#[test]
fn rules_scope_team_in_the_config_learns_team_rules() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("scoped");
    let project = clone_of("https://github.com/org/one.git");
    let config = project.config("rules:\n  scope: team\n");
    let t = teacher(LESSON, 1);
    let out = writer_cmd(&project, &server, &t, "scoped", &[], "project")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = PgStore::connect(&url, "github.com/org/two", &server.env()).unwrap();
    let seen = other.list(&RuleFilter::default()).unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].scope, Scope::Team);
    assert_eq!(seen[0].rule.rule, LESSON);

    let alone = Project::new();
    let config = alone.config("rules:\n  scope: team\n");
    let out = alone
        .promptloop()
        .args([
            "report-failure",
            "-f",
            "workflow_error",
            "-D",
            "Forgot the lockfile",
        ])
        .args(["--teacher", "offline", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rules.scope: team needs a team store"),
        "{stderr}"
    );
    assert!(!alone.path.join(".promptloop/promptloop.db").exists());
}

/// A rule written into the section by hand while the server is unreachable stays in the
/// file through offline work and reaches the team store with the next connected render.
#[test]
fn a_hand_edit_made_while_offline_reaches_the_team_store() {
    const HAND: &str = "Keep the CSV importer's column names in importers/columns.py.";
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("hand");
    let project = clone_of("https://github.com/org/hand.git");
    let report = |t: &FakeAnthropic| {
        let out = writer(&project, &server, t, "hand", &[], "project")
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    report(&teacher(LESSON, 1));
    stop_after_checkpoint(&server, "hand");
    let file = project.read("CLAUDE.md");
    let at = file.find(&format!("**Rule**: {LESSON}")).unwrap();
    let line = file[..at].rfind('\n').map_or(0, |i| i + 1);
    let edited = format!(
        "{}- **Rule**: {HAND}\n- **When**: Changing the CSV import.\n- **Why**: Said in review.\n\n{}",
        &file[..line],
        &file[line..]
    );
    project.write("CLAUDE.md", &edited);
    report(&teacher(OFFLINE_LESSON, 1));
    let offline = project.read("CLAUDE.md");
    assert!(offline.contains(HAND), "{offline}");

    server.start_again();
    let out = project
        .promptloop()
        .envs(server.store_env("hand"))
        .args(["rules", "render", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pg = PgStore::connect(&url, "github.com/org/hand", &server.env()).unwrap();
    let rules = pg.list(&RuleFilter::default()).unwrap();
    let hand = rules
        .iter()
        .find(|r| r.rule.rule == HAND)
        .unwrap_or_else(|| panic!("{rules:#?}"));
    assert_eq!(hand.status, Status::Active);
    assert_eq!(hand.provenance[0].failure_type, "hand_edit");
    let active: Vec<_> = rules
        .iter()
        .filter(|r| r.status == Status::Active)
        .map(|r| r.rule.rule.as_str())
        .collect();
    assert_eq!(active.len(), 3, "{rules:#?}");
    let file = project.read("CLAUDE.md");
    for text in [HAND, LESSON, OFFLINE_LESSON] {
        assert!(file.contains(text), "{file}");
    }
    // The offline lesson was sent as it was learned (once), not taken for a hand edit.
    let learned = |text: &str| {
        pg.list(&RuleFilter::default())
            .unwrap()
            .iter()
            .find(|r| r.rule.rule == text)
            .map(|r| (r.times_learned, r.provenance[0].failure_type.clone()))
    };
    assert_eq!(
        learned(OFFLINE_LESSON),
        Some((1, "integration_error".to_string()))
    );
    let again = sync_json(&project, &server, "hand");
    assert_eq!(again["sent"], 0, "{again}");
    assert_eq!(learned(OFFLINE_LESSON).map(|l| l.0), Some(1));
    assert_eq!(learned(HAND).map(|l| l.0), Some(1));
}

/// Two clones of one repository on a team store, with the real Claude Code: the first learns
/// the lesson the hard way (two attempts and a teacher call); the second, a fresh clone that
/// never failed, gets the rule in its CLAUDE.md as its run starts and passes at once.
#[test]
fn a_second_clone_starts_with_what_the_first_learned_and_claude_code_passes_first_time() {
    use crate::e2e_claude::{RULE_TEXT, agent, teacher};
    use crate::support::fake_anthropic::Request;
    let Some(server) = PgServer::start() else {
        return;
    };
    server.create_db("clones");
    let model =
        FakeAnthropic::start(|r: &Request| if r.is_agent() { agent(r) } else { teacher(r) });
    let run = |project: &Project| {
        let config = project.config(&format!(
            "claude:\n  command: {}\n  permission_mode: acceptEdits\n  max_turns: 8\n  \
             timeout: 120\ntests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n\
             teacher:\n  mode: anthropic\n  timeout: 30\nlearning:\n  max_retries: 2\n",
            crate::support::claude_bin().display()
        ));
        let output = project
            .promptloop()
            .args([
                "run",
                "Fix the calculator so its tests pass",
                "--json",
                "--config",
            ])
            .arg(&config)
            .envs(model.claude_code_env())
            .envs(server.store_env("clones"))
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap();
        let evs = crate::support::events(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}\n{evs:#?}",
            String::from_utf8_lossy(&output.stderr)
        );
        evs
    };
    let first = Project::calculator();
    first.git(&["remote", "add", "origin", "git@github.com:org/calc.git"]);
    let evs = run(&first);
    let finished = crate::support::of_type(&evs, "run.finished")[0].clone();
    assert_eq!(finished["attempts"], 2, "{finished}");
    assert_eq!(crate::support::of_type(&evs, "rule.learned").len(), 1);
    let teacher_calls = |m: &FakeAnthropic| {
        m.messages_requests()
            .into_iter()
            .filter(|r| !r.is_agent())
            .count()
    };
    assert_eq!(teacher_calls(&model), 1);

    let second = Project::calculator();
    second.git(&["remote", "add", "origin", "https://github.com/org/calc"]);
    assert!(!second.read("CLAUDE.md").contains(RULE_TEXT));
    let evs = run(&second);
    let finished = crate::support::of_type(&evs, "run.finished")[0].clone();
    assert_eq!(finished["outcome"], "passed", "{finished}");
    assert_eq!(finished["attempts"], 1, "{finished}");
    assert!(crate::support::of_type(&evs, "rule.learned").is_empty());
    assert_eq!(
        teacher_calls(&model),
        1,
        "the second clone needed no teacher"
    );
    assert!(second.read("CLAUDE.md").contains(RULE_TEXT));
    // The rule reached Claude Code's first request through CLAUDE.md.
    let agent_requests: Vec<Request> = model
        .messages_requests()
        .into_iter()
        .filter(|r| r.is_agent() && r.cwd().as_deref() == Some(second.path.to_str().unwrap()))
        .collect();
    assert!(!agent_requests.is_empty());
    assert!(agent_requests[0].text().contains(RULE_TEXT));
    assert!(!second.path.join(".promptloop/promptloop.db").exists());
}

/// A clone whose section is older than another clone's last render is not taken for a hand
/// edit: a rule the other clone learned is not retired as "removed by hand".
#[test]
fn a_section_older_than_another_clones_render_is_not_a_hand_edit() {
    const THIRD: &str = "Close the CSV reader before moving the imported file.";
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_db("older");
    let a = clone_of("https://github.com/org/older.git");
    let b = clone_of("https://github.com/org/older.git");
    let report = |p: &Project, lesson: &'static str| {
        let out = writer(p, &server, &teacher(lesson, 1), "older", &[], "project")
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    report(&a, LESSON);
    report(&b, OFFLINE_LESSON);
    report(&a, THIRD);
    let pg = PgStore::connect(&url, "github.com/org/older", &server.env()).unwrap();
    let rules = pg.list(&RuleFilter::default()).unwrap();
    let active: Vec<&str> = rules
        .iter()
        .filter(|r| r.status == Status::Active)
        .map(|r| r.rule.rule.as_str())
        .collect();
    assert_eq!(active.len(), 3, "{rules:#?}");
    let file = a.read("CLAUDE.md");
    for text in [LESSON, OFFLINE_LESSON, THIRD] {
        assert!(file.contains(text), "{file}");
    }
}
