//! The learning loop end to end with the real Claude Code CLI (installed from npm) against a
//! scripted model server on 127.0.0.1: attempt 1 makes the wrong fix, the teacher's rule is
//! written into CLAUDE.md, attempt 2 makes the right fix only because the rule reached the
//! agent's request through CLAUDE.md.

use serde_json::json;

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, claude_bin, events, of_type};

/// Distinctive words of the learned rule; the scripted model looks for them.
pub(crate) const RULE_TEXT: &str = "Return None, not 0, from safe_divide when the divisor is zero";

const BUG_DIVIDE: &str = "        return 0  # bug: 0 looks like a valid result";
const BUG_AVERAGE: &str =
    "    return sum(numbers) // len(numbers)  # bug: floor division drops the fraction";

/// The agent: without the rule in its context it "fixes" the wrong thing; with it, both bugs.
pub(crate) fn agent(request: &Request) -> Reply {
    let cwd = request.cwd().unwrap_or_default();
    let file = format!("{cwd}/calculator.py");
    let knows_rule = request.text().contains(RULE_TEXT);
    let edit = |old: &str, new: &str| {
        Reply::tool(
            "Edit",
            json!({"file_path": file, "old_string": old, "new_string": new}),
        )
    };
    match (knows_rule, request.tool_results()) {
        (_, 0) => Reply::tool("Read", json!({"file_path": file})),
        (false, 1) => edit(BUG_DIVIDE, "        return 0.0"),
        (true, 1) => edit(BUG_DIVIDE, "        return None"),
        (true, 2) => edit(BUG_AVERAGE, "    return sum(numbers) / len(numbers)"),
        _ => Reply::text("Fixed the calculator."),
    }
}

/// The teacher: a rule in the prototype's markdown form, wrapped in prose.
pub(crate) fn teacher(_request: &Request) -> Reply {
    Reply::text(format!(
        "Analysis: the agent kept returning a number for division by zero and never checked \
         the mean's fraction.\n\n### Return values\n- **Rule**: {RULE_TEXT}, and use true \
         division (/) in average.\n- **When**: Writing safe_* helpers or averages in \
         calculator.py\n- **Why**: 0 and 0.0 look like valid results and floor division drops \
         the fraction, so the tests fail.\n"
    ))
}

#[test]
fn learned_rule_reaches_claude_code_and_the_retry_passes() {
    let project = Project::calculator();
    let user_text_before = "# Project notes\n\nUse pytest.\n";
    let user_text_after = "\n## Style\n\nKeep functions small.\n";
    project.write("CLAUDE.md", &format!("{user_text_before}{user_text_after}"));
    project.git(&["add", "CLAUDE.md"]);
    project.git(&["commit", "-qm", "notes"]);
    let head = project.git(&["rev-parse", "HEAD"]);
    let server = FakeAnthropic::start(
        |r: &Request| {
            if r.is_agent() { agent(r) } else { teacher(r) }
        },
    );
    let config = project.config(&format!(
        "claude:\n  command: {}\n  permission_mode: acceptEdits\n  max_turns: 8\n  timeout: 120\n\
         tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n\
         teacher:\n  mode: anthropic\n  model: claude-sonnet-4-5\n  timeout: 30\n\
         learning:\n  max_retries: 2\n",
        claude_bin().display()
    ));
    let output = project
        .promptloop()
        .args([
            "run",
            "Fix the calculator so its tests pass",
            "--json",
            "-d",
        ])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .envs(server.claude_code_env())
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .expect("run promptloop");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let evs = events(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {stderr}\nevents: {evs:#?}"
    );

    // Two attempts: the first failed and taught a rule, the second passed.
    let finished = of_type(&evs, "run.finished");
    assert_eq!(finished[0]["outcome"], "passed");
    assert_eq!(finished[0]["attempts"], 2);
    let tests = of_type(&evs, "tests.finished");
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0]["tests"]["outcome"], "failed");
    let failing: Vec<&str> = tests[0]["failing"]
        .as_array()
        .expect("failing ids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        failing,
        [
            "tests/test_calculator.py::test_safe_divide_by_zero_returns_none",
            "tests/test_calculator.py::test_average_keeps_the_fraction"
        ]
    );
    assert_eq!(tests[1]["tests"]["outcome"], "passed");
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0]["added"], true);

    // The teacher saw the failing tests and their assertion lines.
    let teacher_requests: Vec<Request> = server
        .messages_requests()
        .into_iter()
        .filter(|r| !r.is_agent())
        .collect();
    assert_eq!(teacher_requests.len(), 1);
    let lesson = teacher_requests[0].text();
    assert!(
        lesson.contains("test_safe_divide_by_zero_returns_none"),
        "{lesson}"
    );
    assert!(lesson.contains("assert 0.0 is None"), "{lesson}");
    assert!(
        lesson.contains("test_average_keeps_the_fraction"),
        "{lesson}"
    );
    assert!(
        lesson.contains("return 0.0"),
        "the diff is missing: {lesson}"
    );

    // The rule reached the agent through CLAUDE.md, and only in the second attempt.
    let agent_requests: Vec<Request> = server
        .messages_requests()
        .into_iter()
        .filter(|r| r.is_agent())
        .collect();
    let with_rule: Vec<&Request> = agent_requests
        .iter()
        .filter(|r| r.text().contains(RULE_TEXT))
        .collect();
    assert!(!with_rule.is_empty(), "no agent request carried the rule");
    let first = with_rule[0].text();
    let claude_md_pos = first
        .find("CLAUDE.md (project instructions")
        .expect("CLAUDE.md block");
    assert!(
        first[claude_md_pos..].contains(RULE_TEXT),
        "the rule is not inside the CLAUDE.md block"
    );
    assert!(
        !agent_requests[0].text().contains(RULE_TEXT),
        "the first attempt already knew the rule"
    );

    // CLAUDE.md: the user's text byte for byte, the rule in the managed section.
    let claude_md = project.read("CLAUDE.md");
    assert!(claude_md.starts_with(user_text_before), "{claude_md}");
    assert!(
        claude_md.contains("## Learned Rules & Patterns"),
        "{claude_md}"
    );
    assert!(
        claude_md.contains(&format!("- **Rule**: {RULE_TEXT}")),
        "{claude_md}"
    );
    assert!(claude_md.contains("from test failure"), "{claude_md}");
    assert!(
        claude_md.contains(user_text_after.trim_start()),
        "{claude_md}"
    );

    // The fix is in the work tree; nothing was committed on the user's branch.
    let code = project.read("calculator.py");
    assert!(code.contains("        return None"), "{code}");
    assert!(code.contains("sum(numbers) / len(numbers)"), "{code}");
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(
        project.git(&["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );

    // The record keeps both attempts, and the failed attempt's tree is kept under a ref.
    let runs = std::fs::read_dir(project.path.join(".promptloop/runs"))
        .expect("runs dir")
        .count();
    assert_eq!(runs, 1);
    let refs = project.git(&["for-each-ref", "--format=%(refname)", "refs/promptloop/"]);
    assert!(refs.contains("/attempt-1/after"), "{refs}");
    assert!(refs.contains("/attempt-2/after"), "{refs}");
    // `.promptloop/` is excluded from git without touching .gitignore.
    let status = project.git(&["status", "--porcelain"]);
    assert!(!status.contains(".promptloop"), "{status}");
}
