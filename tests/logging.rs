//! `logging.file` and `logging.level` (the prototype's `logging.log_file` too): a readable log
//! of what a run did, with nothing secret in it, capped by rotation, excluded from git when it
//! lies in the work tree.

use crate::support::Project;
use crate::support::builders::{Config, Outcome};

/// A secret the redactor knows by its shape; it is in the task text, so it would reach the
/// log through `run.started` if lines were not redacted.
const SECRET: &str = "sk-ant-api03-Zq7vX2mN9pL4kR8tY1wB6cD3fG5hJ0sA2eU7iO9qW4xZ";

fn run_logged(p: &Project, logging: &str, mode: &str) -> Outcome {
    let config = Config::new()
        .fake_agent(p)
        .tests("grep -q '^fixed$' app.txt")
        .offline()
        .rules_file(&p.home.path().join("rules/CLAUDE.md"))
        .retries(1)
        .yaml(logging)
        .write(p);
    p.run(
        &[
            "run",
            &format!("make app.txt say fixed; the key is {SECRET}"),
        ],
        &config,
    )
    .env("FAKE_AGENT_MODE", mode)
    .go()
}

#[test]
fn a_run_is_logged_line_by_line_without_secrets() {
    let p = Project::busy();
    let before = p.state();
    let out = run_logged(
        &p,
        "logging:\n  level: INFO\n  log_file: run.log",
        "nothing",
    );
    out.assert_code(1);
    let log = p.read("run.log");
    for line in [
        "promptloop ",
        " run in ",
        "started in ",
        "agent claude",
        "attempt 1/2 started",
        "attempt 1: agent finished in",
        "attempt 1: tests started: grep -q '^fixed$' app.txt",
        "attempt 1: tests Failed",
        "teacher offline asked about failure",
        "teacher offline answered in ",
        "attempt 1: changes undone, kept at refs/promptloop/runs/",
        "attempt 2/2 started",
        "run finished: Failed after 2 attempt(s)",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(!log.contains(SECRET), "the secret reached the log:\n{log}");
    assert!(log.contains("[REDACTED"), "{log}");
    // INFO leaves out the debug lines (the programs spawned).
    assert!(!log.contains("spawn "), "{log}");
    // In the work tree, but excluded from git: the user's repository is as it was.
    assert_eq!(p.git(&["status", "--porcelain", "--", "run.log"]), "");
    before.assert_same_except(&p.state(), &["run.log"]);
}

#[test]
fn the_level_filters_and_debug_shows_the_programs_run() {
    let p = Project::busy();
    run_logged(
        &p,
        "logging:\n  level: WARNING\n  file: quiet.log",
        "nothing",
    )
    .assert_code(1);
    let quiet = p.read("quiet.log");
    assert!(!quiet.contains("attempt 1/2 started"), "{quiet}");
    let p = Project::busy();
    run_logged(
        &p,
        "logging:\n  level: DEBUG\n  file: logs/debug.log",
        "fix",
    )
    .assert_code(0);
    let debug = p.read("logs/debug.log");
    assert!(debug.contains("spawn "), "{debug}");
    assert!(debug.contains("fake-claude"), "{debug}");
    assert!(debug.contains("run finished: Passed"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
}

#[test]
fn a_full_log_is_rotated_and_a_bad_path_is_a_config_error() {
    let p = Project::busy();
    let old = "old line\n".repeat(600_000);
    std::fs::write(p.home.path().join("big.log"), &old).unwrap();
    let logging = format!(
        "logging:\n  file: {}",
        p.home.path().join("big.log").display()
    );
    run_logged(&p, &logging, "fix").assert_code(0);
    let rotated = std::fs::read_to_string(p.home.path().join("big.log.1")).unwrap();
    assert_eq!(rotated, old);
    let fresh = std::fs::read_to_string(p.home.path().join("big.log")).unwrap();
    assert!(fresh.contains("run finished: Passed"), "{fresh}");
    assert!(fresh.len() < 100_000);

    // A directory where the file should be: exit 2, naming the setting.
    std::fs::create_dir_all(p.home.path().join("a-dir.log")).unwrap();
    let logging = format!(
        "logging:\n  file: {}",
        p.home.path().join("a-dir.log").display()
    );
    let out = run_logged(&p, &logging, "fix");
    out.assert_code(2);
    assert!(out.stderr.contains("logging.file"), "{}", out.stderr);
}
