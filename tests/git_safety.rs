//! The user's work survives every outcome of a run: HEAD, branch, index, other refs, the
//! stash and every file stay byte-identical, except the agent's successful change (and the
//! rule written into the rules file, which these tests keep outside the repository).
//!
//! Regression for the prototype's `git reset --hard HEAD~1`, which deleted the user's last
//! commit when the agent changed nothing.

use std::time::{Duration, Instant};

use crate::support::builders::{Config, Outcome};
use crate::support::{Project, events, fake_agent, of_type};

/// One run of the stand-in agent in `mode` on "make app.txt say fixed", the offline teacher,
/// the rules file outside the repository, one retry; `learning` adds to `learning:`.
fn run(p: &Project, mode: &str, learning: &str) -> Outcome {
    let config = Config::new()
        .fake_agent(p)
        .tests("grep -q '^fixed$' app.txt")
        .offline()
        .rules_file(&p.home.path().join("rules/CLAUDE.md"))
        .yaml(&format!("learning:\n  max_retries: 1\n{learning}"))
        .write(p);
    p.run(&["run", "make app.txt say fixed"], &config)
        .env("FAKE_AGENT_MODE", mode)
        .timeout(Duration::from_secs(60))
        .go()
}

#[test]
fn agent_that_changes_nothing_loses_nothing() {
    let p = Project::busy();
    let before = p.state();
    let out = run(&p, "nothing", "");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(of_type(&out.events, "run.finished")[0]["attempts"], 2);
    before.assert_same(&p.state());
    let log = p.git(&["log", "--format=%s", "main"]);
    assert_eq!(log, "recent work\nfirst\n", "the user's commits changed");
}

#[test]
fn agent_that_crashes_mid_edit_is_undone() {
    let p = Project::busy();
    let before = p.state();
    let out = run(&p, "crash", "");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let agent = of_type(&out.events, "agent.finished");
    assert_eq!(agent[0]["outcome"]["status"], "failed");
    assert!(
        agent[0]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{:?}",
        agent[0]
    );
    before.assert_same(&p.state());
}

#[test]
fn agent_that_hangs_is_killed_at_its_timeout_and_undone() {
    let p = Project::busy();
    let before = p.state();
    let started = Instant::now();
    let out = run(&p, "hang", "");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let agent = of_type(&out.events, "agent.finished");
    assert_eq!(agent[0]["outcome"]["status"], "timed_out");
    before.assert_same(&p.state());
    // The agent's partial edit is kept under a ref for inspection.
    let reverted = of_type(&out.events, "attempt.reverted");
    let kept = reverted[0]["kept_ref"].as_str().unwrap();
    let kept_app = p.git(&["show", &format!("{kept}:app.txt")]);
    assert_eq!(kept_app, "broken\npartial");
}

#[test]
fn successful_agent_change_is_kept_and_nothing_else_changes() {
    let p = Project::busy();
    let expected = p.state();
    let out = run(&p, "fix", "");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(of_type(&out.events, "run.finished")[0]["attempts"], 1);
    let after = p.state();
    expected.assert_same_except(&after, &["app.txt", "new/created.txt"]);
    let mode = expected.files["app.txt"].0;
    assert_eq!(after.files["app.txt"], (mode, b"fixed\n".to_vec()));
    assert_eq!(after.files["new/created.txt"], (mode, b"new\n".to_vec()));
}

#[test]
fn no_auto_retry_leaves_the_attempt_for_review_and_keeps_user_work() {
    let p = Project::busy();
    let before = p.state();
    let out = run(&p, "crash", "  auto_retry: false\n");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(of_type(&out.events, "run.finished")[0]["attempts"], 1);
    let after = p.state();
    // The attempt's change stays in the work tree; everything else is as it was.
    assert_eq!(after.files["app.txt"].1, b"broken\nhalf-way");
    before.assert_same_except(&after, &["app.txt"]);
    assert_eq!(after.files["app.txt"].0, before.files["app.txt"].0);
}

#[test]
fn ctrl_c_stops_the_agent_and_restores_the_work_tree() {
    let p = Project::busy();
    let before = p.state();
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\n  timeout: 120\ntests:\n  command: 'true'\nteacher:\n  mode: offline\n",
        agent.display()
    ));
    let bin = assert_cmd::cargo::cargo_bin("promptloop");
    let mut child = std::process::Command::new(bin)
        .args(["run", "make app.txt say fixed", "--json", "-c"])
        .arg(&config)
        .current_dir(&p.path)
        .env("FAKE_AGENT_MODE", "hang")
        .env("HOME", p.home.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the agent has made its partial edit.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.read("app.txt").contains("partial") {
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut stdout).ok();
    let evs = events(stdout.as_bytes());
    assert_eq!(of_type(&evs, "run.finished")[0]["outcome"], "interrupted");
    before.assert_same(&p.state());
}
