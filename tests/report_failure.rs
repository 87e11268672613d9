//! `promptloop report-failure` end to end, the teacher choice (`auto`, `--teacher`), the
//! prompt router's config (`failure_prompts`), the webhook's request against the shipped n8n
//! workflow, and `promptloop redact`.

use std::time::Duration;

use promptloop::teacher::prompt::builtin_system;
use serde_json::Value;

use crate::redaction::{corpus_dir, corpus_secrets, leaks};
use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::teacher_loopback::{self, N8n};
use crate::support::{Project, claude_bin, events, of_type};
use crate::teachers::{Kind, MANUAL_TYPES, Server, answer_for, naming_model, stored_failures};

/// A PATH with git and nothing else, so that `auto` finds no Claude Code even on a machine
/// that has one installed.
fn path_without_claude(project: &Project) -> String {
    let dir = project.home.path().join("only-git");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let git = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH");
    let link = dir.join("git");
    if !link.exists() {
        std::os::unix::fs::symlink(git, &link).expect("symlink");
    }
    dir.display().to_string()
}

fn teacher_server() -> FakeAnthropic {
    FakeAnthropic::start(|r: &Request| {
        let system = r.body["system"].as_str().unwrap_or("").to_string();
        Reply::text(answer_for(
            crate::teachers::prompt_in(&system).unwrap_or("custom prompt"),
        ))
    })
}

fn with_anthropic(cmd: &mut assert_cmd::Command, server: &FakeAnthropic) {
    cmd.env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .timeout(Duration::from_secs(120));
}

#[test]
fn global_scope_writes_every_type_into_the_home_claude_md_and_leaves_the_project_alone() {
    let project = Project::new();
    project.write("CLAUDE.md", "# Project\n\nUse tabs.\n");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "notes"]);
    let before = project.state();
    let server = teacher_server();
    for kind in MANUAL_TYPES {
        let mut cmd = project.promptloop();
        with_anthropic(&mut cmd, &server);
        cmd.args([
            "report-failure",
            "--failure-type",
            kind,
            "--scope",
            "global",
        ])
        .args(["--description", &format!("A {kind} in the importer")])
        .args(["--task", "Import the CSV"])
        .args(["--teacher", "anthropic"])
        .assert()
        .success();
    }
    let global = std::fs::read_to_string(project.home.path().join(".claude/CLAUDE.md"))
        .expect("~/.claude/CLAUDE.md");
    assert_eq!(
        global.matches("## Learned Rules & Patterns").count(),
        1,
        "{global}"
    );
    for kind in MANUAL_TYPES {
        // Rules of one category are rendered under one `### Checks` heading.
        let entry = format!(
            "- **Rule**: Check the evidence named by {kind}_system before finishing the task.\n"
        );
        assert!(global.contains(&entry), "{kind}: {global}");
        assert!(
            global.contains(&format!(
                "from {} (reported by hand) · r-",
                kind.replace('_', " ")
            )),
            "{global}"
        );
    }
    // The project's own file and everything else in it are as they were (the record
    // folder aside, which git does not see).
    assert_eq!(project.state(), before);
    assert_eq!(project.read("CLAUDE.md"), "# Project\n\nUse tabs.\n");
}

#[test]
fn descriptions_come_from_files_and_stdin_and_json_reports_events() {
    let project = Project::new();
    let server = teacher_server();
    let notes = project.home.path().join("notes.md");
    std::fs::write(
        &notes,
        "The agent created a second cron job\nfor the nightly sync.\n",
    )
    .expect("notes");
    let mut cmd = project.promptloop();
    with_anthropic(&mut cmd, &server);
    let out = cmd
        .args([
            "report-failure",
            "-f",
            "integration-error",
            "--description-file",
        ])
        .arg(&notes)
        .args([
            "--context-file",
            "-",
            "-T",
            "Nightly sync",
            "-t",
            "anthropic",
            "--json",
        ])
        .write_stdin("There is already scripts/sync.sh run by systemd.\n")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(&out.stdout);
    let captured = of_type(&evs, "failure.captured");
    assert_eq!(captured[0]["failure_type"], "integration_error");
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1);
    assert!(learned[0]["file"].as_str().unwrap().ends_with("/CLAUDE.md"));
    let user = server.messages_requests()[0].text();
    assert!(
        user.contains("second cron job\nfor the nightly sync."),
        "{user}"
    );
    assert!(user.contains("scripts/sync.sh run by systemd"), "{user}");
    let stored = stored_failures(&project);
    assert_eq!(stored[0]["context"]["source"], "manual");
    assert_eq!(stored[0]["status"], "learned");
}

