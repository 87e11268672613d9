//! Failure sources: `promptloop capture` on real runners (Jest, Vitest, go test, cargo test,
//! nextest, pytest, JUnit files from pytest), fingerprints that recur, the semantic review
//! against a loopback model server, and the Claude Code hooks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, events, of_type, repo_root};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/frameworks").join(name)
}

/// `promptloop capture --json -- COMMAND` in `dir`: the capture object.
fn capture_json(project: &Project, dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = project
        .promptloop()
        .current_dir(dir)
        .env(
            "RUSTUP_HOME",
            std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home_dir().join(".rustup").into()),
        )
        .env(
            "CARGO_HOME",
            std::env::var_os("CARGO_HOME").unwrap_or_else(|| home_dir().join(".cargo").into()),
        )
        .arg("capture")
        .arg("--json")
        .args(args)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .expect("run promptloop capture");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let value: Value = serde_json::from_str(first).expect("capture JSON");
    (out.status.code(), value)
}

fn home_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

fn ids(capture: &Value) -> Vec<String> {
    capture["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn failure<'a>(capture: &'a Value, id: &str) -> &'a Value {
    capture["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no failure {id} in {capture:#}"))
}

fn js_fixture() -> PathBuf {
    let dir = fixture("js");
    assert!(
        dir.join("node_modules/.bin/jest").exists(),
        "the JS fixture is not installed: run `npm ci --prefix tests/fixtures/frameworks/js` \
         (scripts/test.sh does)"
    );
    dir
}

