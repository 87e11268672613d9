//! `promptloop mcp` end to end: the real Claude Code CLI with the server registered by
//! `promptloop mcp install`, against a scripted model on 127.0.0.1 that calls
//! `mcp__promptloop__report_failure` and then `mcp__promptloop__search_rules`; and the
//! protocol itself, spoken by hand over the server's stdin and stdout (JSON-RPC, one message
//! per line), every tool with good and bad arguments, a slow teacher, a teacher that is
//! down, and several servers sharing one store.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Request};
use crate::support::{Project, claude_bin, stored_failures};

/// The rule the loopback teacher teaches, in its words.
const RULE: &str = "Extend the existing api_client module instead of writing a new HTTP client";

fn teacher_answer() -> String {
    format!(
        "Analysis: the agent duplicated infrastructure the project already had.\n\n\
         ### Integrations\n- **Rule**: {RULE}\n- **When**: Adding HTTP calls, retries or \
         timeouts anywhere in the project\n- **Why**: api_client already retries and logs; a \
         second client drifts from it\n"
    )
}

/// A clean environment for promptloop (as `Project::promptloop` sets it).
fn clean_env(cmd: &mut Command, dir: &Path, home: &Path) {
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_NOSYSTEM", "1");
}

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("promptloop")
}

/// An MCP client speaking JSON-RPC by hand to a `promptloop mcp` child process.
pub(crate) struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line the server wrote on stdout.
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
}

impl Client {
    fn start(project: &Project, args: &[&str], env: &[(&str, String)]) -> Client {
        Client::start_in(&project.path, project.home.path(), args, env)
    }

