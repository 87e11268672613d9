//! Every teacher against a server on 127.0.0.1 speaking its real protocol: the Anthropic
//! Messages API (support/fake_anthropic.rs), an OpenAI-compatible chat API and the n8n webhook
//! as the shipped workflow answers it (support/loopback.rs), and Claude Code itself as teacher
//! (the real CLI from npm, pointed at the fake Anthropic server).
//!
//! Each teacher learns a rule from a real test failure and from every manual failure type,
//! and the request it sends carries the prompt written for that type. The HTTP teachers
//! retry 429/529/500 and honour `retry-after`, and give up at once on 401 with a message
//! that says what to fix. A teacher that does not answer in time leaves the failure pending,
//! and `promptloop learn` completes it later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use promptloop::teacher::prompt::builtin_system;
use serde_json::{Value, json};

use crate::redaction::{corpus_files, corpus_secrets, leaks};
use crate::support::fake_anthropic::{self, FakeAnthropic, Reply, Request};
use crate::support::teacher_loopback::{self, Answer, Hit, Loopback, N8n};
use crate::support::{Project, claude_bin, events, fake_agent, of_type};

/// The seven types a person can report.
pub const MANUAL_TYPES: [&str; 7] = [
    "planning_error",
    "integration_error",
    "workflow_error",
    "architecture_error",
    "scope_error",
    "config_error",
    "other",
];

/// Every built-in prompt name (`default` aside).
const PROMPTS: [&str; 8] = [
    "test_failure_system",
    "planning_error_system",
    "integration_error_system",
    "workflow_error_system",
    "architecture_error_system",
    "scope_error_system",
    "config_error_system",
    "other_system",
];

/// The teachers that speak to a server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Anthropic,
    OpenAi,
    Webhook,
    ClaudeCli,
}

/// What the scripted model does with one question.
pub enum Behaviour {
    /// Answers this text.
    Text(String),
    /// An HTTP error, with a `retry-after` header when given.
    Error(u16, Option<u64>),
    /// Answers only after this long (past every deadline in these tests).
    Hang,
}

/// One question as the model received it.
#[derive(Clone, Debug)]
pub struct Asked {
    /// The system prompt.
    pub system: String,
    /// The user message.
    pub user: String,
    /// The whole request body, as sent (for the redaction checks).
    pub body: String,
}

type Model = dyn Fn(&str, &str, usize) -> Behaviour + Send + Sync;

/// A teacher's server, scripted by a model function `(system, user, n) -> Behaviour`
/// where `n` counts the teacher's questions from 0.
pub struct Server {
    kind: Kind,
    anthropic: Option<FakeAnthropic>,
    http: Option<Loopback>,
    /// When each of the teacher's questions arrived.
    times: Arc<std::sync::Mutex<Vec<Instant>>>,
}

const TOKEN: &str = "n8n-test-token";

impl Server {
    /// A server whose agent turns (Claude Code as agent, in the claude-cli runs) give up at
    /// once, so the project's tests fail as they are.
    pub fn start(
        kind: Kind,
        model: impl Fn(&str, &str, usize) -> Behaviour + Send + Sync + 'static,
    ) -> Server {
        Server::start_with_agent(kind, model, |_: &Request| {
            Reply::text("I looked at the code and changed nothing.")
        })
    }

