//! `rules.targets`: one learned rule goes to every instruction file a project keeps in step,
//! each in the form that file expects, with the user's text outside the managed section
//! untouched byte for byte.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, events, of_type};

const RULE_TEXT: &str = "Return None, not 0, from safe_divide when the divisor is zero";
const FRONT_MATTER: &str = "---\ndescription: Rules promptloop learned from failed attempts (Rule / When / Why)\nalwaysApply: true\n---\n";

fn teacher(_request: &Request) -> Reply {
    Reply::text(format!(
        "- **Rule**: {RULE_TEXT}\n- **When**: Writing safe_* helpers\n\
         - **Why**: 0 looks like a valid result.\n"
    ))
}

/// Runs one attempt of a script agent that changes nothing, so the tests fail and the
/// teacher's rule is written to the configured targets.
fn run_with_targets(project: &Project, rules_yaml: &str) -> Vec<serde_json::Value> {
    let agent = project.home.path().join("noop.sh");
    std::fs::write(&agent, "#!/bin/sh\necho looked around\n").expect("write agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = FakeAnthropic::start(teacher);
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {}\n\
         tests:\n  command: python3 -m pytest tests -q\n\
         teacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n{rules_yaml}",
        agent.display()
    ));
    let output = project
        .promptloop()
        .args(["run", "Fix the calculator", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}\n{evs:#?}",
        String::from_utf8_lossy(&output.stderr)
    );
    evs
}

#[test]
fn every_target_gets_the_rule_in_its_form_and_user_text_stays() {
    let project = Project::calculator();
    // CLAUDE.md: the user's text around an existing managed section.
    let claude_before = "# Project\n\nUse pytest.\n\n## Learned Rules & Patterns\n\n\
                         - **Rule**: Keep functions small\n  - **Source**: by hand\n";
    let claude_after = "\n## Style\n\nFour spaces.\n";
    project.write("CLAUDE.md", &format!("{claude_before}{claude_after}"));
    // AGENTS.md: CRLF line endings and no final newline.
    let agents = "# Agents\r\n\r\nBe careful.";
    project.write("AGENTS.md", agents);
    // Copilot's file exists with the user's text; GEMINI.md and the .mdc do not.
    let copilot = "Prefer small diffs.\n";
    project.write(".github/copilot-instructions.md", copilot);
    let evs = run_with_targets(
        &project,
        "rules:\n  targets:\n    - CLAUDE.md\n    - AGENTS.md\n    - GEMINI.md\n    \
         - .cursor/rules/promptloop.mdc\n    - .github/copilot-instructions.md\n",
    );
    let entry_line = format!("- **Rule**: {RULE_TEXT}");

    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1);
    let files: Vec<String> = [
        "CLAUDE.md",
        "AGENTS.md",
        "GEMINI.md",
        ".cursor/rules/promptloop.mdc",
        ".github/copilot-instructions.md",
    ]
    .iter()
    .map(|f| project.path.join(f).display().to_string())
    .collect();
    assert_eq!(learned[0]["files"], json!(files));
    assert_eq!(of_type(&evs, "run.started")[0]["rules_files"], json!(files));

    // CLAUDE.md: the rule is appended to the existing section, before the user's ## Style.
    let claude = project.read("CLAUDE.md");
    assert!(claude.starts_with(claude_before), "{claude}");
    assert!(claude.ends_with(claude_after), "{claude}");
    let inserted = &claude[claude_before.len()..claude.len() - claude_after.len()];
    assert!(
        inserted.contains(&format!("\n{entry_line}\n")),
        "{inserted:?}"
    );
    // AGENTS.md: user bytes kept, the section written with the file's CRLF.
    let agents_now = project.read("AGENTS.md");
    assert!(agents_now.starts_with(agents), "{agents_now:?}");
    let agents_added = &agents_now[agents.len()..];
    assert!(
        agents_added.starts_with("\r\n\r\n## Learned Rules & Patterns\r\n"),
        "{agents_now:?}"
    );
    assert!(
        agents_added.contains(&format!("\r\n{entry_line}\r\n")),
        "{agents_now:?}"
    );
    assert!(
        !agents_added.replace("\r\n", "").contains('\n'),
        "LF in a CRLF file"
    );
    // GEMINI.md: created with just the section.
    let gemini = project.read("GEMINI.md");
    assert!(
        gemini.starts_with("## Learned Rules & Patterns\n"),
        "{gemini}"
    );
    assert!(gemini.contains(&format!("\n{entry_line}\n")), "{gemini}");
    // The Cursor rule: created with the front matter Cursor needs to apply it always.
    let mdc = project.read(".cursor/rules/promptloop.mdc");
    assert!(
        mdc.starts_with(&format!("{FRONT_MATTER}\n## Learned Rules & Patterns\n")),
        "{mdc}"
    );
    assert!(mdc.contains(&format!("\n{entry_line}\n")), "{mdc}");
    // Copilot's instructions: the user's line, then the section.
    let copilot_now = project.read(".github/copilot-instructions.md");
    assert!(
        copilot_now.starts_with(&format!("{copilot}\n## Learned Rules & Patterns\n")),
        "{copilot_now}"
    );
    assert!(
        copilot_now.contains(&format!("\n{entry_line}\n")),
        "{copilot_now}"
    );
    // The rule written by hand into CLAUDE.md's section (no When/Why) is still there.
    assert!(claude.contains("- **Rule**: Keep functions small\n  - **Source**: by hand\n"));
    // Exactly once in every file.
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read target");
        assert_eq!(text.matches(&entry_line).count(), 1, "{f}: {text}");
    }
}

#[test]
fn an_existing_cursor_rule_keeps_its_front_matter() {
    let project = Project::calculator();
    let mine = "---\ndescription: House rules\nglobs: \"*.py\"\nalwaysApply: false\n---\n\n\
                Use type hints.\n";
    project.write(".cursor/rules/house.mdc", mine);
    let evs = run_with_targets(
        &project,
        "rules:\n  targets: [.cursor/rules/house.mdc, GEMINI.md]\n",
    );
    assert_eq!(of_type(&evs, "rule.learned").len(), 1);
    let now = project.read(".cursor/rules/house.mdc");
    assert!(
        now.starts_with(&format!("{mine}\n## Learned Rules & Patterns\n")),
        "{now}"
    );
    assert!(
        now.contains(&format!("\n- **Rule**: {RULE_TEXT}\n")),
        "{now}"
    );
    assert!(!now.contains("alwaysApply: true"), "{now}");
    assert!(project.read("GEMINI.md").contains(RULE_TEXT));
}

#[test]
fn rules_file_flag_replaces_the_targets() {
    let project = Project::calculator();
    let agent = project.home.path().join("noop.sh");
    std::fs::write(&agent, "#!/bin/sh\ntrue\n").expect("write agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = FakeAnthropic::start(teacher);
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {}\ntests:\n  command: python3 -m pytest tests -q\n\
         teacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n\
         rules:\n  targets: [CLAUDE.md, AGENTS.md]\n",
        agent.display()
    ));
    let output = project
        .promptloop()
        .args(["run", "Fix", "--json", "--rules-file", "ONLY.md", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    assert_eq!(
        of_type(&evs, "rule.learned")[0]["files"],
        json!([project.path.join("ONLY.md").display().to_string()])
    );
    assert!(!project.path.join("CLAUDE.md").exists());
    assert!(!project.path.join("AGENTS.md").exists());
}