    pub(crate) fn start_in(
        dir: &Path,
        home: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Client {
        let mut cmd = Command::new(binary());
        clean_env(&mut cmd, dir, home);
        cmd.arg("mcp").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start promptloop mcp");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&all);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let err_seen = Arc::clone(&err);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut e = err_seen.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        let mut client = Client {
            stdin: child.stdin.take(),
            child,
            lines,
            stdout: all,
            stderr: err,
            next_id: 0,
        };
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "promptloop-test", "version": "1"}
            }),
        );
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            "promptloop",
            "{init}\nstderr: {}",
            client.stderr()
        );
        client.notify("notifications/initialized", json!({}));
        client
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to the server");
        stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response (the whole message).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let msg: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON-RPC on stdout ({e}): {line}"));
                    if msg["id"] == id {
                        return msg;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no answer to {method} in 60 s; stderr: {}", self.stderr())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed stdout; stderr: {}", self.stderr())
                }
            }
        }
    }

    /// Calls a tool; returns (is_error, the text of its content).
    fn call(&mut self, name: &str, arguments: Value) -> (bool, String) {
        let msg = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        let result = &msg["result"];
        assert!(result.is_object(), "{name}: no result: {msg}");
        let text = result["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (result["isError"] == true, text)
    }

    /// Calls a tool that must succeed; returns its JSON answer.
    pub(crate) fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, text) = self.call(name, arguments.clone());
        assert!(!is_error, "{name} {arguments}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"))
    }

    /// Calls a tool that must fail; returns its message.
    fn err(&mut self, name: &str, arguments: Value) -> String {
        let (is_error, text) = self.call(name, arguments.clone());
        assert!(is_error, "{name} {arguments} should fail: {text}");
        text
    }

    /// Closes stdin (the client goes away) and waits for the server to exit.
    pub(crate) fn finish(mut self) -> (i32, Vec<String>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit after stdin closed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.stdout.lock().unwrap().clone();
        (code, lines, self.stderr())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn offline_config(project: &Project) -> String {
    project
        .config("teacher:\n  mode: offline\n")
        .display()
        .to_string()
}

fn report(description: &str) -> Value {
    json!({
        "failure_type": "integration_error",
        "description": description,
        "context": "The project already has src/api_client.py with retries and logging",
        "task": "Add retries to the export job",
    })
}

// ---------------------------------------------------------------------------
// The real Claude Code

/// Arguments for Claude Code's MCP tools, by the tool results already in the request.
fn agent(request: &Request) -> Reply {
    match request.tool_results() {
        0 => Reply::tool(
            "mcp__promptloop__report_failure",
            json!({
                "failure_type": "integration_error",
                "description": "Wrote a second HTTP client in export.py instead of extending api_client",
                "context": "The project already has api_client.py with retries and logging",
                "task": "Add retries to the export job",
            }),
        ),
        1 => Reply::tool(
            "mcp__promptloop__search_rules",
            json!({"query": "add a timeout to the HTTP client", "paths": ["export.py"]}),
        ),
        _ => Reply::text("Reported the mistake and found the rule."),
    }
}

#[test]
fn claude_code_reports_a_failure_over_mcp_and_the_rule_it_searches_for_reaches_the_model() {
    let project = Project::new();
    project.write("api_client.py", "def get(url):\n    return url\n");
    project.write("export.py", "import api_client\n");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "code"]);
    let server = FakeAnthropic::start(|r: &Request| {
        if r.is_agent() {
            agent(r)
        } else {
            Reply::text(teacher_answer())
        }
    });
    let config = project.config("teacher:\n  mode: anthropic\n  timeout: 30\n");

    // Registered the way a user does it.
    let install = project
        .promptloop()
        .args([
            "mcp", "install", "--agent", "claude", "--scope", "project", "--config",
        ])
        .arg(&config)
        .output()
        .expect("mcp install");
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let mcp_json: Value = serde_json::from_str(&project.read(".mcp.json")).expect(".mcp.json");
    assert_eq!(mcp_json["mcpServers"]["promptloop"]["type"], "stdio");
    // Nothing else: headless (`-p`), Claude Code 2.1 starts a project's .mcp.json servers
    // without the approval an interactive session asks for once; the tools still need to be
    // allowed (without --allowedTools both calls end in `permission_denials`).
    let mut cmd = Command::new(claude_bin());
    clean_env(&mut cmd, &project.path, project.home.path());
    let output = cmd
        .args([
            "-p",
            "Report the mistake you made, then look up the rules for the HTTP client",
            "--output-format",
            "json",
            "--max-turns",
            "5",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "mcp__promptloop",
        ])
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "2")
        .stdin(Stdio::null())
        .output()
        .expect("run claude");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let agent_requests: Vec<Request> = server
        .messages_requests()
        .into_iter()
        .filter(Request::is_agent)
        .collect();
    let tools: Vec<String> = agent_requests
        .first()
        .map(|r| {
            r.body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        output.status.success(),
        "claude: {stdout}\n{stderr}\ntools: {tools:?}"
    );
    // MCP tools are offered as deferred tools (named in the context, loaded through
    // ToolSearch), or in `tools` when tool search is off.
    let first = agent_requests
        .first()
        .map(Request::text)
        .unwrap_or_default();
    for tool in [
        "report_failure",
        "search_rules",
        "list_rules",
        "get_rule",
        "rule_feedback",
    ] {
        let name = format!("mcp__promptloop__{tool}");
        assert!(
            tools.contains(&name) || first.contains(&name),
            "the model was not offered {name}: tools {tools:?}"
        );
    }
    // The server's instructions reached the model too.
    assert!(first.contains("call search_rules with the task"), "{first}");

    // The failure is stored, and learned into a rule.
    let failures = stored_failures(&project.path);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["status"], "learned");
    assert_eq!(failures[0]["context"]["failure_type"], "integration_error");
    let claude_md = project.read("CLAUDE.md");
    assert!(claude_md.contains(RULE), "{claude_md}");

    // The teacher saw the report.
    let lesson = server
        .messages_requests()
        .into_iter()
        .filter(|r| !r.is_agent())
        .map(|r| r.text())
        .find(|t| t.contains("second HTTP client"))
        .expect("the teacher was asked");
    assert!(lesson.contains("api_client.py"), "{lesson}");

    // The report's answer and then the search result reached the model.
    let results: Vec<(String, bool)> = agent_requests
        .last()
        .map(Request::tool_result_texts)
        .unwrap_or_default();
    assert_eq!(results.len(), 2, "{results:#?}");
    let (reported, report_error) = &results[0];
    assert!(!report_error, "{reported}");
    let reported: Value = serde_json::from_str(reported).expect("report answer is JSON");
    assert_eq!(reported["status"], "learned", "{reported}");
    let rule_id = reported["rule"]["id"]
        .as_str()
        .expect("rule id")
        .to_string();
    let (found, search_error) = &results[1];
    assert!(!search_error, "{found}");
    let found: Value = serde_json::from_str(found).expect("search answer is JSON");
    assert_eq!(found["rules"][0]["id"], rule_id.as_str(), "{found}");
    assert_eq!(found["rules"][0]["rule"], RULE);
    assert_eq!(found["rules"][0]["evidence"]["times_learned"], 1);

    // Uninstalled, the project is as before: .mcp.json was created by the install.
    let uninstall = project
        .promptloop()
        .args(["mcp", "uninstall", "--agent", "claude"])
        .output()
        .expect("mcp uninstall");
    assert!(uninstall.status.success());
    assert!(!project.path.join(".mcp.json").exists());
}