    /// A server with a scripted agent for Claude Code's agent turns.
    pub fn start_with_agent(
        kind: Kind,
        model: impl Fn(&str, &str, usize) -> Behaviour + Send + Sync + 'static,
        agent: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&times);
        let inner: Arc<Model> = Arc::new(model);
        // Every protocol's question passes here first: its arrival is recorded.
        let model = move |system: &str, user: &str, n: usize| {
            recorded.lock().unwrap().push(Instant::now());
            inner(system, user, n)
        };
        let count = Arc::new(AtomicUsize::new(0));
        match kind {
            Kind::Anthropic | Kind::ClaudeCli => {
                let server = FakeAnthropic::start(move |r: &Request| {
                    if r.is_agent() {
                        return agent(r);
                    }
                    let (system, user) = anthropic_prompts(r);
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    match model(&system, &user, n) {
                        Behaviour::Text(text) => Reply::text(text),
                        Behaviour::Error(status, retry_after) => {
                            let mut reply = Reply::error(status, format!("scripted {status}"));
                            if let Reply::Error {
                                retry_after: ra, ..
                            } = &mut reply
                            {
                                *ra = retry_after;
                            }
                            reply
                        }
                        Behaviour::Hang => Reply::Delayed {
                            delay: Duration::from_secs(30),
                            reply: Box::new(Reply::text("too late")),
                        },
                    }
                });
                Server {
                    kind,
                    anthropic: Some(server),
                    http: None,
                    times,
                }
            }
            Kind::OpenAi => {
                let server = Loopback::start(move |hit: &Hit| {
                    if hit.path_and_query != "/v1/chat/completions" {
                        return teacher_loopback::openai_error(404, "no such route");
                    }
                    let (system, user) = teacher_loopback::openai_prompts(hit);
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    match model(&system, &user, n) {
                        Behaviour::Text(text) => teacher_loopback::openai_reply(hit, &text),
                        Behaviour::Error(status, retry_after) => {
                            let answer = teacher_loopback::openai_error(
                                status,
                                &format!("scripted {status}"),
                            );
                            match retry_after {
                                Some(s) => answer.header("retry-after", &s.to_string()),
                                None => answer,
                            }
                        }
                        Behaviour::Hang => teacher_loopback::openai_reply(hit, "too late")
                            .after(Duration::from_secs(30)),
                    }
                });
                Server {
                    kind,
                    anthropic: None,
                    http: Some(server),
                    times: Arc::clone(&times),
                }
            }
            Kind::Webhook => {
                let server = teacher_loopback::n8n(Some(TOKEN), move |_hit, system, user| {
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    match model(system, user, n) {
                        Behaviour::Text(text) => N8n::Model(text),
                        Behaviour::Error(status, retry_after) => {
                            let answer = Answer::json(
                                status,
                                json!({"code": status, "message": format!("scripted {status}")}),
                            );
                            N8n::Answer(match retry_after {
                                Some(s) => answer.header("retry-after", &s.to_string()),
                                None => answer,
                            })
                        }
                        Behaviour::Hang => N8n::Answer(
                            Answer::json(200, json!({"rule": "too late"}))
                                .after(Duration::from_secs(30)),
                        ),
                    }
                });
                Server {
                    kind,
                    anthropic: None,
                    http: Some(server),
                    times: Arc::clone(&times),
                }
            }
        }
    }

    /// The config for this teacher, with `timeout` seconds as its deadline, and the fake
    /// agent (or, for claude-cli, Claude Code itself) as agent.
    pub fn config(&self, project: &Project, timeout: u64) -> std::path::PathBuf {
        let agent = fake_agent(project.home.path());
        let common = "tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\nlearning:\n  max_retries: 0\n";
        let yaml = match self.kind {
            Kind::Anthropic => format!(
                "teacher:\n  mode: anthropic\n  model: claude-sonnet-4-5\n  timeout: {timeout}\nclaude:\n  command: {}\n{common}",
                agent.display()
            ),
            Kind::OpenAi => format!(
                "teacher:\n  mode: openai\n  model: qwen2.5-coder:14b\n  base_url: {}/v1\n  timeout: {timeout}\nclaude:\n  command: {}\n{common}",
                self.base_url(),
                agent.display()
            ),
            Kind::Webhook => format!(
                "teacher:\n  mode: webhook\nn8n:\n  webhook_url: {}/webhook/prompt-learning-teacher\n  timeout: {timeout}\n  bearer_token_env: PROMPTLOOP_N8N_TOKEN\nclaude:\n  command: {}\n{common}",
                self.base_url(),
                agent.display()
            ),
            Kind::ClaudeCli => format!(
                "teacher:\n  mode: claude-cli\n  model: claude-sonnet-4-5\n  timeout: {timeout}\nclaude:\n  command: {}\n  permission_mode: acceptEdits\n  allowed_tools: [\"Bash(python3:*)\"]\n  max_turns: 4\n{common}",
                claude_bin().display()
            ),
        };
        project.config(&yaml)
    }

    /// The server's base URL.
    pub fn base_url(&self) -> String {
        match (&self.anthropic, &self.http) {
            (Some(a), _) => a.base_url(),
            (_, Some(h)) => h.base_url(),
            _ => unreachable!(),
        }
    }

    /// promptloop in `project`, with the environment this teacher needs.
    pub fn promptloop(&self, project: &Project) -> assert_cmd::Command {
        let mut cmd = project.promptloop();
        cmd.env("ANTHROPIC_BASE_URL", self.base_url())
            .env("ANTHROPIC_API_KEY", "test-anthropic-key")
            .env("OPENAI_API_KEY", "test-openai-key")
            .env("PROMPTLOOP_N8N_TOKEN", TOKEN)
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", "1")
            .timeout(Duration::from_secs(240));
        cmd
    }

    /// The teacher's questions so far.
    pub fn asked(&self) -> Vec<Asked> {
        if let Some(server) = &self.anthropic {
            return server
                .messages_requests()
                .iter()
                .filter(|r| !r.is_agent())
                .map(|r| {
                    let (system, user) = anthropic_prompts(r);
                    Asked {
                        system,
                        user,
                        body: r.body.to_string(),
                    }
                })
                .collect();
        }
        let server = self.http.as_ref().expect("server");
        server
            .requests()
            .into_iter()
            .map(|hit| {
                let (system, user) = match self.kind {
                    Kind::OpenAi => teacher_loopback::openai_prompts(&hit),
                    _ => {
                        let run = teacher_loopback::run_n8n_workflow(&hit.body, "");
                        (run.system, run.user)
                    }
                };
                Asked {
                    system,
                    user,
                    body: hit.raw.clone(),
                }
            })
            .collect()
    }

    /// Arrival times of the teacher's requests.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.times.lock().unwrap().clone()
    }
}

