//! The `command` agent (any CLI through a shell template) with small script agents: one that
//! learns through its rules file, one that exits non-zero, one that hangs with children (all
//! killed at the timeout), and missing programs refused before anything runs. Also `--agent`
//! and `learn --agent`, which pick the default rules file.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, events, of_type};

const RULE_TEXT: &str = "Return None, not 0, from safe_divide when the divisor is zero";

fn teacher(_request: &Request) -> Reply {
    Reply::text(format!(
        "- **Rule**: {RULE_TEXT}, and use true division (/) in average.\n\
         - **When**: Writing safe_* helpers or averages\n\
         - **Why**: 0 looks like a valid result and // drops the fraction.\n"
    ))
}

/// Writes an executable script into the project's private home and returns its path.
fn script(project: &Project, name: &str, body: &str) -> PathBuf {
    let path = project.home.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A script agent: it fixes both bugs only when its rules file holds the rule, otherwise
/// only the first one, and wrongly. It also records the task and directory it was given.
const LEARNING_AGENT: &str = r#"
rules="$RULES_FILE"
printf '%s\n%s\n' "$1" "$2" > "$HOME/args.txt"
if grep -q "Return None, not 0" "$rules" 2>/dev/null; then
  python3 - <<'EOF'
import pathlib
p = pathlib.Path("calculator.py")
s = p.read_text()
s = s.replace("return 0  # bug: 0 looks like a valid result", "return None")
s = s.replace("sum(numbers) // len(numbers)", "sum(numbers) / len(numbers)")
p.write_text(s)
EOF
  echo "Fixed both, as the rules say."
else
  sed -i 's/return 0  # bug.*/return 0.0/' calculator.py
  echo "Fixed safe_divide."
fi
"#;

#[test]
fn a_script_agent_learns_through_its_rules_file() {
    let project = Project::calculator();
    let agent = script(&project, "agent.sh", LEARNING_AGENT);
    let server = FakeAnthropic::start(teacher);
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {} {{task}} {{project_dir}}\n  rules_file: docs/AI-RULES.md\n  \
         timeout: 30\n  env:\n    RULES_FILE: docs/AI-RULES.md\n\
         tests:\n  command: python3 -m pytest tests -q\n\
         teacher:\n  mode: anthropic\nlearning:\n  max_retries: 2\n",
        agent.display()
    ));
    let task = "Fix the calculator's 'safe' helpers; don't break $HOME or `id`";
    let output = project
        .promptloop()
        .args(["run", task, "--json", "-d"])
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
        Some(0),
        "{}\n{evs:#?}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(of_type(&evs, "run.finished")[0]["attempts"], 2);
    let agent_events = of_type(&evs, "agent.finished");
    assert_eq!(agent_events[0]["outcome"]["status"], "finished");
    assert_eq!(
        agent_events[0]["outcome"]["final_message"],
        "Fixed safe_divide."
    );
    assert_eq!(
        agent_events[1]["outcome"]["final_message"],
        "Fixed both, as the rules say."
    );
    // The rule went to the configured file, not to CLAUDE.md or AGENTS.md.
    let rules = project.read("docs/AI-RULES.md");
    assert!(
        rules.contains(&format!("- **Rule**: {RULE_TEXT}")),
        "{rules}"
    );
    assert!(!project.path.join("CLAUDE.md").exists());
    assert!(!project.path.join("AGENTS.md").exists());
    // The placeholders arrived as single arguments, quotes and `$` untouched.
    let args = std::fs::read_to_string(project.home.path().join("args.txt")).expect("args");
    assert_eq!(args, format!("{task}\n{}\n", project.path.display()));
}