// ---------------------------------------------------------------------------
// The protocol, by hand

#[test]
fn every_tool_answers_good_arguments_and_refuses_bad_ones_with_a_message() {
    let project = Project::new();
    let config = offline_config(&project);
    let mut c = Client::start(&project, &["--config", &config], &[]);

    // The tools, each with a description and a schema.
    let listed = c.request("tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in [
        "report_failure",
        "search_rules",
        "list_rules",
        "get_rule",
        "rule_feedback",
    ] {
        let tool = tools.iter().find(|t| t["name"] == name).expect(name);
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 80),
            "{name}: {tool}"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}: {tool}");
    }
    let report_schema = &tools
        .iter()
        .find(|t| t["name"] == "report_failure")
        .unwrap()["inputSchema"];
    let required: Vec<&str> = report_schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["failure_type", "description"]);
    let schema_text = report_schema.to_string();
    for kind in [
        "planning_error",
        "integration_error",
        "workflow_error",
        "architecture_error",
        "scope_error",
        "config_error",
        "other",
    ] {
        assert!(schema_text.contains(kind), "{kind} missing: {schema_text}");
    }

    // report_failure: learned, written into CLAUDE.md; bad arguments refused.
    let learned = c.ok(
        "report_failure",
        report("Wrote a second HTTP client in export.py"),
    );
    assert_eq!(learned["status"], "learned", "{learned}");
    assert_eq!(learned["action"], "added");
    let id = learned["rule"]["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("r-"), "{id}");
    let rule_text = learned["rule"]["rule"].as_str().unwrap().to_string();
    assert!(project.read("CLAUDE.md").contains(&rule_text));
    let failures = stored_failures(&project.path);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["status"], "learned");
    assert_eq!(failures[0]["context"]["source"], "manual");
    let bad = c.err(
        "report_failure",
        json!({"failure_type": "style_error", "description": "x"}),
    );
    assert!(
        bad.contains("style_error") && bad.contains("planning_error"),
        "{bad}"
    );
    let bad = c.err("report_failure", json!({"failure_type": "other"}));
    assert!(bad.contains("description"), "{bad}");
    let bad = c.err(
        "report_failure",
        json!({"failure_type": "other", "description": "   "}),
    );
    assert!(bad.contains("description is empty"), "{bad}");
    let bad = c.err(
        "report_failure",
        json!({"failure_type": "other", "description": 5}),
    );
    assert!(bad.contains("invalid type"), "{bad}");
    let bad = c.err(
        "report_failure",
        json!({"failure_type": "other", "description": "x", "severity": "high"}),
    );
    assert!(bad.contains("severity"), "{bad}");
    assert_eq!(
        stored_failures(&project.path).len(),
        1,
        "a refused report stores nothing"
    );

    // search_rules: by words, by files, by category; bad limits refused.
    let found = c.ok(
        "search_rules",
        json!({"query": "retries for the export job's HTTP calls"}),
    );
    assert_eq!(found["rules"][0]["id"], id.as_str(), "{found}");
    assert_eq!(found["rules"][0]["evidence"]["times_learned"], 1);
    assert!(found["rules"][0]["score"].as_f64().unwrap() > 0.0);
    assert!(
        !found["rules"][0]["matched_terms"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let none = c.ok("search_rules", json!({"query": "kubernetes helm chart"}));
    assert_eq!(none["rules"], json!([]), "{none}");
    assert!(
        none["note"]
            .as_str()
            .unwrap()
            .contains("no active rule fits")
    );
    let by_category = c.ok("search_rules", json!({"category": "integration"}));
    assert_eq!(by_category["rules"][0]["id"], id.as_str(), "{by_category}");
    let no_category = c.ok("search_rules", json!({"category": "testing"}));
    assert_eq!(no_category["rules"], json!([]));
    let everything = c.ok("search_rules", json!({}));
    assert_eq!(everything["rules"].as_array().unwrap().len(), 1);
    let bad = c.err("search_rules", json!({"limit": 0}));
    assert!(bad.contains("limit must be between 1 and 50"), "{bad}");
    let bad = c.err("search_rules", json!({"limit": "many"}));
    assert!(bad.contains("invalid type"), "{bad}");
    let bad = c.err("search_rules", json!({"paths": "export.py"}));
    assert!(bad.contains("invalid type"), "{bad}");

    // list_rules and get_rule.
    let listed = c.ok("list_rules", json!({}));
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["rules"][0]["id"], id.as_str());
    let retired = c.ok("list_rules", json!({"status": "retired"}));
    assert_eq!(retired["count"], 0);
    let bad = c.err("list_rules", json!({"status": "deleted"}));
    assert!(bad.contains("deleted") && bad.contains("retired"), "{bad}");
    let rule = c.ok("get_rule", json!({"id": id}));
    assert_eq!(rule["rule"], rule_text.as_str());
    assert_eq!(rule["targets"], json!(["CLAUDE.md"]));
    assert_eq!(rule["learned_from"][0]["failure_type"], "integration_error");
    let prefix = &id[2..6];
    let by_prefix = c.ok("get_rule", json!({"id": prefix}));
    assert_eq!(by_prefix["id"], id.as_str());
    let bad = c.err("get_rule", json!({"id": "r-ffffff"}));
    assert!(bad.contains("no such rule"), "{bad}");
    let bad = c.err("get_rule", json!({}));
    assert!(bad.contains("id"), "{bad}");
    let bad = c.err("get_rule", json!({"id": ""}));
    assert!(bad.contains("the id is empty"), "{bad}");

    // rule_feedback: counted, logged, shown by get_rule; bad ones refused.
    let fb = c.ok(
        "rule_feedback",
        json!({"id": id, "helped": true, "note": "used api_client"}),
    );
    assert_eq!(fb["feedback"], json!({"helped": 1, "misled": 0}));
    let fb = c.ok("rule_feedback", json!({"id": id, "helped": false}));
    assert_eq!(fb["feedback"], json!({"helped": 1, "misled": 1}));
    let rule = c.ok("get_rule", json!({"id": id}));
    assert_eq!(rule["evidence"]["helped"], 1);
    assert_eq!(rule["evidence"]["misled"], 1);
    assert_eq!(rule["feedback"][1]["note"], "used api_client");
    let bad = c.err("rule_feedback", json!({"id": "r-ffffff", "helped": true}));
    assert!(bad.contains("no such rule"), "{bad}");
    let bad = c.err("rule_feedback", json!({"id": id, "helped": "yes"}));
    assert!(bad.contains("invalid type"), "{bad}");
    let bad = c.err("rule_feedback", json!({"id": id}));
    assert!(bad.contains("helped"), "{bad}");

    // The resource: every active rule as markdown.
    let resources = c.request("resources/list", json!({}));
    assert_eq!(
        resources["result"]["resources"][0]["uri"],
        "promptloop://rules/active"
    );
    let read = c.request(
        "resources/read",
        json!({"uri": "promptloop://rules/active"}),
    );
    let markdown = read["result"]["contents"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        markdown.starts_with("# Learned rules (1 active)"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("- **Rule**: {rule_text}")),
        "{markdown}"
    );
    assert!(markdown.contains(&id));
    let missing = c.request("resources/read", json!({"uri": "promptloop://rules/nope"}));
    assert!(
        missing["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no resource promptloop://rules/nope")),
        "{missing}"
    );

    // An unknown tool is a protocol error.
    let unknown = c.request("tools/call", json!({"name": "drop_rules", "arguments": {}}));
    assert!(unknown["error"].is_object(), "{unknown}");

    // Only protocol on stdout, and a clean exit when the client goes.
    let (code, lines, stderr) = c.finish();
    assert_eq!(code, 0, "{stderr}");
    for line in &lines {
        let msg: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(msg["jsonrpc"], "2.0", "{line}");
    }
    assert!(stderr.contains("stored"), "logs go to stderr: {stderr}");
}