#[test]
fn usage_errors_exit_2_with_what_to_do() {
    let project = Project::new();
    let unknown = project
        .promptloop()
        .args(["report-failure", "-f", "style_error", "-D", "x"])
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown failure type `style_error`"),
        "{stderr}"
    );
    for kind in MANUAL_TYPES {
        assert!(stderr.contains(kind), "{stderr}");
    }
    let test_failure = project
        .promptloop()
        .args(["report-failure", "-f", "test_failure", "-D", "x"])
        .output()
        .expect("run");
    assert_eq!(test_failure.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&test_failure.stderr).contains("promptloop run"));

    let no_description = project
        .promptloop()
        .args(["report-failure", "-f", "other"])
        .output()
        .expect("run");
    assert_eq!(no_description.status.code(), Some(2));

    let outside = tempfile::tempdir().expect("dir");
    let not_a_project = project
        .promptloop()
        .args(["report-failure", "-f", "other", "-D", "x", "--project-dir"])
        .arg(outside.path())
        .output()
        .expect("run");
    assert_eq!(not_a_project.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_a_project.stderr).contains("--scope global"));
}

#[test]
fn a_global_report_kept_pending_is_completed_into_the_global_file() {
    let project = Project::new();
    // No key, no Claude Code on PATH: `auto` has no teacher, the report is kept.
    let out = project
        .promptloop()
        .env("PATH", path_without_claude(&project))
        .args([
            "report-failure",
            "-f",
            "scope_error",
            "-D",
            "Rewrote the README too",
            "--scope",
            "global",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no teacher available"), "{stdout}");
    assert!(
        stdout.contains("$ANTHROPIC_API_KEY") && stdout.contains("Claude Code"),
        "{stdout}"
    );
    let stored = stored_failures(&project);
    assert_eq!(stored[0]["status"], "pending");

    let server = teacher_server();
    let mut cmd = project.promptloop();
    with_anthropic(&mut cmd, &server);
    cmd.arg("learn").assert().success();
    let global = std::fs::read_to_string(project.home.path().join(".claude/CLAUDE.md"))
        .expect("global file");
    assert!(global.contains("scope_error_system"), "{global}");
    assert!(
        !project.path.join("CLAUDE.md").exists(),
        "written into the project instead"
    );
}

#[test]
fn auto_picks_anthropic_with_a_key_then_claude_code_on_path() {
    // A key: the Messages API.
    let project = Project::new();
    let server = Server::start(Kind::Anthropic, naming_model);
    let out = server
        .promptloop(&project)
        .args([
            "report-failure",
            "-f",
            "planning_error",
            "-D",
            "Skipped the design doc",
            "--json",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = of_type(&events(&out.stdout), "teacher.started")[0]["teacher"].clone();
    assert!(
        started.as_str().unwrap().starts_with("anthropic"),
        "{started}"
    );

    // No key, but Claude Code on PATH (logged in through its own means): claude-cli.
    let project = Project::new();
    let bin_dir = claude_bin().parent().expect("bin dir").to_path_buf();
    let out = server
        .promptloop(&project)
        .env_remove("ANTHROPIC_API_KEY")
        .env("ANTHROPIC_AUTH_TOKEN", "claude-login-token")
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), path_without_claude(&project)),
        )
        .args([
            "report-failure",
            "-f",
            "planning_error",
            "-D",
            "Skipped the design doc",
            "--json",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = of_type(&events(&out.stdout), "teacher.started")[0]["teacher"].clone();
    assert!(
        started.as_str().unwrap().starts_with("claude-cli"),
        "{started}"
    );
    assert!(project.read("CLAUDE.md").contains("planning_error_system"));
}

#[test]
fn the_teacher_flag_overrides_the_config() {
    let project = Project::new();
    let server = Server::start(Kind::Anthropic, naming_model);
    let config = project
        .config("teacher:\n  mode: webhook\nn8n:\n  webhook_url: http://127.0.0.1:9/unused\n");
    server
        .promptloop(&project)
        .args([
            "report-failure",
            "-f",
            "other",
            "-D",
            "x",
            "-t",
            "anthropic",
            "-c",
        ])
        .arg(&config)
        .assert()
        .success();
    assert_eq!(server.asked().len(), 1);
}

#[test]
fn failure_prompts_route_to_a_users_file_and_bad_entries_are_config_errors() {
    let project = Project::new();
    let server = teacher_server();
    let prompts = project.home.path().join("prompts");
    std::fs::create_dir(&prompts).expect("mkdir");
    std::fs::write(
        prompts.join("arch.md"),
        "Judge the design against docs/adr/ and name the ADR.\n",
    )
    .expect("prompt");
    let config = project.config(
        "teacher:\n  mode: anthropic\nfailure_prompts:\n  architecture_error: prompts/arch.md\n  scope_error: planning_error_system\n",
    );
    for kind in ["architecture_error", "scope_error", "config_error"] {
        let mut cmd = project.promptloop();
        with_anthropic(&mut cmd, &server);
        cmd.args(["report-failure", "-f", kind, "-D", "x", "-c"])
            .arg(&config)
            .assert()
            .success();
    }
    let systems: Vec<String> = server
        .messages_requests()
        .iter()
        .map(|r| r.body["system"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(systems[0].contains("Judge the design against docs/adr/ and name the ADR."));
    assert!(
        systems[0].contains("- **Rule**:"),
        "the answer format is always appended"
    );
    assert!(systems[1].contains(&builtin_system("planning_error_system").unwrap()));
    assert!(systems[2].contains(&builtin_system("config_error_system").unwrap()));

    for (yaml, key, says) in [
        (
            "failure_prompts:\n  scope_error: prompts/missing.md\n",
            "failure_prompts.scope_error",
            "not found",
        ),
        (
            "failure_prompts:\n  planning_error: planing_error_system\n",
            "failure_prompts.planning_error",
            "unknown prompt",
        ),
    ] {
        let config = project.config(yaml);
        for args in [
            vec![
                "report-failure",
                "-f",
                "other",
                "-D",
                "x",
                "-t",
                "anthropic",
            ],
            vec!["config", "check"],
            vec!["learn", "-t", "anthropic"],
        ] {
            let mut cmd = project.promptloop();
            with_anthropic(&mut cmd, &server);
            let out = cmd
                .args(&args)
                .arg("-c")
                .arg(&config)
                .output()
                .expect("run");
            assert_eq!(out.status.code(), Some(2), "{args:?} {yaml}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(key) && stderr.contains(says),
                "{args:?}: {stderr}"
            );
        }
    }
}

/// The request our webhook teacher sends has every field the shipped workflow reads, the
/// token arrives as a bearer header, and an old workflow that reads only the prototype's
/// four fields still gets a full question.
#[test]
fn the_webhook_request_carries_what_the_n8n_workflow_reads() {
    let workflow = std::fs::read_to_string(teacher_loopback::n8n_workflow()).expect("workflow");
    let fields: std::collections::BTreeSet<String> = regex_fields(&workflow);
    assert!(
        fields.contains("prompt") && fields.contains("system_prompt"),
        "{fields:?}"
    );
    for prototype in ["diff", "error_logs", "task_description", "failure_type"] {
        assert!(
            fields.contains(prototype),
            "the workflow ignores {prototype}"
        );
    }
    let project = Project::calculator();
    let server = Server::start(Kind::Webhook, naming_model);
    let config = server.config(&project, 60);
    server
        .promptloop(&project)
        .args(["run", "Fix the calculator", "-c"])
        .arg(&config)
        .assert()
        .code(1);
    let hits = server.asked();
    let body: Value = serde_json::from_str(&hits[0].body).expect("json");
    for field in &fields {
        assert!(
            body.get(field).is_some_and(|v| !v.is_null()),
            "missing {field}: {body:#}"
        );
    }
    assert_eq!(body["failure_type"], "test_failure");
    assert!(
        body["diff"].is_string()
            && body["error_logs"]
                .as_str()
                .unwrap()
                .contains("test_safe_divide_by_zero_returns_none")
    );
    assert!(
        body["task_description"]
            .as_str()
            .unwrap()
            .contains("Fix the calculator")
    );
    assert_eq!(
        crate::teachers::prompt_in(body["system_prompt"].as_str().unwrap()),
        Some("test_failure_system")
    );

    // A webhook without our extra fields (the prototype's client) still reaches the model
    // with the prototype's four fields.
    let old = serde_json::json!({"diff": "-a\n+b", "error_logs": "E assert 1 == 2", "task_description": "Fix it", "failure_type": "test_failure"});
    let run = teacher_loopback::run_n8n_workflow(&old, &answer_for("x"));
    assert!(
        run.user.contains("E assert 1 == 2") && run.user.contains("Fix it"),
        "{}",
        run.user
    );
    assert!(run.system.contains("**Rule**"));
    assert_eq!(run.response["error_type"], "Checks");
    assert!(
        run.response["rule"]
            .as_str()
            .unwrap()
            .starts_with("### Checks\n- **Rule**")
    );
}

/// `$json.body.NAME` in the workflow's expressions.
fn regex_fields(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("$json.body.") {
        let rest = &text[i + "$json.body.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[test]
fn a_wrong_webhook_token_is_a_clear_error() {
    let project = Project::new();
    let server = teacher_loopback::n8n(Some("right-token"), |_, _, _| N8n::Model(answer_for("x")));
    let config = project.config(&format!(
        "teacher:\n  mode: webhook\nn8n:\n  webhook_url: {}/webhook/prompt-learning-teacher\n  bearer_token_env: HOOK_TOKEN\n",
        server.base_url()
    ));
    let out = project
        .promptloop()
        .env("HOOK_TOKEN", "wrong-token")
        .args(["report-failure", "-f", "other", "-D", "x", "-c"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("HTTP 403") && stdout.contains("$HOOK_TOKEN"),
        "{stdout}"
    );
    // Unset variable: a config error before anything is sent.
    let out = project
        .promptloop()
        .args(["report-failure", "-f", "other", "-D", "x", "-c"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOOK_TOKEN"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn redact_shows_what_would_be_sent() {
    let project = Project::new();
    let secrets = corpus_secrets();
    let env_file = corpus_dir().join("app.env");
    let out = project
        .promptloop()
        .arg("redact")
        .arg(&env_file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(leaks(&stdout, &secrets).is_empty(), "{stdout}");
    assert!(
        stdout.contains("ANTHROPIC_API_KEY=[REDACTED anthropic-key]"),
        "{stdout}"
    );
    assert!(stdout.contains("LOG_LEVEL=info"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("removed 2"),
        "count on stderr"
    );

    // A private file is shown as what a diff of it carries: nothing.
    let out = project
        .promptloop()
        .arg("redact")
        .arg(corpus_dir().join("id_rsa"))
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[content not sent: private file]\n"
    );

    // stdin, JSON, and the user's own pattern.
    let config =
        project.config("redaction:\n  patterns: ['ACME-[0-9]{6}']\n  private_files: ['*.vault']\n");
    let out = project
        .promptloop()
        .args(["redact", "-", "--json", "-c"])
        .arg(&config)
        .write_stdin("ticket ACME-123456 uses ghp_abcdefghijklmnopqrstuvwxyz0123456789\n")
        .output()
        .expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["text"],
        "ticket [REDACTED custom] uses [REDACTED github-token]\n"
    );
    assert_eq!(v["count"], 2);
    project.write("x.vault", "anything");
    let out = project
        .promptloop()
        .args(["redact", "x.vault", "-c"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("private file"));

    // A bad pattern is a config error naming the key.
    let bad = project.config("redaction:\n  patterns: ['(']\n");
    let out = project
        .promptloop()
        .args(["redact", "-", "-c"])
        .arg(&bad)
        .write_stdin("x")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redaction.patterns"));
}

#[test]
fn redact_failure_shows_the_lesson_a_teacher_would_get() {
    let project = Project::new();
    // No teacher: the report is kept, then inspected.
    project
        .promptloop()
        .env("PATH", path_without_claude(&project))
        .args([
            "report-failure",
            "-f",
            "config_error",
            "-C",
            "DB_PASSWORD=hunter2 was in settings.py",
        ])
        .args([
            "-D",
            "Hard-coded sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789 in the client",
        ])
        .assert()
        .code(1);
    let id = stored_failures(&project)[0]["context"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = project
        .promptloop()
        .args(["redact", "--failure", &id[..12], "--json"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["prompt"], "config_error_system");
    assert_eq!(
        v["system"].as_str(),
        builtin_system("config_error_system").as_deref()
    );
    let user = v["user"].as_str().unwrap();
    assert!(
        user.contains("[REDACTED anthropic-key]") && user.contains("DB_PASSWORD=[REDACTED"),
        "{user}"
    );
    assert!(
        !user.contains("hunter2") && !user.contains("sk-ant-api03"),
        "{user}"
    );
    assert_eq!(v["redactions"], 2);
}