/// The system prompt and the user text of a Messages request (Claude Code sends the system
/// prompt as a list of blocks and adds blocks of its own to the messages).
fn anthropic_prompts(r: &Request) -> (String, String) {
    let mut system = String::new();
    match &r.body["system"] {
        Value::String(s) => system.push_str(s),
        Value::Array(blocks) => {
            for b in blocks {
                if let Some(t) = b["text"].as_str() {
                    system.push_str(t);
                    system.push('\n');
                }
            }
        }
        _ => {}
    }
    let mut user = String::new();
    for m in r.body["messages"].as_array().into_iter().flatten() {
        match &m["content"] {
            Value::String(s) => user.push_str(s),
            Value::Array(blocks) => {
                for b in blocks {
                    if let Some(t) = b["text"].as_str() {
                        user.push_str(t);
                        user.push('\n');
                    }
                }
            }
            _ => {}
        }
    }
    (system, user)
}

/// The built-in prompt a system prompt contains, by name.
pub fn prompt_in(system: &str) -> Option<&'static str> {
    let found: Vec<&'static str> = PROMPTS
        .iter()
        .copied()
        .filter(|name| system.contains(&builtin_system(name).expect("built-in")))
        .collect();
    assert!(
        found.len() <= 1,
        "several prompts in one request: {found:?}"
    );
    found.first().copied()
}

/// A model that answers with a rule naming the prompt it was given, so the rule in the file
/// shows the routing too.
pub fn naming_model(system: &str, _user: &str, _n: usize) -> Behaviour {
    Behaviour::Text(answer_for(prompt_in(system).unwrap_or("unknown_prompt")))
}

pub fn answer_for(prompt: &str) -> String {
    format!(
        "Analysis: the agent did not check what {prompt} is about before it acted.\n\n\
         ### Checks\n\
         - **Rule**: Check the evidence named by {prompt} before finishing the task.\n\
         - **When**: Finishing a task in this project.\n\
         - **Why**: The last attempt skipped that check and failed.\n"
    )
}

fn manual_report(
    server: &Server,
    project: &Project,
    config: &std::path::Path,
    kind: &str,
) -> assert_cmd::assert::Assert {
    server
        .promptloop(project)
        .args(["report-failure", "-f", kind])
        .args([
            "-D",
            &format!("The agent made a {kind} while wiring the billing export."),
        ])
        .args([
            "-C",
            "It should have read docs/billing.md and the existing exporter first.",
        ])
        .args(["-T", "Add a CSV export of invoices"])
        .arg("-c")
        .arg(config)
        .assert()
}

