//! `promptloop gc` (issue 11): old runs' snapshot refs and record folders are pruned by the
//! policy, a run with a pending failure keeps its snapshots, and nothing else changes — the
//! user's branch, index, commits, other refs, stash and files, the other refs under
//! `refs/promptloop/`, the other files in `.promptloop/`, and the store's content.
//!
//! 150 runs: 147 synthesised with real git (`git fast-import` writes their snapshot refs) and
//! their `events.jsonl` folders, which the store imports when the first real run creates it,
//! and 3 real `promptloop run`s, the first of which keeps its failure pending.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use promptloop::store::RuleStore;
use serde_json::Value;

use crate::support::{Project, events, fake_agent, of_type, stored_failures};

/// A repository in the middle of someone's work, with a ref of their own, a stash, staged,
/// unstaged, untracked and ignored files.
fn busy_project() -> Project {
    let p = Project::new();
    p.write(".gitignore", "*.log\n");
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "first"]);
    p.write("stashed.txt", "stash me\n");
    p.git(&["add", "stashed.txt"]);
    p.git(&["stash", "-q"]);
    p.git(&["tag", "v1"]);
    p.git(&["update-ref", "refs/notes/mine", "HEAD"]);
    p.write("staged.txt", "staged content\n");
    p.git(&["add", "staged.txt"]);
    p.write("app.txt", "broken (unstaged edit)\n");
    p.write("notes/untracked.md", "my untracked notes\n");
    p.write("debug.log", "ignored\n");
    p
}

/// The synthesised runs: one every ten minutes, the newest two days ago (so none may still
/// be running), oldest first.
fn synthetic_ids(n: usize) -> Vec<String> {
    let newest = chrono::Local::now() - chrono::Duration::days(2);
    (0..n)
        .map(|i| {
            let start = newest - chrono::Duration::minutes(10 * (n - 1 - i) as i64);
            format!("{}-{:04x}", start.format("%Y%m%d-%H%M%S"), 0xa000 + i)
        })
        .collect()
}

/// Writes each run's `before` and `after` snapshots (each with content of its own) under
/// `refs/promptloop/runs/<id>/attempt-1/` in one `git fast-import`, and its record folder.
fn synthesise(p: &Project, ids: &[String]) {
    let mut stream = String::new();
    for (i, id) in ids.iter().enumerate() {
        for side in ["before", "after"] {
            let content = format!("work tree of run {id}, {side}\n");
            stream.push_str(&format!(
                "blob\nmark :{m}\ndata {len}\n{content}\n\
                 commit refs/promptloop/runs/{id}/attempt-1/{side}\n\
                 committer promptloop <promptloop> {ts} +0000\ndata 9\nsnapshot\n\
                 M 100644 :{m} work.txt\n\n",
                m = 2 * i + usize::from(side == "after") + 1,
                len = content.len(),
                ts = 1_700_000_000 + i,
            ));
        }
        p.write(
            &format!(".promptloop/runs/{id}/events.jsonl"),
            &format!(
                "{}\n{}\n",
                serde_json::json!({"type": "run.started", "run_id": id, "task": "old task"}),
                serde_json::json!({"type": "run.finished", "outcome": "failed", "attempts": 1})
            ),
        );
        p.write(
            &format!(".promptloop/runs/{id}/attempt-1-tests.log"),
            "FAILED test_app\n",
        );
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&p.path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", p.home.path())
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("feed fast-import");
    assert!(child.wait().expect("wait").success());
}

/// One real run whose tests fail; `teacher` is the config's teacher section.
fn real_run(p: &Project, teacher: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let agent = fake_agent(p.home.path());
    let rules = p.home.path().join("rules/CLAUDE.md");
    let config = p.config(&format!(
        "claude:\n  command: {}\n  timeout: 5\n\
         tests:\n  command: \"grep -q '^fixed$' app.txt || (echo 'FAILED app_test::says_fixed - expected fixed'; exit 1)\"\n\
         {teacher}\
         rules:\n  file: {}\n\
         learning:\n  max_retries: 0\n",
        agent.display(),
        rules.display()
    ));
    let mut cmd = p.promptloop();
    cmd.args(["run", "make app.txt say fixed", "--json", "-c"])
        .arg(&config)
        .env("FAKE_AGENT_MODE", "nothing")
        .timeout(Duration::from_secs(60));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&out.stdout)
}

/// Run ids that have refs under refs/promptloop/runs/.
fn runs_with_refs(p: &Project) -> BTreeSet<String> {
    p.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/promptloop/runs/",
    ])
    .lines()
    .filter_map(|r| r.strip_prefix("refs/promptloop/runs/")?.split('/').next())
    .map(str::to_string)
    .collect()
}