#[test]
fn a_slow_teacher_gets_the_pending_id_at_once_and_the_rule_is_learned_in_the_background() {
    let project = Project::new();
    let teacher = FakeAnthropic::start(|_r: &Request| Reply::Delayed {
        delay: Duration::from_secs(4),
        reply: Box::new(Reply::text(teacher_answer())),
    });
    let config = project.config("teacher:\n  mode: anthropic\n  timeout: 30\n");
    let config = config.display().to_string();
    let env = [
        ("ANTHROPIC_BASE_URL", teacher.base_url()),
        ("ANTHROPIC_API_KEY", "test-key".to_string()),
    ];
    let mut c = Client::start(
        &project,
        &["--config", &config, "--wait-seconds", "1"],
        &env,
    );
    let started = Instant::now();
    let pending = c.ok("report_failure", report("Wrote a second HTTP client"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it waited for the teacher"
    );
    assert_eq!(pending["status"], "pending", "{pending}");
    let failure_id = pending["failure_id"]
        .as_str()
        .expect("failure id")
        .to_string();
    assert!(pending["note"].as_str().unwrap().contains("background"));
    // Stored before the teacher answered.
    let failures = stored_failures(&project.path);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["context"]["id"], failure_id.as_str());
    assert_eq!(failures[0]["status"], "pending");
    // The server keeps serving meanwhile, and the rule arrives when the teacher answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = c.ok("list_rules", json!({}));
        if listed["count"] == 1 {
            assert_eq!(listed["rules"][0]["rule"], RULE);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rule after 30 s: {}",
            c.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stored_failures(&project.path)[0]["status"], "learned");
    assert!(project.read("CLAUDE.md").contains(RULE));
    let (code, _, stderr) = c.finish();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_teacher_that_is_down_keeps_the_report_pending_for_learn() {
    let project = Project::new();
    // Nothing listens on port 9 of loopback: the connection is refused at once.
    let config = project
        .config("teacher:\n  mode: anthropic\n  base_url: http://127.0.0.1:9\n  timeout: 3\n");
    let config_arg = config.display().to_string();
    let env = [("ANTHROPIC_API_KEY", "test-key".to_string())];
    let mut c = Client::start(&project, &["--config", &config_arg], &env);
    let pending = c.ok("report_failure", report("Wrote a second HTTP client"));
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(
        pending["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{pending}"
    );
    assert!(
        pending["note"]
            .as_str()
            .unwrap()
            .contains("promptloop learn")
    );
    let (code, _, stderr) = c.finish();
    assert_eq!(code, 0, "{stderr}");
    let failures = stored_failures(&project.path);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["status"], "pending");
    // `promptloop learn` completes it later, with a teacher that answers.
    let learned = project
        .promptloop()
        .args(["learn", "--teacher", "offline"])
        .output()
        .expect("learn");
    assert!(
        learned.status.success(),
        "{}",
        String::from_utf8_lossy(&learned.stderr)
    );
    assert_eq!(stored_failures(&project.path)[0]["status"], "learned");
}

#[test]
fn several_servers_share_one_store_without_losing_a_report_or_a_feedback() {
    let project = Project::new();
    let config = offline_config(&project);
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let path = project.path.clone();
            let home = project.home.path().to_path_buf();
            let config = config.clone();
            std::thread::spawn(move || {
                // Each thread is one agent session with its own server.
                let mut c = Client::start_in(&path, &home, &["--config", &config], &[]);
                let mut ids = Vec::new();
                for n in 0..2 {
                    let answer = c.ok(
                        "report_failure",
                        json!({
                            "failure_type": "planning_error",
                            "description": format!("Session {i} report {n}: planned module{i}{n} from scratch"),
                            "context": format!("module{i}{n} already existed under lib/module{i}{n}"),
                        }),
                    );
                    let id = answer["rule"]["id"].as_str().expect("rule id").to_string();
                    c.ok("rule_feedback", json!({"id": id, "helped": true}));
                    ids.push(id);
                }
                let (code, _, stderr) = c.finish();
                assert_eq!(code, 0, "{stderr}");
                ids
            })
        })
        .collect();
    let mut ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("session"))
        .collect();
    ids.sort();
    ids.dedup();
    let failures = stored_failures(&project.path);
    assert_eq!(failures.len(), 6, "{failures:#?}");
    assert!(failures.iter().all(|f| f["status"] == "learned"));
    let mut c = Client::start(&project, &["--config", &config], &[]);
    let listed = c.ok("list_rules", json!({}));
    let stored: Vec<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for id in &ids {
        assert!(
            stored.contains(&id.as_str()),
            "{id} missing from {stored:?}"
        );
        let rule = c.ok("get_rule", json!({"id": id}));
        assert!(rule["evidence"]["helped"].as_u64().unwrap() >= 1, "{rule}");
    }
    let integrity = rusqlite::Connection::open(project.path.join(".promptloop/promptloop.db"))
        .expect("open db")
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity check");
    assert_eq!(integrity, "ok");
}