#[test]
fn capture_reads_jest_from_its_json_report_and_from_its_output() {
    let project = Project::new();
    let dir = js_fixture();
    // `npm test` runs a plain `jest`: the JSON report flags are appended.
    let (code, json) = capture_json(&project, &dir, &["--", "npm test"]);
    // Behind a pipe no flag can be added: the human output is read instead.
    let (_, human) = capture_json(&project, &dir, &["--", "npx jest 2>&1 | cat"]);
    assert_eq!(code, Some(1));
    for capture in [&json, &human] {
        assert_eq!(capture["framework"], "jest", "{capture:#}");
        assert_eq!(capture["outcome"], "failed");
        assert_eq!(capture["counts"]["failed"], 2);
        assert_eq!(capture["counts"]["passed"], 2);
        assert_eq!(
            ids(capture),
            [
                "src/calc.test.js › calc › adds",
                "src/calc.test.js › calc › nested › throws"
            ]
        );
        let adds = failure(capture, "src/calc.test.js › calc › adds");
        assert_eq!(
            adds["message"],
            "expect(received).toBe(expected) // Object.is equality"
        );
        assert_eq!(adds["file"], "src/calc.test.js");
        assert_eq!(adds["line"], 3);
        let evidence = adds["evidence"].as_str().unwrap();
        assert!(evidence.contains("Received: -1"), "{evidence}");
        assert!(!evidence.contains("node_modules"), "{evidence}");
        let throws = failure(capture, "src/calc.test.js › calc › nested › throws");
        assert_eq!(throws["message"], "TypeError: division by zero");
        assert!(
            throws["evidence"]
                .as_str()
                .unwrap()
                .contains("src/calc.js:2:"),
            "{throws:#}"
        );
    }
    // Both ways of reading give the same fingerprints.
    let prints = |c: &Value| -> Vec<Value> {
        c["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["fingerprint"].clone())
            .collect()
    };
    assert_eq!(prints(&json), prints(&human));
}

#[test]
fn capture_reads_vitest_from_its_json_report_and_from_its_output() {
    let project = Project::new();
    let dir = js_fixture();
    let (code, json) = capture_json(&project, &dir, &["--", "npm run unit"]);
    let (_, human) = capture_json(
        &project,
        &dir,
        &["--framework", "vitest", "--", "npx vitest run | cat"],
    );
    assert_eq!(code, Some(1));
    for capture in [&json, &human] {
        assert_eq!(capture["framework"], "vitest", "{capture:#}");
        assert_eq!(capture["counts"]["failed"], 2, "{capture:#}");
        assert_eq!(capture["counts"]["total"], 4);
        assert_eq!(
            ids(capture),
            [
                "src/calc.test.mjs > calc > adds",
                "src/calc.test.mjs > calc > nested > throws"
            ]
        );
        let adds = failure(capture, "src/calc.test.mjs > calc > adds");
        assert_eq!(
            adds["message"],
            "AssertionError: expected -1 to be 3 // Object.is equality"
        );
        assert_eq!(adds["line"], 4);
    }
}

#[test]
fn capture_reads_go_test_through_goflags_json() {
    let project = Project::new();
    assert!(
        std::process::Command::new("go")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "go is missing: install golang-go (scripts/test.sh does)"
    );
    let dir = project.path.join("go");
    copy_dir(&fixture("go"), &dir);
    let (code, capture) = capture_json(&project, &dir, &["--", "go", "test", "./..."]);
    assert_eq!(code, Some(1), "{capture:#}");
    assert_eq!(capture["framework"], "go");
    // Leaves only: TestSub fails because TestSub/neg does.
    assert_eq!(
        ids(&capture),
        [
            "example.com/calc::TestAdd",
            "example.com/calc::TestSub/neg",
            "example.com/calc::TestPanic"
        ]
    );
    let add = failure(&capture, "example.com/calc::TestAdd");
    assert_eq!(add["message"], "Add(1, 2) = -1, want 3");
    assert_eq!(add["file"], "calc_test.go");
    assert_eq!(add["line"], 11);
    assert_eq!(add["captured_output"], "adding now");
    let panic = failure(&capture, "example.com/calc::TestPanic");
    assert_eq!(panic["message"], "panic: assignment to entry in nil map");
    assert_eq!(panic["file"], "calc_test.go");
    assert_eq!(panic["line"], 24);
}

#[test]
fn capture_reads_cargo_test_and_nextest_output() {
    let project = Project::new();
    let dir = project.path.join("crate");
    copy_dir(&fixture("cargo"), &dir);
    let target = project.home.path().join("target");
    let target = target.to_str().unwrap();
    let (code, cargo) = capture_json(
        &project,
        &dir,
        &[
            "--",
            &format!("CARGO_TARGET_DIR={target} cargo test --offline --no-fail-fast"),
        ],
    );
    assert_eq!(code, Some(1), "{cargo:#}");
    assert_eq!(cargo["framework"], "cargo");
    assert_eq!(
        ids(&cargo),
        ["tests::adds", "tests::indexes", "integ_adds"],
        "{cargo:#}"
    );
    assert_eq!(cargo["counts"]["failed"], 3);
    assert_eq!(cargo["counts"]["passed"], 1);
    let adds = failure(&cargo, "tests::adds");
    assert_eq!(
        adds["message"],
        "assertion `left == right` failed\nleft: -1\nright: 3"
    );
    assert_eq!(adds["file"], "src/lib.rs");
    assert_eq!(adds["captured_output"], "adding now");
    let integ = failure(&cargo, "integ_adds");
    assert_eq!(integ["message"], "add was wrong: 0");
    assert_eq!(integ["file"], "tests/integ.rs");

    let (code, nextest) = capture_json(
        &project,
        &dir,
        &[
            "--",
            &format!("CARGO_TARGET_DIR={target} cargo nextest run --offline --no-fail-fast"),
        ],
    );
    assert_eq!(code, Some(1), "{nextest:#}");
    assert_eq!(nextest["framework"], "nextest");
    let mut found = ids(&nextest);
    found.sort();
    assert_eq!(
        found,
        [
            "calc tests::adds",
            "calc tests::indexes",
            "calc::integ integ_adds"
        ]
    );
    assert_eq!(nextest["counts"]["failed"], 3);
    assert_eq!(nextest["counts"]["total"], 4);
    let adds = failure(&nextest, "calc tests::adds");
    assert_eq!(adds["message"], cargo["failures"][0]["message"]);
    assert_eq!(adds["captured_output"], "adding now");

    // A change that does not compile is one failure, with the compiler's location.
    project.write(
        "crate/src/lib.rs",
        "pub fn add(a: i32, b: i32) -> i32 { \"no\" }\n",
    );
    let (code, broken) = capture_json(
        &project,
        &dir,
        &[
            "--",
            &format!("CARGO_TARGET_DIR={target} cargo test --offline"),
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(ids(&broken), ["build"]);
    let build = failure(&broken, "build");
    assert_eq!(build["message"], "error[E0308]: mismatched types");
    assert_eq!(build["file"], "src/lib.rs");
}

#[test]
fn capture_reads_pytest_and_the_junit_file_a_ci_job_wrote() {
    let project = Project::calculator();
    let (code, live) = capture_json(
        &project,
        &project.path,
        &["--", "python3 -m pytest tests -q"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(live["framework"], "pytest");
    let expected = [
        "tests/test_calculator.py::test_safe_divide_by_zero_returns_none",
        "tests/test_calculator.py::test_average_keeps_the_fraction",
    ];
    assert_eq!(ids(&live), expected);
    // A CI job's report, written by pytest itself.
    let report = project.home.path().join("ci-report.xml");
    let status = std::process::Command::new("python3")
        .args(["-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"])
        .arg(format!("--junitxml={}", report.display()))
        .current_dir(&project.path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    assert_eq!(status.status.code(), Some(1));
    let (code, ci) = capture_json(
        &project,
        &project.path,
        &["--junit", report.to_str().unwrap()],
    );
    assert_eq!(code, Some(1));
    assert_eq!(ci["framework"], "junit");
    assert_eq!(ids(&ci), expected);
    assert_eq!(ci["counts"]["failed"], 2);
    let safe = failure(&ci, expected[0]);
    assert!(
        safe["message"]
            .as_str()
            .unwrap()
            .contains("assert 0 is None"),
        "{safe:#}"
    );
    // Same failure, same fingerprint, whether run live or read from CI.
    assert_eq!(
        failure(&live, expected[0])["fingerprint"],
        safe["fingerprint"]
    );
    // No report: a usage error.
    let out = project
        .promptloop()
        .args(["capture", "--junit", "missing/*.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn learned_failure_that_comes_back_is_counted_on_its_rule() {
    let project = Project::calculator();
    let capture = |extra: &[&str]| {
        let out = project
            .promptloop()
            .args(["capture", "--learn", "--teacher", "offline", "--json"])
            .args(extra)
            .args(["--", "python3 -m pytest tests -q"])
            .output()
            .expect("capture");
        assert_eq!(out.status.code(), Some(1));
        events(&out.stdout)
    };
    let first = capture(&[]);
    assert_eq!(of_type(&first, "rule.learned").len(), 1, "{first:#?}");
    assert!(of_type(&first, "failure.recurred").is_empty());
    // Another value, another line: the same failure for a fingerprint.
    let code = project.read("calculator.py").replace(
        "        return 0  # bug: 0 looks like a valid result",
        "\n\n        return -1  # still wrong",
    );
    project.write("calculator.py", &code);
    let second = capture(&[]);
    let recurred = of_type(&second, "failure.recurred");
    assert_eq!(recurred.len(), 1, "{second:#?}");
    assert_eq!(recurred[0]["count"], 1);
    let original = recurred[0]["original_failure_id"].as_str().unwrap();
    assert!(recurred[0]["rule"]["rule"].is_string());
    let third = capture(&[]);
    assert_eq!(of_type(&third, "failure.recurred")[0]["count"], 2);
    // The count is kept on the learned failure's record.
    let stored = crate::support::stored_failure(&project.path, original);
    assert_eq!(stored["recurrences"], 2);
    assert_eq!(stored["fingerprints"].as_array().unwrap().len(), 2);
}

/// A stand-in for `claude -p`: `$AGENT_MODE` `delete` removes the failing test file (the
/// tests then pass), `fix` fixes the bug.
fn scripted_agent(dir: &Path) -> PathBuf {
    let path = dir.join("fake-claude");
    let script = r#"#!/bin/sh
case "$AGENT_MODE" in
  delete) rm tests/test_app.py; msg="All tests pass now." ;;
  fix) sed -i 's/a - b/a + b/' app.py; msg="Fixed add." ;;
esac
printf '{"type":"result","subtype":"success","is_error":false,"result":"%s","num_turns":2,"total_cost_usd":0.01,"session_id":"s1","usage":{"input_tokens":100,"output_tokens":20},"permission_denials":[]}\n' "$msg"
"#;
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const REVIEW_RULE: &str = "Never delete or weaken a failing test to make the suite pass";

/// The model: the reviewer flags a deleted test file (it reads the diff), the teacher writes
/// a rule.
fn review_model(request: &Request) -> Reply {
    let text = request.text();
    if text.contains("You review the finished work") {
        if text.contains("deleted file mode") && text.contains("tests/test_app.py") {
            return Reply::text(
                json!({"findings": [
                    {"kind": "weakened_tests", "summary": "The failing test file tests/test_app.py was deleted instead of fixing add.",
                     "evidence": "deleted file mode 100644 tests/test_app.py", "file": "tests/test_app.py", "confidence": 0.95},
                    {"kind": "debug_leftovers", "summary": "Maybe a stray file.", "confidence": 0.3}
                ]})
                .to_string(),
            );
        }
        return Reply::text("{\"findings\": []}");
    }
    Reply::text(format!(
        "Analysis: the agent removed the failing test instead of fixing the code.\n\n\
         ### Test integrity\n- **Rule**: {REVIEW_RULE}.\n- **When**: Tests fail after a change.\n\
         - **Why**: Deleting tests/test_app.py hid the bug in add instead of fixing it.\n"
    ))
}

fn review_project() -> Project {
    let project = Project::new();
    project.write("app.py", "def add(a, b):\n    return a - b\n");
    project.write(
        "tests/test_app.py",
        "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    );
    project.write(
        "tests/test_other.py",
        "def test_truth():\n    assert True\n",
    );
    project.write("conftest.py", "");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "app with a bug"]);
    project
}

fn run_reviewed(
    project: &Project,
    server: &FakeAnthropic,
    mode: &str,
) -> (Option<i32>, Vec<Value>) {
    let agent = scripted_agent(project.home.path());
    let config = project.config(&format!(
        "claude:\n  command: {}\n\
         tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n\
         teacher:\n  mode: anthropic\n  model: claude-sonnet-4-5\n  timeout: 30\n\
         failure_sources:\n  - name: pytest\n    enabled: true\n  - name: semantic\n    enabled: true\n\
         semantic:\n  min_confidence: 0.7\n",
        agent.display()
    ));
    let out = project
        .promptloop()
        .args(["run", "Fix add so the tests pass", "--json", "--config"])
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("AGENT_MODE", mode)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("run promptloop");
    (out.status.code(), events(&out.stdout))
}

#[test]
fn semantic_review_turns_a_deleted_test_into_a_rule() {
    let project = review_project();
    let server = FakeAnthropic::start(review_model);
    let (code, evs) = run_reviewed(&project, &server, "delete");
    assert_eq!(code, Some(0), "{evs:#?}");
    let review = of_type(&evs, "review.finished");
    assert_eq!(review.len(), 1, "{evs:#?}");
    assert_eq!(review[0]["findings"].as_array().unwrap().len(), 2);
    assert_eq!(review[0]["accepted"], 1);
    assert_eq!(review[0]["findings"][0]["kind"], "weakened_tests");
    // Its cost is recorded: the fake reports 1000 input and 50 output tokens.
    assert_eq!(review[0]["input_tokens"], 1000);
    assert_eq!(review[0]["output_tokens"], 50);
    let cost = review[0]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.00375).abs() < 1e-9, "{cost}");
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1, "{evs:#?}");
    let claude_md = project.read("CLAUDE.md");
    assert!(claude_md.contains(REVIEW_RULE), "{claude_md}");
    assert!(claude_md.contains("test tampering"), "{claude_md}");
    // The failure is kept with its type and source.
    let failure_id = learned[0]["failure_id"].as_str().unwrap();
    let stored = crate::support::stored_failure(&project.path, failure_id);
    assert_eq!(stored["context"]["failure_type"], "test_tampering");
    assert_eq!(stored["context"]["source"], "semantic");
    // The teacher was told what the reviewer found, with the reviewer's prompt for it.
    let lesson = server
        .messages_requests()
        .into_iter()
        .map(|r| r.text())
        .find(|t| t.contains("a reviewer found a problem"))
        .expect("lesson request");
    assert!(lesson.contains("tests/test_app.py was deleted"), "{lesson}");
}

#[test]
fn semantic_review_leaves_a_clean_attempt_alone() {
    let project = review_project();
    let server = FakeAnthropic::start(review_model);
    let (code, evs) = run_reviewed(&project, &server, "fix");
    assert_eq!(code, Some(0), "{evs:#?}");
    let review = of_type(&evs, "review.finished");
    assert_eq!(review.len(), 1, "{evs:#?}");
    assert!(review[0]["findings"].as_array().unwrap().is_empty());
    assert!(of_type(&evs, "rule.learned").is_empty());
    assert!(!project.path.join("CLAUDE.md").exists());
    // One request only: the review.
    assert_eq!(server.messages_requests().len(), 1);
}

fn hook(project: &Project, input: &Value, extra: &[&str]) -> (Option<i32>, String) {
    let config = project.config(
        "tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\nteacher:\n  mode: offline\n",
    );
    let out = project
        .promptloop()
        .args(["hook", "claude", "--config"])
        .arg(&config)
        .args(extra)
        .write_stdin(input.to_string())
        .output()
        .expect("run the hook");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn stored_failures(project: &Project) -> Vec<Value> {
    crate::support::stored_failures(&project.path)
}

#[test]
fn stop_hook_blocks_once_then_learns() {
    let project = Project::calculator();
    let stop = json!({
        "hook_event_name": "Stop", "session_id": "sess-1", "cwd": project.path,
        "transcript_path": "/nonexistent", "stop_hook_active": false
    });
    // A failed tool call earlier in the session is kept as context.
    let tool = json!({
        "hook_event_name": "PostToolUseFailure", "session_id": "sess-1", "cwd": project.path,
        "tool_name": "Bash", "tool_input": {"command": "pytest"}, "error": "pytest: command not found"
    });
    assert_eq!(hook(&project, &tool, &[]).0, Some(0));
    let (code, stdout) = hook(&project, &stop, &["--on-stop", "block"]);
    assert_eq!(code, Some(0));
    let decision: Value = serde_json::from_str(stdout.trim()).expect("decision JSON");
    assert_eq!(decision["decision"], "block");
    let reason = decision["reason"].as_str().unwrap();
    assert!(
        reason.contains("tests/test_calculator.py::test_safe_divide_by_zero_returns_none"),
        "{reason}"
    );
    let failures = stored_failures(&project);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["status"], "pending");
    assert_eq!(failures[0]["context"]["source"], "claude-hook:pytest");
    assert!(
        failures[0]["context"]["context"]
            .as_str()
            .unwrap()
            .contains("pytest: command not found")
    );
    // The agent was sent back once; if it stops again with failing tests, learn instead.
    let mut again = stop.clone();
    again["stop_hook_active"] = json!(true);
    let (code, stdout) = hook(&project, &again, &["--on-stop", "block"]);
    assert_eq!(code, Some(0));
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(answer.get("decision").is_none(), "{answer}");
    assert!(
        answer["systemMessage"]
            .as_str()
            .unwrap()
            .contains("rule learned"),
        "{answer}"
    );
    assert!(
        project
            .read("CLAUDE.md")
            .contains("test_safe_divide_by_zero_returns_none")
    );
    // SessionEnd cleans the session's tool log.
    let end = json!({"hook_event_name": "SessionEnd", "session_id": "sess-1", "cwd": project.path});
    assert_eq!(hook(&project, &end, &[]).0, Some(0));
    assert!(
        !project
            .path
            .join(".promptloop/sessions/sess-1.jsonl")
            .exists()
    );
    // Passing tests: nothing printed, nothing kept.
    let clean = Project::new();
    clean.write("tests/test_ok.py", "def test_ok():\n    assert True\n");
    let stop = json!({"hook_event_name": "Stop", "session_id": "s", "cwd": clean.path});
    let (code, stdout) = hook(&clean, &stop, &[]);
    assert_eq!((code, stdout.trim()), (Some(0), ""));
    assert!(stored_failures(&clean).is_empty());
}

#[test]
fn hook_install_keeps_the_users_settings_and_is_idempotent() {
    let project = Project::new();
    let user = "{\n  \"permissions\": {\"allow\": [\"Bash(npm test)\"]},\n  \"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"notify-send done\"}]}]}\n}\n";
    project.write(".claude/settings.json", user);
    let install = || {
        project
            .promptloop()
            .args(["hook", "install", "-d"])
            .arg(&project.path)
            .output()
            .unwrap()
    };
    let out = install();
    assert_eq!(out.status.code(), Some(0));
    let after: Value = serde_json::from_str(&project.read(".claude/settings.json")).unwrap();
    assert_eq!(after["permissions"]["allow"][0], "Bash(npm test)");
    let stop = after["hooks"]["Stop"].as_array().unwrap();
    assert_eq!(stop[0]["hooks"][0]["command"], "notify-send done");
    assert!(
        stop[1]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("promptloop hook claude")
    );
    let text = project.read(".claude/settings.json");
    let out = install();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already"));
    assert_eq!(project.read(".claude/settings.json"), text);
    // A file that is not JSON is left alone.
    project.write(".claude/settings.json", "{ not json");
    assert_eq!(install().status.code(), Some(2));
    assert_eq!(project.read(".claude/settings.json"), "{ not json");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The real Claude Code CLI (npm) against a scripted model on loopback: the session reads a
/// file and stops without fixing anything; the Stop hook `promptloop hook install` added runs
/// the tests, finds them failing and captures and learns from the failure.
#[test]
fn claude_code_stop_hook_captures_a_failing_test() {
    let project = Project::calculator();
    let config = project.config(
        "tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\nteacher:\n  mode: offline\nhooks:\n  stop: learn\n",
    );
    let out = project
        .promptloop()
        .args(["hook", "install", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let file = project.path.join("calculator.py");
    let server = FakeAnthropic::start(move |r: &Request| {
        if !r.is_agent() {
            return Reply::text("ok");
        }
        match r.tool_results() {
            0 => Reply::tool("Read", json!({"file_path": file})),
            _ => Reply::text("I read the calculator; it looks fine to me."),
        }
    });
    let out = std::process::Command::new(crate::support::claude_bin())
        .args([
            "-p",
            "Fix the calculator so its tests pass",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--max-turns",
            "5",
        ])
        .current_dir(&project.path)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", project.home.path())
        .env("TMPDIR", project.home.path())
        .envs(server.claude_code_env())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTEST_ADDOPTS", "-p no:cacheprovider")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let failures = stored_failures(&project);
    assert_eq!(
        failures.len(),
        1,
        "no failure captured; claude said: {stdout}\n{stderr}"
    );
    let f = &failures[0];
    assert_eq!(f["context"]["source"], "claude-hook:pytest");
    assert_eq!(f["context"]["task"], "Fix the calculator so its tests pass");
    let ids: Vec<&str> = f["context"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "tests/test_calculator.py::test_safe_divide_by_zero_returns_none",
            "tests/test_calculator.py::test_average_keeps_the_fraction"
        ]
    );
    assert_eq!(f["status"], "learned");
    assert!(
        project
            .read("CLAUDE.md")
            .contains("test_safe_divide_by_zero_returns_none")
    );
}