/// Run ids that have a folder under .promptloop/runs/.
fn runs_with_folders(p: &Project) -> BTreeSet<String> {
    std::fs::read_dir(p.path.join(".promptloop/runs"))
        .expect("runs dir")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// What the store holds, as the library reads it.
fn store_content(p: &Project) -> (Vec<Value>, usize, usize) {
    let store = promptloop::store::open_project(&p.path).expect("store");
    let runs = store.runs(10_000).expect("runs").len();
    let rules = store.count().expect("rules");
    (stored_failures(&p.path), runs, rules)
}

fn gc(p: &Project, args: &[&str]) -> Value {
    let out = p
        .promptloop()
        .arg("gc")
        .args(args)
        .arg("--json")
        .timeout(Duration::from_secs(120))
        .output()
        .expect("gc");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("gc --json")
}

#[test]
fn gc_keeps_the_last_100_of_150_runs_and_pending_snapshots_and_touches_nothing_else() {
    let p = busy_project();
    let synthetic = synthetic_ids(147);
    synthesise(&p, &synthetic);

    // Three real runs, newest of all: the first keeps its failure pending (nothing listens
    // on loopback port 9), the other two learn with the offline teacher.
    let first = real_run(
        &p,
        "teacher:\n  mode: anthropic\n  timeout: 5\n",
        &[
            ("ANTHROPIC_API_KEY", "test"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(of_type(&first, "failure.pending").len(), 1, "{first:#?}");
    let mut real = Vec::new();
    for evs in [
        first,
        real_run(&p, "teacher:\n  mode: offline\n", &[]),
        real_run(&p, "teacher:\n  mode: offline\n", &[]),
    ] {
        let started = of_type(&evs, "run.started")[0]["run_id"]
            .as_str()
            .expect("run id")
            .to_string();
        real.push(started);
    }
    let runs = promptloop::store::open_project(&p.path)
        .expect("store")
        .runs(10_000)
        .expect("runs");
    assert_eq!(runs.len(), 150, "the store imported the synthesised runs");

    // The oldest run of all has a failure that is still pending.
    let oldest = synthetic[0].clone();
    let mut pending = stored_failures(&p.path)
        .into_iter()
        .find(|f| f["status"] == "pending")
        .expect("a pending failure");
    pending["context"]["id"] = Value::from(format!("{oldest}-f1"));
    pending["context"]["run_id"] = Value::from(oldest.clone());
    let pending: promptloop::store::StoredFailure =
        serde_json::from_value(pending).expect("a stored failure");
    promptloop::store::open_project(&p.path)
        .expect("store")
        .save_failure(&pending)
        .expect("save");

    // What must not change: the user's repository, promptloop's other refs, the other
    // files in .promptloop/, a run id that this record does not know, the store.
    p.git(&["update-ref", "refs/promptloop/capture/keep", "HEAD"]);
    let stranger = "refs/promptloop/runs/19990101-000000-dead/attempt-1/before";
    p.git(&["update-ref", stranger, "HEAD"]);
    p.write(".promptloop/notes.txt", "mine\n");
    p.write(".promptloop/runs/README", "not a run\n");
    let repo_before = p.state();
    let store_before = store_content(&p);
    let private_before = p.git(&["for-each-ref", "refs/promptloop/capture/"]);
    assert_eq!(runs_with_refs(&p).len(), 151);
    assert_eq!(runs_with_folders(&p).len(), 150);

    // The 100 most recent runs, and the oldest for its pending failure.
    let mut all: Vec<String> = synthetic.iter().chain(real.iter()).cloned().collect();
    all.sort();
    let mut expected: BTreeSet<String> = all[all.len() - 100..].iter().cloned().collect();
    expected.insert(oldest.clone());

    let dry = gc(&p, &["--keep-runs", "100", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["pruned"].as_array().expect("pruned").len(),
        49,
        "{dry:#}"
    );
    assert_eq!(runs_with_refs(&p).len(), 151, "a dry run removes nothing");
    assert_eq!(runs_with_folders(&p).len(), 150);

    let report = gc(&p, &["--keep-runs", "100"]);
    let pruned: BTreeSet<String> = report["pruned"]
        .as_array()
        .expect("pruned")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(pruned.len(), 49, "{report:#}");
    assert_eq!(report["refs_removed"], 98);
    assert_eq!(report["folders_removed"], 49);
    assert!(report["folder_bytes"].as_u64().expect("bytes") > 0);
    assert!(report["object_bytes"].as_u64().expect("object bytes") > 0);
    assert_eq!(report["kept_pending"], serde_json::json!([oldest]));
    assert_eq!(
        report["unrecorded"],
        serde_json::json!(["19990101-000000-dead"])
    );

    let mut kept_refs = runs_with_refs(&p);
    assert!(
        kept_refs.remove("19990101-000000-dead"),
        "unrecorded refs stay"
    );
    assert_eq!(
        kept_refs, expected,
        "refs of exactly the last 100 and the pending one"
    );
    assert_eq!(runs_with_folders(&p), expected);
    // The pending run's snapshots are whole, and so are the newest real run's.
    for run in [&oldest, &real[2]] {
        let name = format!("refs/promptloop/runs/{run}/attempt-1/before");
        assert!(!p.git(&["rev-parse", "--verify", &name]).trim().is_empty());
    }

    // Nothing else changed.
    let repo_after = p.state();
    assert_eq!(repo_before, repo_after, "the user's repository changed");
    assert_eq!(
        p.git(&["for-each-ref", "refs/promptloop/capture/"]),
        private_before
    );
    assert_eq!(p.read(".promptloop/notes.txt"), "mine\n");
    assert_eq!(p.read(".promptloop/runs/README"), "not a run\n");
    assert_eq!(store_content(&p), store_before, "the store changed");
    assert_eq!(p.git(&["stash", "list"]).lines().count(), 1);

    // Again: nothing left to prune.
    let again = gc(&p, &["--keep-runs", "100"]);
    assert_eq!(again["pruned"], serde_json::json!([]), "{again:#}");

    // --unrecorded takes the stranger too (it is the oldest run of all).
    let strangers = gc(&p, &["--keep-runs", "100", "--unrecorded"]);
    assert_eq!(strangers["pruned"][0]["id"], "19990101-000000-dead");
    assert!(!runs_with_refs(&p).contains("19990101-000000-dead"));
    assert_eq!(p.state(), repo_after);
}

/// The human report says what went and that `git gc` is not run; a project without a
/// record is left as it is (gc creates nothing).
#[test]
fn gc_prints_what_it_removed_and_creates_nothing_without_a_record() {
    let p = busy_project();
    let out = p.promptloop().arg("gc").output().expect("gc");
    assert_eq!(out.status.code(), Some(0));
    assert!(!p.path.join(".promptloop").exists(), "gc created a record");

    let ids = synthetic_ids(3);
    synthesise(&p, &ids);
    // Days old, so only a count keeps them: one.
    let out = p
        .promptloop()
        .args(["gc", "--keep-runs", "1", "--keep-days", "1"])
        .output()
        .expect("gc");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("removed {}: 2 refs, its folder", ids[0])),
        "{text}"
    );
    assert!(text.contains("removed 2 of 3 runs: 4 refs"), "{text}");
    assert!(text.contains("promptloop does not run `git gc`"), "{text}");
    assert_eq!(runs_with_refs(&p), BTreeSet::from([ids[2].clone()]));

    let help = p
        .promptloop()
        .args(["gc", "--help"])
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("does not run `git gc`"));
}

#[test]
fn a_run_prunes_by_the_retention_settings_when_it_ends_and_auto_false_keeps_everything() {
    let p = busy_project();
    let synthetic = synthetic_ids(10);
    synthesise(&p, &synthetic);
    let repo_before = p.state();
    let evs = real_run(
        &p,
        "teacher:\n  mode: offline\nretention:\n  keep_runs: 4\n  keep_days: 0\n",
        &[],
    );
    let this_run = of_type(&evs, "run.started")[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    let pruned = of_type(&evs, "runs.pruned");
    assert_eq!(pruned.len(), 1, "{evs:#?}");
    assert_eq!(pruned[0]["runs"], 7);
    let mut expected: BTreeSet<String> = synthetic[7..].iter().cloned().collect();
    expected.insert(this_run);
    assert_eq!(runs_with_refs(&p), expected);
    assert_eq!(runs_with_folders(&p), expected);
    assert_eq!(
        store_content(&p).1,
        11,
        "the store keeps every run's history"
    );
    repo_before.assert_same_except(&p.state(), &[]);

    let q = busy_project();
    let synthetic = synthetic_ids(10);
    synthesise(&q, &synthetic);
    let evs = real_run(
        &q,
        "teacher:\n  mode: offline\nretention:\n  auto: false\n  keep_runs: 4\n  keep_days: 0\n",
        &[],
    );
    assert!(of_type(&evs, "runs.pruned").is_empty(), "{evs:#?}");
    assert_eq!(runs_with_refs(&q).len(), 11);
}