#[test]
fn reading_creates_no_record_and_a_report_outside_a_project_is_refused() {
    // A server the agent CLI starts in every folder (user scope) leaves no trace where
    // nothing is reported.
    let project = Project::new();
    let config = offline_config(&project);
    let mut c = Client::start(&project, &["--config", &config], &[]);
    let found = c.ok("search_rules", json!({"query": "anything"}));
    assert_eq!(found["searched"], 0);
    assert_eq!(c.ok("list_rules", json!({}))["count"], 0);
    let read = c.request(
        "resources/read",
        json!({"uri": "promptloop://rules/active"}),
    );
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("# Learned rules (0 active)"))
    );
    let (code, _, stderr) = c.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(!project.path.join(".promptloop").exists());
    assert!(!project.read(".git/info/exclude").contains(".promptloop"));

    let plain = tempfile::tempdir().expect("temp dir");
    let mut c = Client::start_in(
        plain.path(),
        project.home.path(),
        &["--config", &config],
        &[],
    );
    let refused = c.err("report_failure", report("Wrote a second HTTP client"));
    assert!(refused.contains("is not a project"), "{refused}");
    drop(c);
    assert!(!plain.path().join(".promptloop").exists());
}

#[test]
fn a_store_error_is_a_tool_error_and_the_server_keeps_serving() {
    let project = Project::new();
    let config = offline_config(&project);
    let mut c = Client::start(&project, &["--config", &config], &[]);
    let learned = c.ok("report_failure", report("Wrote a second HTTP client"));
    let id = learned["rule"]["id"].as_str().unwrap().to_string();
    // Another promptloop, newer than this one, takes the store over.
    let db = project.path.join(".promptloop/promptloop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    for (tool, args) in [
        ("list_rules", json!({})),
        ("search_rules", json!({"query": "http client"})),
        ("get_rule", json!({"id": id})),
        ("rule_feedback", json!({"id": id, "helped": true})),
        ("report_failure", report("Another one")),
    ] {
        let message = c.err(tool, args);
        assert!(message.contains("newer than"), "{tool}: {message}");
    }
    // Still serving; the store is untouched and whole.
    let listed = c.request("tools/list", json!({}));
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(5));
    let (code, _, stderr) = c.finish();
    assert_eq!(code, 0, "{stderr}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 999);
    let feedback: i64 = conn
        .query_row("SELECT COUNT(*) FROM rule_feedback", [], |r| r.get(0))
        .unwrap();
    assert_eq!(feedback, 0);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