/// The whole round for one teacher: a test failure from `promptloop run`, then every manual
/// type through `report-failure`; each rule in CLAUDE.md, each request with its prompt.
fn learns_from_every_failure_type(kind: Kind) {
    let project = Project::calculator();
    let server = Server::start(kind, naming_model);
    let config = server.config(&project, 120);

    let out = server
        .promptloop(&project)
        .args([
            "run",
            "Fix the calculator so its tests pass",
            "--json",
            "-c",
        ])
        .arg(&config)
        .output()
        .expect("run");
    let evs = events(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{kind:?}: {}\n{evs:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let learned = of_type(&evs, "rule.learned");
    assert_eq!(learned.len(), 1, "{kind:?}: {evs:#?}");
    let asked = server.asked();
    assert_eq!(asked.len(), 1, "{kind:?}");
    assert_eq!(
        prompt_in(&asked[0].system),
        Some("test_failure_system"),
        "{kind:?}"
    );
    assert!(
        asked[0]
            .user
            .contains("test_safe_divide_by_zero_returns_none"),
        "{kind:?}: the failing test is missing: {}",
        asked[0].user
    );
    let claude_md = project.read("CLAUDE.md");
    assert!(
        claude_md.contains("- **Rule**: Check the evidence named by test_failure_system"),
        "{kind:?}: {claude_md}"
    );
    assert!(claude_md.contains("from test failure · r-"), "{claude_md}");

    for (i, failure_type) in MANUAL_TYPES.iter().enumerate() {
        manual_report(&server, &project, &config, failure_type).success();
        let asked = server.asked();
        assert_eq!(asked.len(), 2 + i, "{kind:?} {failure_type}");
        let last = asked.last().expect("asked");
        let expected = format!("{failure_type}_system");
        assert_eq!(
            prompt_in(&last.system),
            Some(expected.as_str()),
            "{kind:?} {failure_type}: wrong prompt"
        );
        for said in [
            format!("The agent made a {failure_type}"),
            "docs/billing.md".to_string(),
            "Add a CSV export of invoices".to_string(),
        ] {
            assert!(
                last.user.contains(&said),
                "{kind:?}: {said} missing in {}",
                last.user
            );
        }
        // The rules already learned go along, so the teacher does not repeat one.
        assert!(
            last.user
                .contains("Check the evidence named by test_failure_system"),
            "{kind:?}: known rules missing: {}",
            last.user
        );
        let claude_md = project.read("CLAUDE.md");
        let phrase = failure_type.replace('_', " ");
        let entry = format!(
            "- **Rule**: Check the evidence named by {expected} before finishing the task.\n\
             - **When**: Finishing a task in this project.\n\
             - **Why**: The last attempt skipped that check and failed.\n  - **Source**: Learned on "
        );
        assert!(
            claude_md.contains(&entry),
            "{kind:?} {failure_type}: {claude_md}"
        );
        assert!(
            claude_md.contains(&format!(" from {phrase} (reported by hand) · r-")),
            "{kind:?}: {claude_md}"
        );
    }
    // One managed section, eight entries, the user's file otherwise untouched.
    let claude_md = project.read("CLAUDE.md");
    assert_eq!(claude_md.matches("## Learned Rules & Patterns").count(), 1);
    assert_eq!(claude_md.matches("- **Rule**: ").count(), 8, "{claude_md}");
}

#[test]
fn anthropic_learns_from_every_failure_type() {
    learns_from_every_failure_type(Kind::Anthropic);
}

#[test]
fn openai_learns_from_every_failure_type() {
    learns_from_every_failure_type(Kind::OpenAi);
}

#[test]
fn webhook_learns_from_every_failure_type() {
    learns_from_every_failure_type(Kind::Webhook);
}

#[test]
fn claude_cli_learns_from_every_failure_type() {
    learns_from_every_failure_type(Kind::ClaudeCli);
}

/// 429 with `retry-after: 2`, then 529, then 500 with `retry-after: 1`, then an answer.
fn retries_and_honours_retry_after(kind: Kind) {
    let project = Project::new();
    let server = Server::start(kind, |system, user, n| match n {
        0 => Behaviour::Error(429, Some(2)),
        1 => Behaviour::Error(529, None),
        2 => Behaviour::Error(500, Some(1)),
        _ => naming_model(system, user, n),
    });
    let config = server.config(&project, 60);
    let started = Instant::now();
    manual_report(&server, &project, &config, "scope_error").success();
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 4, "{kind:?}");
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // The first wait is the server's 2 s, not the ~1 s backoff of a first retry.
    assert!(gaps[0] >= Duration::from_millis(1950), "{kind:?}: {gaps:?}");
    assert!(
        gaps[1] >= Duration::from_millis(1000),
        "{kind:?}: backoff {gaps:?}"
    );
    assert!(gaps[2] >= Duration::from_millis(950), "{kind:?}: {gaps:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(project.read("CLAUDE.md").contains("scope_error_system"));
}

#[test]
fn anthropic_retries_and_honours_retry_after() {
    retries_and_honours_retry_after(Kind::Anthropic);
}

#[test]
fn openai_retries_and_honours_retry_after() {
    retries_and_honours_retry_after(Kind::OpenAi);
}

#[test]
fn webhook_retries_and_honours_retry_after() {
    retries_and_honours_retry_after(Kind::Webhook);
}

/// A 401 is not retried; the message says which setting to fix; the report is kept.
fn unauthorised_fails_fast(kind: Kind, hint: &str) {
    let project = Project::new();
    let server = Server::start(kind, |_, _, _| Behaviour::Error(401, None));
    let config = server.config(&project, 60);
    let started = Instant::now();
    let out = server
        .promptloop(&project)
        .args([
            "report-failure",
            "-f",
            "config_error",
            "-D",
            "Used the wrong key",
            "--json",
            "-c",
        ])
        .arg(&config)
        .output()
        .expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{kind:?}: too slow"
    );
    assert_eq!(out.status.code(), Some(1), "{kind:?}");
    let evs = events(&out.stdout);
    let pending = of_type(&evs, "failure.pending");
    assert_eq!(pending.len(), 1, "{evs:#?}");
    let reason = pending[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("HTTP 401"), "{kind:?}: {reason}");
    assert!(reason.contains(hint), "{kind:?}: {reason}");
    assert_eq!(server.arrivals().len(), 1, "{kind:?}: a 401 was retried");
    let stored = stored_failures(&project);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "pending");
    assert!(
        stored[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP 401")
    );
}

#[test]
fn anthropic_401_fails_fast_with_a_clear_message() {
    unauthorised_fails_fast(Kind::Anthropic, "$ANTHROPIC_API_KEY");
}

#[test]
fn openai_401_fails_fast_with_a_clear_message() {
    unauthorised_fails_fast(Kind::OpenAi, "$OPENAI_API_KEY");
}

#[test]
fn webhook_401_fails_fast_with_a_clear_message() {
    unauthorised_fails_fast(Kind::Webhook, "n8n.bearer_token_env");
}

/// The stored failures of a project, as JSON.
pub fn stored_failures(project: &Project) -> Vec<Value> {
    crate::support::stored_failures(&project.path)
}

/// A teacher that does not answer within its deadline: the report stays pending, with the
/// reason; once the teacher answers, `promptloop learn` writes the rule.
fn timeout_keeps_the_failure_for_learn(kind: Kind, deadline: u64) {
    let project = Project::new();
    let slow = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&slow);
    let server = Server::start(kind, move |system, user, n| {
        if flag.load(Ordering::SeqCst) {
            Behaviour::Hang
        } else {
            naming_model(system, user, n)
        }
    });
    let config = server.config(&project, deadline);
    let started = Instant::now();
    let out = server
        .promptloop(&project)
        .args([
            "report-failure",
            "-f",
            "workflow_error",
            "-D",
            "Polled instead of using the trigger",
            "-c",
        ])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{kind:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(deadline + 10),
        "{kind:?}: the deadline was not kept"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no answer within"), "{kind:?}: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("promptloop learn"));
    let stored = stored_failures(&project);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "pending");
    assert!(!project.read("CLAUDE.md").contains("**Rule**"));

    slow.store(false, Ordering::SeqCst);
    let out = server
        .promptloop(&project)
        .args(["learn", "--json", "-c"])
        .arg(&config)
        .output()
        .expect("learn");
    let evs = events(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {evs:#?}");
    assert_eq!(of_type(&evs, "rule.learned").len(), 1);
    let claude_md = project.read("CLAUDE.md");
    assert!(
        claude_md.contains("workflow_error_system")
            && claude_md.contains("from workflow error (reported by hand)"),
        "{kind:?}: {claude_md}"
    );
    let stored = stored_failures(&project);
    assert_eq!(stored[0]["status"], "learned");
    assert_eq!(stored[0]["tries"], 2);
}

#[test]
fn anthropic_timeout_keeps_the_failure_for_learn() {
    timeout_keeps_the_failure_for_learn(Kind::Anthropic, 2);
}

#[test]
fn openai_timeout_keeps_the_failure_for_learn() {
    timeout_keeps_the_failure_for_learn(Kind::OpenAi, 2);
}

#[test]
fn webhook_timeout_keeps_the_failure_for_learn() {
    timeout_keeps_the_failure_for_learn(Kind::Webhook, 2);
}

#[test]
fn claude_cli_timeout_keeps_the_failure_for_learn() {
    timeout_keeps_the_failure_for_learn(Kind::ClaudeCli, 10);
}

/// Every corpus file, as a person's report and as an agent's change with a test log that
/// prints secrets, through each teacher: no planted secret is in any request body.
fn no_secret_reaches_the_teacher(kind: Kind) {
    let secrets = corpus_secrets();
    // The corpus sits in the project, ignored by git (so it is in no snapshot); the agent
    // copies it into leaked/, which makes it part of the agent's change. (Claude Code's
    // tools stay inside the project, hence the copy in the project.)
    let copy = "python3 -c \"import shutil; shutil.copytree('corpus', 'leaked')\"";
    let server = Server::start_with_agent(kind, naming_model, fake_anthropic::bash_script(copy));
    let project = Project::calculator();
    let fixtures = project.path.join("corpus");
    std::fs::create_dir(&fixtures).expect("mkdir");
    for file in corpus_files() {
        std::fs::copy(&file, fixtures.join(file.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(project.path.join(".git/info/exclude"), "corpus/\n").expect("exclude");
    project.write(
        "tests/test_leak.py",
        "def test_settings_hold_no_secrets():\n    text = open('leaked/pytest.log').read() + open('leaked/deploy.log').read()\n    assert 'sk-' not in text, text\n",
    );
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "leak test"]);
    let config = server.config(&project, 120);
    for file in corpus_files() {
        let out = server
            .promptloop(&project)
            .args(["report-failure", "-f", "config_error", "--description-file"])
            .arg(&file)
            .args(["-C", "Secrets belong in Vault.", "-c"])
            .arg(&config)
            .output()
            .expect("report");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind:?} {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The agent copies the corpus into the project; the failing test prints two of its files.
    // Claude Code (claude-cli) does it with its Bash tool (python3 is what its permission
    // rules allow in -p mode as root), the others with a script.
    let run_config = if kind == Kind::ClaudeCli {
        config.clone()
    } else {
        let script = project.home.path().join("copy-agent");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n{copy}\nprintf '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"Copied.\",\"num_turns\":1,\"total_cost_usd\":0,\"session_id\":\"s\",\"usage\":{{}},\"permission_denials\":[]}}\\n'\n"
            ),
        )
        .expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let yaml = std::fs::read_to_string(&config).expect("config").replace(
            &fake_agent(project.home.path()).display().to_string(),
            &script.display().to_string(),
        );
        project.config(&yaml)
    };
    let out = server
        .promptloop(&project)
        .args(["run", "Copy the fixtures into leaked/", "--json", "-c"])
        .arg(&run_config)
        .output()
        .expect("run");
    let evs = events(&out.stdout);
    let changed = &of_type(&evs, "agent.finished")[0]["changed_files"];
    assert!(
        changed.to_string().contains("leaked/pytest.log"),
        "{kind:?}: the agent copied nothing: {evs:#?}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{kind:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = server.asked();
    assert_eq!(asked.len(), corpus_files().len() + 1, "{kind:?}");
    let last = &asked.last().expect("asked").user;
    assert!(
        last.contains("leaked/"),
        "{kind:?}: the diff did not reach the teacher: {last}"
    );
    assert!(last.contains("[REDACTED"), "{kind:?}: {last}");
    for (i, a) in asked.iter().enumerate() {
        let leaked = leaks(&a.body, &secrets);
        assert!(leaked.is_empty(), "{kind:?} request {i} leaks {leaked:?}");
    }
}

#[test]
fn no_secret_reaches_the_anthropic_server() {
    no_secret_reaches_the_teacher(Kind::Anthropic);
}

#[test]
fn no_secret_reaches_the_openai_server() {
    no_secret_reaches_the_teacher(Kind::OpenAi);
}

#[test]
fn no_secret_reaches_the_webhook() {
    no_secret_reaches_the_teacher(Kind::Webhook);
}

#[test]
fn no_secret_reaches_claude_code_as_teacher() {
    no_secret_reaches_the_teacher(Kind::ClaudeCli);
}
