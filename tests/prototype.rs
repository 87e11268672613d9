//! A user of the Python prototype brings their `config.yaml` — the complete file as the
//! prototype ships it, byte for byte — and their commands: `config check` accepts it without a
//! warning, `run` drives the real Claude Code with it, `report-failure` learns with it.
//! Nothing is sent to the n8n address in that file: its teacher mode is `local` (Anthropic),
//! and the tests point the Anthropic base URL at a server on 127.0.0.1.

use std::time::Duration;

use crate::e2e_claude::{RULE_TEXT, agent, teacher};
use crate::support::builders::Outcome;
use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, claude_bin};

/// The prototype's config.yaml as it ships (its `claude.permission_mode` is
/// `"dangerously-skip-permissions"`, its `logging.log_file` is `null`).
pub(crate) const PROTOTYPE_CONFIG: &str = include_str!("fixtures/prototype-config.yaml");

/// The environment of a run against the loopback model: the Anthropic API for the teacher
/// (`teacher.mode: local`) and for Claude Code, Claude Code found on PATH as `claude` (the
/// prototype's `claude.command` default), and allowed to skip permissions as root.
fn with_loopback(project: &Project, server: &FakeAnthropic, args: &[&str]) -> Outcome {
    let config = project.config(PROTOTYPE_CONFIG);
    let bin_dir = claude_bin().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut all: Vec<&str> = args.to_vec();
    let config = config.display().to_string();
    all.extend(["--config", &config]);
    project
        .run_plain(&all)
        .envs(server.claude_code_env())
        .env("PATH", path)
        .env("IS_SANDBOX", "1")
        .timeout(Duration::from_secs(300))
        .go()
}

#[test]
fn config_check_accepts_the_complete_file_without_a_warning() {
    let p = Project::new();
    let config = p.config(PROTOTYPE_CONFIG);
    let out = p
        .run_plain(&[
            "config",
            "check",
            "--json",
            "-c",
            &config.display().to_string(),
        ])
        .go();
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(
        v["settings"]["claude"]["permission_mode"],
        "bypassPermissions"
    );
    assert_eq!(
        v["settings"]["teacher"]["model"],
        "claude-3-5-haiku-20241022"
    );
    assert_eq!(v["settings"]["logging"]["file"], serde_json::Value::Null);
    assert_eq!(
        v["settings"]["failure_prompts"]["config_error"],
        "integration_error_system"
    );
}

#[test]
fn run_with_the_prototypes_config_and_command_learns_and_passes() {
    let project = Project::calculator();
    let server = FakeAnthropic::start(
        |r: &Request| {
            if r.is_agent() { agent(r) } else { teacher(r) }
        },
    );
    let dir = project.path.display().to_string();
    // The prototype README's command, word for word apart from the program's name.
    let out = with_loopback(
        &project,
        &server,
        &[
            "run",
            "Fix the calculator so its tests pass",
            "--project-dir",
            &dir,
            "--max-retries",
            "3",
        ],
    );
    out.assert_code(0);
    // Claude Code ran with the prototype's flags: --dangerously-skip-permissions, 15 turns.
    let agent_requests: Vec<Request> = server
        .messages_requests()
        .into_iter()
        .filter(|r| r.is_agent())
        .collect();
    assert!(
        !agent_requests.is_empty(),
        "Claude Code never asked the model"
    );
    // The teacher was the Anthropic API with the file's model.
    let teacher_requests: Vec<Request> = server
        .messages_requests()
        .into_iter()
        .filter(|r| !r.is_agent())
        .collect();
    assert_eq!(teacher_requests.len(), 1);
    assert_eq!(teacher_requests[0].model(), "claude-3-5-haiku-20241022");
    let claude_md = project.read("CLAUDE.md");
    assert!(
        claude_md.contains(&format!("- **Rule**: {RULE_TEXT}")),
        "{claude_md}"
    );
    let code = project.read("calculator.py");
    assert!(code.contains("        return None"), "{code}");
    assert!(
        out.stdout.contains("tests pass after 2 attempts"),
        "{}",
        out.stdout
    );
}

#[test]
fn report_failure_with_the_prototypes_config_learns_a_rule() {
    let project = Project::new();
    let server = FakeAnthropic::start(|_: &Request| {
        Reply::text(
            "The agent hard-coded the token.\n\n### Configuration\n- **Rule**: Read the n8n API \
             token from N8N_API_TOKEN, never from the workflow JSON\n- **When**: Configuring n8n \
             credentials\n- **Why**: A token in the workflow file leaks with every export\n",
        )
    });
    // The prototype README's report-failure command, every flag spelled out.
    let out = with_loopback(
        &project,
        &server,
        &[
            "report-failure",
            "--failure-type",
            "config_error",
            "--description",
            "Put the API token in the workflow JSON",
            "--context",
            "Should have read it from the environment",
            "--task",
            "Import Design Wizard workflows to n8n",
        ],
    );
    out.assert_code(0);
    let requests = server.messages_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].model(), "claude-3-5-haiku-20241022");
    // The file routes config_error to the integration prompt.
    let system = requests[0].body["system"].to_string();
    assert!(
        system.contains("A person reported an integration error"),
        "config_error should use integration_error_system: {system}"
    );
    let claude_md = project.read("CLAUDE.md");
    assert!(
        claude_md.contains("Read the n8n API token from N8N_API_TOKEN"),
        "{claude_md}"
    );
    assert!(
        claude_md.contains("config error (reported by hand)"),
        "{claude_md}"
    );
}
