//! The learning loop end to end with the real Codex CLI and Gemini CLI (installed from npm
//! into tests/agents) against scripted model servers on 127.0.0.1 (OpenAI Responses for
//! Codex, Gemini streamGenerateContent for Gemini CLI), the teacher being the Anthropic fake:
//! attempt 1 makes the wrong fix, the rule is written into the agent's own instruction file
//! (AGENTS.md, GEMINI.md), attempt 2 makes the right fix only because the rule reached the
//! agent's request through that file. Then each CLI's API errors and turn limit, as the
//! user sees them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FakeAnthropic, Reply as AnthropicReply, Request};
use crate::support::fake_gemini::{self, FakeGemini, GeminiRequest, Reply as GeminiReply};
use crate::support::fake_openai::{self, FakeOpenAi, Reply as OpenAiReply, ResponsesRequest};
use crate::support::{
    Project, claude_bin, codex_bin, events, gemini_bin, gemini_settings, of_type,
};

/// Distinctive words of the learned rule; the scripted models look for them.
const RULE_TEXT: &str = "Return None, not 0, from safe_divide when the divisor is zero";

const BUG_DIVIDE: &str = "        return 0  # bug: 0 looks like a valid result";
const BUG_AVERAGE: &str =
    "    return sum(numbers) // len(numbers)  # bug: floor division drops the fraction";
const FIX_AVERAGE: &str = "    return sum(numbers) / len(numbers)";

/// The teacher: a rule in the prototype's markdown form, wrapped in prose.
fn teacher(_request: &Request) -> AnthropicReply {
    AnthropicReply::text(format!(
        "Analysis: the agent kept returning a number for division by zero and never checked \
         the mean's fraction.\n\n### Return values\n- **Rule**: {RULE_TEXT}, and use true \
         division (/) in average.\n- **When**: Writing safe_* helpers or averages in \
         calculator.py\n- **Why**: 0 and 0.0 look like valid results and floor division drops \
         the fraction, so the tests fail.\n"
    ))
}

/// A project with the calculator and the user's own text in the agent's instruction file.
fn project_with(instruction_file: &str, user_text: &str) -> Project {
    let project = Project::calculator();
    project.write(instruction_file, user_text);
    project.git(&["add", instruction_file]);
    project.git(&["commit", "-qm", "notes"]);
    project
}

/// Checks what both end-to-end runs share: two attempts, the first failing the two tests,
/// one rule learned into `file` (and only there), the fix in the tree, HEAD untouched.
fn assert_learned_and_passed(
    project: &Project,
    output: &std::process::Output,
    file: &str,
    user_text: &str,
    head: &str,
) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let evs = events(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {stderr}\nevents: {evs:#?}"
    );
    let finished = of_type(&evs, "run.finished");
    assert_eq!(finished[0]["outcome"], "passed");
    assert_eq!(finished[0]["attempts"], 2);
    let tests = of_type(&evs, "tests.finished");
    assert_eq!(tests[0]["tests"]["outcome"], "failed");
    assert_eq!(
        tests[0]["failing"],
        json!([
            "tests/test_calculator.py::test_safe_divide_by_zero_returns_none",
            "tests/test_calculator.py::test_average_keeps_the_fraction"
        ])
    );
    assert_eq!(tests[1]["tests"]["outcome"], "passed");
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0]["added"], true);
    assert_eq!(
        learned[0]["file"],
        project.path.join(file).display().to_string()
    );
    let started = of_type(&evs, "run.started");
    assert_eq!(
        started[0]["rules_files"],
        json!([project.path.join(file).display().to_string()])
    );

    let text = project.read(file);
    assert!(text.starts_with(user_text), "{text}");
    let section = text
        .find("## Learned Rules & Patterns")
        .unwrap_or_else(|| panic!("no section in {file}: {text}"));
    assert!(
        text[section..].contains(&format!("- **Rule**: {RULE_TEXT}")),
        "{text}"
    );
    for other in ["CLAUDE.md", "AGENTS.md", "GEMINI.md"] {
        if other != file {
            assert!(
                !project.path.join(other).exists(),
                "{other} was created; rules belong in {file}"
            );
        }
    }
    let code = project.read("calculator.py");
    assert!(code.contains("        return None"), "{code}");
    assert!(code.contains(FIX_AVERAGE), "{code}");
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head);
    evs
}

