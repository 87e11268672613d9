//! `cargo bench --bench overhead`: promptloop's own cost per attempt, and what reaches the
//! teacher compared with the prototype's cut.
//!
//! 1. Overhead per attempt: the release binary runs the loop with an agent and a test
//!    command that cost almost nothing, on a small project and on one with thousands of
//!    files. Overhead = wall time − agent time − test time, divided by the attempts
//!    (snapshots, diffs, restores, the record, the rules file, process handling).
//! 2. Payload: one large failure (40 failing tests, a long log whose summary is at the end,
//!    a diff over 30 files) rendered by promptloop within its 16k budget, against the
//!    prototype's first 10,000 characters of diff + first 5,000 of log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use promptloop::failure::FailureContext;
use promptloop::testing::TestFailure;

const ATTEMPTS: u32 = 5;

fn main() {
    println!(
        "promptloop overhead benchmark ({} attempts per run)\n",
        ATTEMPTS
    );
    for (label, files) in [
        ("small project (10 files)", 10),
        ("large project (5,000 files, 20 MB)", 5000),
    ] {
        overhead(label, files);
    }
    println!();
    payload();
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@example.invalid"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn overhead(label: &str, files: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let sub = root.join(format!("src/m{}", i % 50));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let body: String = (0..80)
            .map(|l| format!("line {l} of file {i} with some text\n"))
            .collect();
        std::fs::write(sub.join(format!("f{i}.py")), body).expect("write");
    }
    std::fs::write(root.join("app.txt"), "broken\n").expect("write");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "init"]);
    // An uncommitted change and an untracked file, as in real use.
    std::fs::write(root.join("src/m0/f0.py"), "edited by the user\n").expect("write");
    std::fs::write(root.join("notes.txt"), "untracked\n").expect("write");

    let home = tempfile::tempdir().expect("home");
    let agent = home.path().join("agent");
    std::fs::write(
        &agent,
        "#!/bin/sh\nprintf 'attempt\\n' >> app.txt\n\
         echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done\",\"num_turns\":1}'\n",
    )
    .expect("agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = home.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "claude:\n  command: {}\ntests:\n  command: \"echo 'FAILED t.py::test_app - assert broken'; exit 1\"\n  framework: auto\n\
             teacher:\n  mode: offline\nlearning:\n  max_retries: {}\n",
            agent.display(),
            ATTEMPTS - 1
        ),
    )
    .expect("config");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_promptloop"))
        .args(["run", "make app.txt say fixed", "--json", "-c"])
        .arg(&config)
        .current_dir(root)
        .env("HOME", home.path())
        .output()
        .expect("run promptloop");
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let mut agent_ms = 0.0;
    let mut tests_ms = 0.0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("event");
        match v["type"].as_str() {
            Some("agent.finished") => {
                agent_ms += v["outcome"]["duration_ms"].as_f64().unwrap_or(0.0)
            }
            Some("tests.finished") => tests_ms += v["tests"]["duration_ms"].as_f64().unwrap_or(0.0),
            _ => {}
        }
    }
    let overhead = wall - agent_ms - tests_ms;
    println!(
        "{label}: wall {wall:.0} ms, agent {agent_ms:.0} ms, tests {tests_ms:.0} ms → promptloop overhead {:.0} ms per attempt",
        overhead / f64::from(ATTEMPTS)
    );
}

fn payload() {
    let tests: Vec<TestFailure> = (0..40)
        .map(|i| TestFailure {
            id: format!("tests/test_orders.py::test_case_{i:02}"),
            kind: "failure".into(),
            file: Some("tests/test_orders.py".into()),
            line: Some(10 + i),
            message: format!("assert {i} == {}", i + 1),
            evidence: format!(
                "tests/test_orders.py:{}: in test_case_{i:02}\n    assert total(order_{i}) == {}\nE   assert {i} == {}\nE    +  where {i} = total(order_{i})",
                10 + i,
                i + 1,
                i + 1
            ),
            captured_output: None,
        })
        .collect();
    let mut log = String::from(
        "============================= test session starts ==============================\n",
    );
    for i in 0..4000 {
        log.push_str(&format!(
            "tests/test_orders.py::test_other_{i:04} PASSED [{:3}%]\n",
            i / 40
        ));
    }
    log.push_str(
        "=========================== short test summary info ============================\n",
    );
    for t in &tests {
        log.push_str(&format!("FAILED {} - {}\n", t.id, t.message));
    }
    log.push_str(
        "======================== 40 failed, 4000 passed in 12.34s ========================\n",
    );
    let mut diff = String::new();
    for f in 0..30 {
        diff.push_str(&format!(
            "diff --git a/src/orders/mod{f}.py b/src/orders/mod{f}.py\n--- a/src/orders/mod{f}.py\n+++ b/src/orders/mod{f}.py\n@@ -1,400 +1,400 @@\n"
        ));
        for l in 0..400 {
            diff.push_str(&format!("-    value_{l} = compute_{l}(order)\n+    value_{l} = compute_{l}(order, rounding=True)\n"));
        }
    }
    let ctx = FailureContext {
        id: "bench".into(),
        failure_type: "test_failure".into(),
        source: "pytest".into(),
        task: "Round order totals to cents".into(),
        project_dir: "/project".into(),
        run_id: None,
        attempt: Some(1),
        captured_at: String::new(),
        test_command: Some("pytest tests/ -v --tb=short".into()),
        tests: tests.clone(),
        failing_ids: vec![],
        test_summary: log[log.rfind("=====").unwrap_or(0).saturating_sub(4000)..].to_string(),
        diff: diff.clone(),
        agent_status: Some("finished".into()),
        agent_message: Some("Rounded every value.".into()),
        description: None,
        context: None,
    };
    let started = Instant::now();
    let ours = ctx.render(16_000, &[]);
    let render_us = started.elapsed().as_micros();
    let prototype = format!(
        "{}\n{}",
        &diff[..10_000.min(diff.len())],
        &log[..5_000.min(log.len())]
    );
    let count = |text: &str| {
        let ids = tests.iter().filter(|t| text.contains(&t.id)).count();
        let asserts = tests
            .iter()
            .filter(|t| {
                text.contains(&format!(
                    "E   assert {}",
                    t.message.trim_start_matches("assert ")
                ))
            })
            .count();
        let files = (0..30)
            .filter(|f| text.contains(&format!("src/orders/mod{f}.py")))
            .count();
        let summary = text.contains("40 failed, 4000 passed");
        (ids, asserts, files, summary)
    };
    println!(
        "teacher payload for one large failure (diff {} KB, log {} KB):",
        diff.len() / 1024,
        log.len() / 1024
    );
    println!(
        "{:<28} {:>8} {:>14} {:>16} {:>12} {:>9}",
        "", "chars", "failing ids", "assertion lines", "diff files", "summary"
    );
    for (name, text) in [
        ("prototype (10k diff + 5k log)", &prototype),
        ("promptloop (16k budget)", &ours),
    ] {
        let (ids, asserts, files, summary) = count(text);
        println!(
            "{name:<28} {:>8} {:>11}/40 {:>13}/40 {:>9}/30 {:>12}",
            text.len(),
            ids,
            asserts,
            files,
            if summary { "yes" } else { "no" }
        );
    }
    println!("render time: {render_us} µs");
}