#[test]
fn a_script_agent_that_exits_non_zero_is_a_failed_attempt_with_its_reason() {
    let project = Project::calculator();
    let agent = script(
        &project,
        "crash.sh",
        "sed -i 's/return 0  # bug.*/return 0.0/' calculator.py\n\
         echo 'agent: out of ideas, giving up' >&2\nexit 3\n",
    );
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {} {{task}}\n\
         tests:\n  command: python3 -m pytest tests -q\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let output = project
        .promptloop()
        .args(["run", "Fix it", "--json", "--teacher", "offline", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    let outcome = &of_type(&evs, "agent.finished")[0]["outcome"];
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert_eq!(
        outcome["reason"],
        "exit code 3: agent: out of ideas, giving up"
    );
    // Its half-done work is still judged: tests ran and a rule was learned (into
    // AGENTS.md, the command agent's default file).
    assert_eq!(changed(&evs), ["calculator.py"]);
    assert_eq!(of_type(&evs, "tests.finished").len(), 1);
    assert_eq!(of_type(&evs, "rule.learned").len(), 1);
    assert!(
        project
            .read("AGENTS.md")
            .contains("## Learned Rules & Patterns")
    );
}

/// Whether a process is gone (or a zombie nobody reaped yet, which runs no code).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn a_hanging_agent_is_killed_at_its_timeout_with_its_children() {
    let project = Project::calculator();
    let code_before = project.read("calculator.py");
    let pids = project.home.path().join("pids");
    // Two children and a grandchild that ignore nothing and would sleep for five minutes;
    // the agent itself waits for them.
    let agent = script(
        &project,
        "hang.sh",
        &format!(
            "printf 'partial' >> calculator.py\n\
             sleep 300 & echo $! >> {pids}\n\
             sh -c 'sleep 300 & echo $! >> {pids}; wait' & echo $! >> {pids}\n\
             echo $$ >> {pids}\n\
             wait\n",
            pids = pids.display()
        ),
    );
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {}\n  timeout: 2\n\
         tests:\n  command: python3 -m pytest tests -q\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let started = Instant::now();
    let output = project
        .promptloop()
        .args(["run", "Fix it", "--json", "--teacher", "offline", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    let elapsed = started.elapsed();
    let outcome = &of_type(&evs, "agent.finished")[0]["outcome"];
    assert_eq!(outcome["status"], "timed_out", "{evs:#?}");
    let ms = outcome["duration_ms"].as_u64().unwrap_or(0);
    assert!((2000..10_000).contains(&ms), "agent ran {ms} ms");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .expect("pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 4, "{pids:?}");
    // Give init a moment to reap the orphans; they must already have been killed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|p| dead(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &pids {
        assert!(dead(*pid), "process {pid} survived the timeout");
    }
    // The attempt was judged and undone like any other.
    assert_eq!(changed(&evs), ["calculator.py"]);
    assert_eq!(of_type(&evs, "tests.finished").len(), 1);
    assert_eq!(project.read("calculator.py"), code_before);
}

#[test]
fn missing_agent_programs_are_refused_before_the_run_with_the_install_command() {
    let project = Project::calculator();
    let before = project.state();
    for (config, expected) in [
        (
            "agent:\n  kind: codex\ncodex:\n  command: /nonexistent/codex\n",
            "error: find the agent `/nonexistent/codex`: not on PATH; install it with \
             `npm install -g @openai/codex` or set `codex.command`",
        ),
        (
            "agent:\n  kind: gemini\ngemini:\n  command: no-such-gemini\n",
            "error: find the agent `no-such-gemini`: not on PATH; install it with \
             `npm install -g @google/gemini-cli` or set `gemini.command`",
        ),
        (
            "agent:\n  kind: command\n  command: no-such-agent --message {task}\n",
            "error: find `no-such-agent`, the program `agent.command` starts: not on PATH; \
             install it or fix `agent.command`",
        ),
        (
            "agent:\n  kind: command\n",
            "agent.kind: the command agent needs agent.command",
        ),
    ] {
        let config = project.config(config);
        let output = project
            .promptloop()
            .args(["run", "Fix it", "-d"])
            .arg(&project.path)
            .arg("--config")
            .arg(&config)
            .timeout(Duration::from_secs(30))
            .output()
            .expect("run promptloop");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!project.path.join(".promptloop/runs").exists());
        assert_eq!(project.state(), before);
    }
    // --agent picks the agent over the config, and is checked like agent.kind.
    let config = project.config("claude:\n  command: /nonexistent/claude\n");
    let output = project
        .promptloop()
        .args(["run", "Fix it", "--agent", "gemini", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run promptloop");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("npm install -g @google/gemini-cli"),
        "{stderr}"
    );
    let output = project
        .promptloop()
        .args(["run", "Fix it", "--agent", "cursor", "-d"])
        .arg(&project.path)
        .output()
        .expect("run promptloop");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(
        "--agent: unknown value \"cursor\", expected one of: claude (alias claude-code), \
             codex, gemini (alias gemini-cli), command"
    ));
}

#[test]
fn learn_with_an_agent_writes_to_that_agents_file() {
    let project = Project::calculator();
    // No teacher available: the failure is kept as pending.
    let agent = script(&project, "noop.sh", "echo nothing to do\n");
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: {}\n\
         tests:\n  command: python3 -m pytest tests -q\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let output = project
        .promptloop()
        .args(["run", "Fix it", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    assert_eq!(of_type(&evs, "failure.pending").len(), 1, "{evs:#?}");
    let output = project
        .promptloop()
        .args([
            "learn",
            "--agent",
            "gemini",
            "--teacher",
            "offline",
            "--json",
            "-d",
        ])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run promptloop learn");
    let evs = events(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{evs:#?}");
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(
        learned[0]["files"],
        json!([project.path.join("GEMINI.md").display().to_string()])
    );
    assert!(project.read("GEMINI.md").contains("- **Rule**: "));
    assert!(!project.path.join("AGENTS.md").exists());
}

/// The `agent.finished` event's changed files, for tests that need them.
fn changed(evs: &[Value]) -> Vec<String> {
    of_type(evs, "agent.finished")
        .first()
        .and_then(|e| e["changed_files"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A stand-in `codex` that records its environment and arguments and ends its turn.
const FAKE_CODEX: &str = r#"
printf '%s' "${CODEX_HOME-unset}" > "$HOME/codex-home.txt"
printf '%s\n' "$@" > "$HOME/codex-args.txt"
echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"turn.started"}'
echo '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"nothing to do"}}'
echo '{"type":"turn.completed","usage":{"input_tokens":7,"output_tokens":3}}'
"#;

#[test]
fn codex_home_is_added_only_when_the_user_has_none() {
    let project = Project::calculator();
    let codex = script(&project, "codex", FAKE_CODEX);
    let private_home = project.home.path().join("codex-home");
    let config = project.config(&format!(
        "agent:\n  kind: codex\ncodex:\n  command: {}\n  home: {}\n  model: gpt-5.5\n  \
         extra_args: [--profile, ci]\n  env:\n    EXTRA_SETTING: on\n\
         tests:\n  command: python3 -m pytest tests -q\nlearning:\n  max_retries: 0\n",
        codex.display(),
        private_home.display()
    ));
    let run = |user_home: Option<&str>| {
        let mut cmd = project.promptloop();
        cmd.args(["run", "--json", "--teacher", "offline", "-d"])
            .arg(&project.path)
            .arg("--config")
            .arg(&config)
            .args(["--", "-v means verbose"]);
        if let Some(home) = user_home {
            cmd.env("CODEX_HOME", home);
        }
        let output = cmd.output().expect("run promptloop");
        let evs = events(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let agent = of_type(&evs, "agent.finished");
        assert_eq!(agent.len(), 1, "{stderr}\n{evs:#?}");
        let outcome = agent[0]["outcome"].clone();
        assert_eq!(outcome["status"], "finished", "{outcome:#}\n{stderr}");
        assert_eq!(outcome["final_message"], "nothing to do");
        assert_eq!(outcome["session_id"], "t1");
        assert_eq!(
            outcome["usage"],
            json!({"input_tokens": 7, "output_tokens": 3})
        );
        std::fs::read_to_string(project.home.path().join("codex-home.txt")).expect("home")
    };
    assert_eq!(run(None), private_home.display().to_string());
    assert_eq!(run(Some("/users/own/codex")), "/users/own/codex");
    let args = std::fs::read_to_string(project.home.path().join("codex-args.txt")).expect("args");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "--ephemeral",
            "--disable",
            "plugins",
            "--disable",
            "unbounded_connection_retries",
            "-m",
            "gpt-5.5",
            "--profile",
            "ci",
            "--",
            "-v means verbose"
        ]
    );
}