/// Codex as the agent: wrong fix without the rule; with it, a patch for both bugs, a test
/// run through its shell tool, then a final message.
fn codex_agent(request: &ResponsesRequest) -> OpenAiReply {
    let knows_rule = request
        .agents_md_block()
        .is_some_and(|block| block.contains(RULE_TEXT));
    match (knows_rule, request.tool_outputs()) {
        (false, 0) => OpenAiReply::replace_line("calculator.py", BUG_DIVIDE, "        return 0.0"),
        (true, 0) => OpenAiReply::Patch(format!(
            "*** Begin Patch\n*** Update File: calculator.py\n@@\n-{BUG_DIVIDE}\n+        return None\n\
             @@\n-{BUG_AVERAGE}\n+{FIX_AVERAGE}\n*** End Patch"
        )),
        (true, 1) => OpenAiReply::Exec("python3 -m pytest -q -p no:cacheprovider tests".into()),
        _ => OpenAiReply::Text("Fixed the calculator.".into()),
    }
}

fn codex_config(project: &Project, server: &FakeOpenAi, extra: &str) -> std::path::PathBuf {
    project.config(&format!(
        "agent:\n  kind: codex\n\
         codex:\n  command: {}\n  model: gpt-5.5\n  timeout: 120\n  extra_args: {}\n\
         tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n{extra}",
        codex_bin().display(),
        serde_json::to_string(&server.codex_args()).expect("json")
    ))
}

