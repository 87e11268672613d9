//! The command line as a user meets it: bad input gives a clear message and the documented
//! exit code; the prototype's config and legacy form work; a failure whose teacher was down
//! is kept and `promptloop learn` completes it later.

use std::time::Duration;

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, events, fake_agent, of_type};

/// The prototype's config.yaml as its README shows it (plus its `logging` section).
const PROTOTYPE_CONFIG: &str = include_str!("fixtures/prototype-config.yaml");

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_project_dir_is_a_usage_error() {
    let p = Project::new();
    let out = p
        .promptloop()
        .args(["run", "task", "-d", "does/not/exist"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("project directory does/not/exist does not exist"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn directory_outside_git_is_a_usage_error() {
    let p = Project::new();
    let plain = tempfile::tempdir().unwrap();
    let out = p
        .promptloop()
        .args(["run", "task", "-d"])
        .arg(plain.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("not a git repository") || err.contains("not inside a git"),
        "{err}"
    );
    assert!(err.contains("git init"), "{err}");
}

#[test]
fn invalid_yaml_names_file_line_and_column() {
    let p = Project::new();
    let config = p.config("teacher:\n  mode: anthropic\n claude: [unclosed\n");
    let out = p
        .promptloop()
        .args(["config", "check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("promptloop.yaml:3:"), "{err}");
}

#[test]
fn unknown_teacher_mode_lists_the_valid_ones() {
    let p = Project::new();
    let config = p.config("teacher:\n  mode: gpt\n");
    let out = p
        .promptloop()
        .args(["config", "check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("promptloop.yaml:2:"), "{err}");
    assert!(
        err.contains("anthropic (alias local)") && err.contains("offline"),
        "{err}"
    );
    // The same through the flag.
    let out = p
        .promptloop()
        .args(["run", "task", "--teacher", "gpt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--teacher"), "{}", stderr_of(&out));
}

#[test]
fn agent_binary_not_found_says_how_to_install() {
    let p = Project::new();
    let config = p.config("claude:\n  command: no-such-claude-binary\nteacher:\n  mode: offline\n");
    let out = p
        .promptloop()
        .args(["run", "task", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("no-such-claude-binary"), "{err}");
    assert!(
        err.contains("npm install -g @anthropic-ai/claude-code"),
        "{err}"
    );
}

#[test]
fn prototype_config_loads_unchanged_without_warnings() {
    let p = Project::new();
    let config = p.config(PROTOTYPE_CONFIG);
    let out = p
        .promptloop()
        .args(["config", "check", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    assert_eq!(v["settings"]["teacher"]["mode"], "anthropic");
    assert_eq!(v["settings"]["learning"]["max_retries"], 3);
    assert_eq!(
        v["settings"]["tests"]["command"],
        "pytest tests/ -v --tb=short"
    );
}

#[test]
fn unknown_key_is_warned_about_not_ignored() {
    let p = Project::new();
    let config = p.config("learning:\n  max_retires: 3\n");
    let out = p
        .promptloop()
        .args(["config", "check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = stderr_of(&out);
    assert!(err.contains("learning.max_retires"), "{err}");
    assert!(err.contains("learning.max_retries"), "{err}");
}

#[test]
fn config_is_found_in_the_working_directory_then_the_user_dir() {
    let p = Project::new();
    p.write("promptloop.yaml", "learning:\n  max_retries: 7\n");
    let out = p
        .promptloop()
        .args(["config", "check", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["learning"]["max_retries"], 7);
    assert!(v["source"].as_str().unwrap().ends_with("promptloop.yaml"));
    std::fs::remove_file(p.path.join("promptloop.yaml")).unwrap();
    let user = p.home.path().join(".config/promptloop");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("config.yaml"), "learning:\n  max_retries: 4\n").unwrap();
    let out = p
        .promptloop()
        .args(["config", "check", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["learning"]["max_retries"], 4);
}

#[test]
fn root_refusal_says_how_to_proceed() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\ntests:\n  command: 'false'\nteacher:\n  mode: offline\n",
        agent.display()
    ));
    let out = p
        .promptloop()
        .args(["run", "task", "-c"])
        .arg(&config)
        .env("FAKE_AGENT_MODE", "root")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("permission_mode: acceptEdits"), "{text}");
    assert!(text.contains("IS_SANDBOX=1"), "{text}");
}

/// The legacy form without the subcommand runs the loop, and an unreachable teacher keeps
/// the failure pending; `promptloop learn` completes it once the teacher is up.
#[test]
fn legacy_form_and_unreachable_teacher_then_learn() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\n\
         tests:\n  command: \"grep -q '^fixed$' app.txt || (echo 'FAILED app_test::says_fixed - expected fixed'; exit 1)\"\n\
         teacher:\n  mode: anthropic\n  timeout: 5\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    // Nothing listens on port 9 of loopback.
    let out = p
        .promptloop()
        .args(["make app.txt say fixed", "--json", "--project-dir"])
        .arg(&p.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_API_KEY", "test")
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let evs = events(&out.stdout);
    let pending = of_type(&evs, "failure.pending");
    assert_eq!(pending.len(), 1, "{evs:#?}");
    let reason = pending[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1:9") && reason.contains("connect"),
        "{reason}"
    );
    assert!(!p.path.join("CLAUDE.md").exists());

    // Later, the teacher is up.
    let server = FakeAnthropic::start(|r: &Request| {
        assert!(
            r.text().contains("app_test::says_fixed"),
            "payload lost the failing id"
        );
        Reply::text(
            "### Output\n- **Rule**: Write exactly `fixed` on its own line in app.txt\n\
             - **When**: Asked to make app.txt say fixed\n- **Why**: The check greps for the whole line",
        )
    });
    let out = p
        .promptloop()
        .args(["learn", "--json", "-c"])
        .arg(&config)
        .env("ANTHROPIC_API_KEY", "test")
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let evs = events(&out.stdout);
    assert_eq!(of_type(&evs, "rule.learned").len(), 1, "{evs:#?}");
    let claude_md = p.read("CLAUDE.md");
    assert!(claude_md.contains("- **Rule**: Write exactly `fixed` on its own line in app.txt"));
    // Nothing is pending any more.
    let out = p
        .promptloop()
        .args(["learn", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no pending failures"));
}

#[test]
fn teacher_auth_error_fails_fast_with_a_hint() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let server = FakeAnthropic::start(|_r: &Request| Reply::error(401, "invalid x-api-key"));
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\ntests:\n  command: 'false'\nteacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let started = std::time::Instant::now();
    let out = p
        .promptloop()
        .args(["run", "task", "--json", "-c"])
        .arg(&config)
        .env("ANTHROPIC_API_KEY", "wrong")
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        server.messages_requests().len(),
        1,
        "a 401 must not be retried"
    );
    let evs = events(&out.stdout);
    let reason = of_type(&evs, "failure.pending")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("401") && reason.contains("ANTHROPIC_API_KEY"),
        "{reason}"
    );
}

#[test]
fn teacher_rate_limit_is_retried_honouring_retry_after() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let server = FakeAnthropic::start(move |_r: &Request| {
        match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::Error {
                status: 429,
                error_type: "rate_limit_error".into(),
                message: "slow down".into(),
                retry_after: Some(1),
            },
            1 => Reply::error(529, "overloaded"),
            _ => {
                Reply::text("- **Rule**: Write fixed\n- **When**: Always\n- **Why**: Tests grep it")
            }
        }
    });
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\ntests:\n  command: 'false'\nteacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let started = std::time::Instant::now();
    let out = p
        .promptloop()
        .args(["run", "task", "--json", "-c"])
        .arg(&config)
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.messages_requests().len(), 3);
    // retry-after: 1 was waited for, then a backoff of about 2 s.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let evs = events(&out.stdout);
    assert_eq!(of_type(&evs, "rule.learned").len(), 1, "{evs:#?}");
}

/// An answer with no usable rule is asked again once (with a correction), then the failure
/// is kept as pending rather than dropped.
#[test]
fn answer_without_a_rule_is_asked_again_then_kept_pending() {
    let p = Project::new();
    p.write("app.txt", "broken\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let agent = fake_agent(p.home.path());
    let config = p.config(&format!(
        "claude:\n  command: {}\ntests:\n  command: 'false'\nteacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let run = |server: &FakeAnthropic| {
        p.promptloop()
            .args(["run", "task", "--json", "-c"])
            .arg(&config)
            .env("ANTHROPIC_API_KEY", "k")
            .env("ANTHROPIC_BASE_URL", server.base_url())
            .output()
            .unwrap()
    };
    // Garbage, then a rule: learned on the second ask, which carries the correction.
    let server = FakeAnthropic::start(|r: &Request| {
        if r.body["messages"].as_array().map_or(0, |m| m.len()) == 1 {
            Reply::text("I think the agent should try harder.")
        } else {
            assert!(r.text().contains("could not be read as a rule"));
            Reply::text("- **Rule**: Write fixed\n- **When**: Asked to\n- **Why**: Tests check it")
        }
    });
    let evs = events(&run(&server).stdout);
    assert_eq!(server.messages_requests().len(), 2);
    assert_eq!(of_type(&evs, "rule.learned").len(), 1, "{evs:#?}");
    // Garbage twice: pending, with the reason.
    let server = FakeAnthropic::start(|_r: &Request| Reply::text("No idea, sorry."));
    let evs = events(&run(&server).stdout);
    assert_eq!(server.messages_requests().len(), 2);
    let pending = of_type(&evs, "failure.pending");
    assert_eq!(pending.len(), 1, "{evs:#?}");
    assert!(
        pending[0]["reason"]
            .as_str()
            .unwrap()
            .contains("asked twice")
    );
    let out = p
        .promptloop()
        .args(["history", "--failures", "--json"])
        .output()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stored.as_array().unwrap().len(),
        2,
        "both failures are kept"
    );
}

#[test]
fn git_missing_is_a_usage_error_that_says_so() {
    let p = Project::new();
    let empty_path = tempfile::tempdir().unwrap();
    let out = p
        .promptloop()
        .args(["run", "task", "--teacher", "offline"])
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("git"), "{err}");
    assert!(err.to_lowercase().contains("install"), "{err}");
}