#[test]
fn learned_rule_reaches_codex_through_agents_md_and_the_retry_passes() {
    let user_text = "# Agent notes\n\nRun the tests with pytest.\n";
    let project = project_with("AGENTS.md", user_text);
    let head = project.git(&["rev-parse", "HEAD"]);
    let codex = FakeOpenAi::start(codex_agent);
    let anthropic = FakeAnthropic::start(teacher);
    let config = codex_config(
        &project,
        &codex,
        "teacher:\n  mode: anthropic\n  timeout: 30\nlearning:\n  max_retries: 2\n",
    );
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
        .env("FAKE_OPENAI_KEY", "test-key")
        .env("ANTHROPIC_BASE_URL", anthropic.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run promptloop");
    let evs = assert_learned_and_passed(&project, &output, "AGENTS.md", user_text, &head);

    // What Codex said about itself reached the outcome: its final message, its usage
    // (two model requests in attempt 1, four in attempt 2), its edits and its test run.
    let agent = of_type(&evs, "agent.finished");
    assert_eq!(agent.len(), 2);
    for a in &agent {
        assert_eq!(a["outcome"]["status"], "finished", "{a}");
        assert_eq!(a["outcome"]["final_message"], "Fixed the calculator.");
        assert!(a["outcome"]["session_id"].as_str().is_some(), "{a}");
    }
    assert_eq!(
        agent[0]["outcome"]["usage"]["input_tokens"],
        2 * fake_openai::INPUT_TOKENS
    );
    assert_eq!(
        agent[1]["outcome"]["usage"]["output_tokens"],
        3 * fake_openai::OUTPUT_TOKENS
    );
    let actions: Vec<&str> = agent[1]["outcome"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tool_outputs = codex
        .requests()
        .last()
        .map(ResponsesRequest::tool_output_texts);
    assert_eq!(
        actions.len(),
        2,
        "{actions:?}\ntool outputs: {tool_outputs:?}"
    );
    assert_eq!(
        actions[0],
        format!("update {}", project.path.join("calculator.py").display())
    );
    // Codex reports the command as its shell ran it: `/bin/bash -c '…'`.
    assert!(
        actions[1].starts_with("ran `")
            && actions[1].contains("python3 -m pytest -q -p no:cacheprovider tests")
            && actions[1].ends_with("` (exit 0)"),
        "{actions:?}\ntool outputs: {tool_outputs:?}"
    );

    // The rule reached Codex inside the AGENTS.md block, and only in the second attempt.
    let requests = codex.requests();
    assert!(
        requests[0]
            .agents_md_block()
            .is_some_and(|b| b.contains("Run the tests with pytest.")),
        "the first request lacks the user's AGENTS.md"
    );
    assert!(!requests[0].text().contains(RULE_TEXT));
    assert!(
        requests[0]
            .tool_names()
            .contains(&"apply_patch".to_string())
    );
    let with_rule: Vec<&ResponsesRequest> = requests
        .iter()
        .filter(|r| r.text().contains(RULE_TEXT))
        .collect();
    assert_eq!(with_rule.len(), 3, "attempt 2 made three requests");
    for r in with_rule {
        assert!(
            r.agents_md_block().is_some_and(|b| b.contains(RULE_TEXT)),
            "the rule is not inside the AGENTS.md block"
        );
    }
    // Codex talked to nothing but the Responses endpoint.
    for r in codex.all_requests() {
        assert_eq!(r.path(), "/v1/responses", "{r:?}");
    }
    // The teacher saw the failing tests and Codex's diff.
    let lesson = anthropic.messages_requests()[0].text();
    assert!(lesson.contains("assert 0.0 is None"), "{lesson}");
    assert!(lesson.contains("return 0.0"), "{lesson}");
}

/// Gemini CLI as the agent: `replace` calls with absolute paths from its workspace.
fn gemini_agent(request: &GeminiRequest) -> GeminiReply {
    if !request.has_tools() {
        return GeminiReply::text("ok");
    }
    let file = format!("{}/calculator.py", request.cwd().unwrap_or_default());
    let replace = |old: &str, new: &str| {
        GeminiReply::call(
            "replace",
            json!({"file_path": file, "instruction": "fix the bug", "old_string": old, "new_string": new}),
        )
    };
    let knows_rule = request
        .gemini_md_block()
        .is_some_and(|block| block.contains(RULE_TEXT));
    match (knows_rule, request.function_responses()) {
        (false, 0) => replace(BUG_DIVIDE, "        return 0.0"),
        (true, 0) => replace(BUG_DIVIDE, "        return None"),
        (true, 1) => replace(BUG_AVERAGE, FIX_AVERAGE),
        _ => GeminiReply::text("Fixed the calculator."),
    }
}

#[test]
fn learned_rule_reaches_gemini_through_gemini_md_and_the_retry_passes() {
    let user_text = "# Gemini notes\n\nKeep answers short.\n";
    let project = project_with("GEMINI.md", user_text);
    let head = project.git(&["rev-parse", "HEAD"]);
    gemini_settings(project.home.path(), json!({}));
    let gemini = FakeGemini::start(gemini_agent);
    let anthropic = FakeAnthropic::start(teacher);
    let config = project.config(&format!(
        "agent:\n  kind: gemini\n\
         gemini:\n  command: {}\n  model: gemini-2.5-pro\n  timeout: 120\n\
         tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n\
         teacher:\n  mode: anthropic\n  timeout: 30\nlearning:\n  max_retries: 2\n",
        gemini_bin().display()
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
        .env("GEMINI_API_KEY", "test-key")
        .env("GOOGLE_GEMINI_BASE_URL", gemini.base_url())
        .env("ANTHROPIC_BASE_URL", anthropic.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run promptloop");
    let evs = assert_learned_and_passed(&project, &output, "GEMINI.md", user_text, &head);

    let agent = of_type(&evs, "agent.finished");
    assert_eq!(agent.len(), 2);
    assert_eq!(agent[0]["outcome"]["status"], "finished");
    assert_eq!(
        agent[1]["outcome"]["final_message"],
        "Fixed the calculator."
    );
    // Gemini CLI counts its requests: two in attempt 1, three in attempt 2.
    assert_eq!(agent[0]["outcome"]["turns"], 2);
    assert_eq!(agent[1]["outcome"]["turns"], 3);
    assert_eq!(
        agent[1]["outcome"]["usage"]["output_tokens"],
        3 * fake_gemini::CANDIDATE_TOKENS
    );
    assert_eq!(
        agent[1]["outcome"]["actions"],
        json!(["replace ×2 (0 failed)"])
    );

    let requests: Vec<GeminiRequest> = gemini
        .requests()
        .into_iter()
        .filter(GeminiRequest::has_tools)
        .collect();
    assert!(
        requests[0]
            .gemini_md_block()
            .is_some_and(|b| b.contains("Keep answers short.")),
        "the first request lacks the user's GEMINI.md"
    );
    assert!(!requests[0].text().contains(RULE_TEXT));
    let with_rule: Vec<&GeminiRequest> = requests
        .iter()
        .filter(|r| r.text().contains(RULE_TEXT))
        .collect();
    assert_eq!(with_rule.len(), 3, "attempt 2 made three requests");
    for r in with_rule {
        assert!(
            r.gemini_md_block().is_some_and(|b| b.contains(RULE_TEXT)),
            "the rule is not inside the GEMINI.md block"
        );
        assert_eq!(r.model(), "gemini-2.5-pro");
    }
    for r in gemini.all_requests() {
        assert!(
            r.path().starts_with("/v1beta/models/gemini-2.5-pro:"),
            "{r:?}"
        );
    }
}

/// Runs promptloop once (no retries, offline teacher) and returns the events, the human
/// output and the exit code.
fn run_once(
    project: &Project,
    config: &std::path::Path,
    env: &[(&str, String)],
    json: bool,
) -> (Vec<Value>, String, Option<i32>) {
    let mut cmd = project.promptloop();
    cmd.args(["run", "Fix the calculator", "--teacher", "offline", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(config)
        .timeout(Duration::from_secs(180));
    if json {
        cmd.arg("--json");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run promptloop");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let evs = if json { events(&output.stdout) } else { vec![] };
    (evs, text, output.status.code())
}

/// The one `agent.finished` outcome of a run that stopped on an API error; the work tree
/// and the user's files are as before, no tests ran, nothing was learned.
fn api_error_outcome(evs: &[Value], code: Option<i32>, all: &str) -> Value {
    assert_eq!(code, Some(1), "{all}");
    let agent = of_type(evs, "agent.finished");
    assert_eq!(agent.len(), 1, "{all}");
    assert!(of_type(evs, "tests.started").is_empty(), "{all}");
    assert!(of_type(evs, "rule.learned").is_empty(), "{all}");
    assert_eq!(of_type(evs, "run.finished")[0]["outcome"], "error");
    agent[0]["outcome"].clone()
}

#[test]
fn codex_api_errors_end_as_api_errors_a_user_understands() {
    for (status, message, hint) in [
        (
            429,
            "Rate limit reached for gpt-5.5",
            "rate limit or quota reached",
        ),
        (
            401,
            "Incorrect API key provided",
            "the model server refused the credentials",
        ),
    ] {
        let project = Project::calculator();
        let before = project.state();
        let codex = FakeOpenAi::start(move |_| OpenAiReply::error(status, message));
        let config = codex_config(&project, &codex, "");
        let env = [("FAKE_OPENAI_KEY", "k".to_string())];
        let (evs, all, code) = run_once(&project, &config, &env, true);
        let outcome = api_error_outcome(&evs, code, &all);
        assert_eq!(outcome["status"], "api_error", "{outcome}");
        assert_eq!(outcome["http_status"], status, "{outcome}");
        let text = outcome["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(hint), "{text}");
        assert!(text.contains("Codex CLI said:"), "{text}");
        assert_eq!(project.state(), before);
        // The human view says it in one line.
        let (_, human, code) = run_once(&project, &config, &env, false);
        assert_eq!(code, Some(1));
        assert!(
            human.contains(&format!("agent model API error {status}: {hint}")),
            "{human}"
        );
    }
}

#[test]
fn gemini_api_errors_end_as_api_errors_a_user_understands() {
    /// Status, the model server's answer, the hint promptloop gives, what Gemini CLI said.
    type Case = (u16, fn() -> GeminiReply, &'static str, &'static str);
    let cases: [Case; 2] = [
        (
            429,
            GeminiReply::daily_quota_exhausted,
            "rate limit or quota reached",
            "Quota exceeded",
        ),
        (
            401,
            || GeminiReply::error(401, "API key not valid. Please pass a valid API key."),
            "the model server refused the credentials",
            "API key not valid",
        ),
    ];
    for (status, reply, hint, said) in cases {
        let project = Project::calculator();
        gemini_settings(project.home.path(), json!({}));
        let before = project.state();
        let gemini = FakeGemini::start(move |_| reply());
        let config = project.config(&format!(
            "agent:\n  kind: gemini\ngemini:\n  command: {}\n  model: gemini-2.5-pro\n  timeout: 120\n\
             tests:\n  command: python3 -m pytest tests -q\n",
            gemini_bin().display()
        ));
        let env = [
            ("GEMINI_API_KEY", "k".to_string()),
            ("GOOGLE_GEMINI_BASE_URL", gemini.base_url()),
        ];
        let (evs, all, code) = run_once(&project, &config, &env, true);
        let outcome = api_error_outcome(&evs, code, &all);
        assert_eq!(outcome["status"], "api_error", "{outcome}");
        assert_eq!(outcome["http_status"], status, "{outcome}");
        let text = outcome["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(hint), "{text}");
        assert!(text.contains(said), "{text}");
        assert_eq!(project.state(), before);
    }
}

#[test]
fn gemini_turn_limit_is_max_turns_and_the_attempt_is_judged() {
    let project = Project::calculator();
    gemini_settings(
        project.home.path(),
        json!({"model": {"maxSessionTurns": 2}}),
    );
    // A model that never stops: a new shell command every turn.
    let gemini = FakeGemini::start(|r: &GeminiRequest| {
        GeminiReply::call(
            "run_shell_command",
            json!({"command": format!("echo turn {}", r.function_responses())}),
        )
    });
    let config = project.config(&format!(
        "agent:\n  kind: gemini\ngemini:\n  command: {}\n  model: gemini-2.5-pro\n  timeout: 120\n\
         tests:\n  command: python3 -m pytest tests -q\nlearning:\n  max_retries: 0\n",
        gemini_bin().display()
    ));
    let env = [
        ("GEMINI_API_KEY", "k".to_string()),
        ("GOOGLE_GEMINI_BASE_URL", gemini.base_url()),
    ];
    let (evs, all, code) = run_once(&project, &config, &env, true);
    assert_eq!(code, Some(1), "{all}");
    let agent = of_type(&evs, "agent.finished");
    assert_eq!(agent[0]["outcome"]["status"], "max_turns", "{all}");
    // Turns used up is the agent's own doing: its work is tested and learned from.
    assert_eq!(of_type(&evs, "tests.finished").len(), 1, "{all}");
    assert_eq!(of_type(&evs, "rule.learned").len(), 1, "{all}");
}

#[test]
fn claude_code_rate_limit_is_an_api_error() {
    let project = Project::calculator();
    let before = project.state();
    let server = FakeAnthropic::start(|_: &Request| {
        AnthropicReply::error(429, "Number of requests has exceeded your rate limit")
    });
    let config = project.config(&format!(
        "claude:\n  command: {}\n  permission_mode: acceptEdits\n  timeout: 120\n  env:\n    CLAUDE_CODE_MAX_RETRIES: 0\n\
         tests:\n  command: python3 -m pytest tests -q\n",
        claude_bin().display()
    ));
    let env = [
        ("ANTHROPIC_BASE_URL", server.base_url()),
        ("ANTHROPIC_API_KEY", "k".to_string()),
        ("DISABLE_TELEMETRY", "1".to_string()),
        ("DISABLE_ERROR_REPORTING", "1".to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
        ("DISABLE_AUTOUPDATER", "1".to_string()),
    ];
    let (evs, all, code) = run_once(&project, &config, &env, true);
    let outcome = api_error_outcome(&evs, code, &all);
    assert_eq!(outcome["status"], "api_error", "{outcome}");
    assert_eq!(outcome["http_status"], 429, "{outcome}");
    assert_eq!(project.state(), before);
}
