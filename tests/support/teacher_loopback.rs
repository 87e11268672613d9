//! A scripted HTTP server on 127.0.0.1 for the teachers' protocols that have no fake of
//! their own: the OpenAI-compatible chat API ([`openai_reply`]) and the n8n webhook
//! ([`n8n`], which runs the shipped workflow's own expressions and code). Every request is
//! recorded with its raw body and arrival time; each answer may come after a delay (to
//! test deadlines) and with any status and headers (to test retries).
//!
//! Runs on its own thread with its own tokio runtime; dropping the [`Loopback`] stops it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::server::Served;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    /// `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub raw: String,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Hit {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, value: Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Hit) -> Answer + Send + Sync + 'static;

/// The server; stops when dropped.
pub struct Loopback {
    server: Served,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Loopback {
    /// Starts a server answering every request with `script`.
    pub fn start(script: impl Fn(&Hit) -> Answer + Send + Sync + 'static) -> Loopback {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let recorded = Arc::clone(&hits);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let script = Arc::clone(&script);
                let recorded = Arc::clone(&recorded);
                async move {
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    let hit = Hit {
                        method: method.to_string(),
                        path: uri
                            .path_and_query()
                            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
                        headers: headers
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        json: serde_json::from_str(&raw).unwrap_or(Value::Null),
                        raw,
                        at: Instant::now(),
                    };
                    recorded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(hit.clone());
                    let answer = tokio::task::spawn_blocking(move || script(&hit))
                        .await
                        .unwrap_or_else(|e| {
                            Answer::json(
                                500,
                                json!({"error": {"message": format!("script panicked: {e}")}}),
                            )
                        });
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    respond(answer)
                }
            },
        );
        Loopback {
            server: Served::start("teacher-server", app),
            hits,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

// ---------------------------------------------------------------------------
// OpenAI-compatible chat completions

/// A `/v1/chat/completions` answer with `text` as the assistant's message.
pub fn openai_reply(request: &Hit, text: &str) -> Answer {
    Answer::json(
        200,
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": request.json["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
        }),
    )
}

/// An OpenAI error body (`{"error": {"message", "type", "code"}}`).
pub fn openai_error(status: u16, message: &str) -> Answer {
    let kind = match status {
        401 => "invalid_request_error",
        429 => "rate_limit_exceeded",
        _ => "server_error",
    };
    Answer::json(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
    )
}

/// The system and user text of a chat completion request.
pub fn openai_prompts(request: &Hit) -> (String, String) {
    let messages = request.json["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = |role: &str| {
        messages
            .iter()
            .filter(|m| m["role"] == role)
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    (of("system"), of("user"))
}

// ---------------------------------------------------------------------------
// The n8n webhook, as the shipped workflow answers it

/// The workflow users import into n8n.
pub fn n8n_workflow() -> PathBuf {
    super::repo_root().join("integrations/n8n/prompt-learning-teacher.json")
}

/// What the workflow's LLM node was asked and what the workflow answered.
#[derive(Clone, Debug)]
pub struct N8nRun {
    /// The system prompt the LLM node sends (its `options.system` expression).
    pub system: String,
    /// The user message the LLM node sends (its `messages` expression).
    pub user: String,
    /// The body of the `Respond to Webhook` node.
    pub response: Value,
}

/// Runs the shipped workflow for one webhook `body`: evaluates the LLM node's expressions on
/// it, takes `model_answer` as the model's text, runs the Code node's JavaScript on the LLM
/// node's output, and returns what the respond node sends back. Uses node (which the agent
/// CLIs installed by scripts/test.sh need anyway).
pub fn run_n8n_workflow(body: &Value, model_answer: &str) -> N8nRun {
    const HARNESS: &str = r#"
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const wf = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const byType = (t) => wf.nodes.find((n) => n.type === t);
const expr = (e, $json) => {
  if (typeof e !== 'string' || !e.startsWith('={{')) return e;
  return new Function('$json', 'return (' + e.slice(3, -2) + ');')($json);
};
const webhookItem = { body: input.body, headers: {}, params: {}, query: {} };
const llm = byType('@n8n/n8n-nodes-langchain.anthropic');
const system = expr(llm.parameters.options.system, webhookItem);
const user = expr(llm.parameters.messages.values[0].content, webhookItem);
const llmOutput = {
  content: [{ type: 'text', text: input.model_answer }],
  merged_response: llm.parameters.options.includeMergedResponse ? input.model_answer : undefined,
};
const code = byType('n8n-nodes-base.code').parameters.jsCode;
const $input = { first: () => ({ json: llmOutput }), all: () => [{ json: llmOutput }] };
const $ = (name) => {
  if (name !== 'Webhook') throw new Error('unknown node ' + name);
  return { first: () => ({ json: webhookItem }) };
};
const items = new Function('$input', '$', code)($input, $);
const respond = byType('n8n-nodes-base.respondToWebhook').parameters;
if (respond.respondWith !== 'firstIncomingItem') throw new Error('unexpected respondWith');
process.stdout.write(JSON.stringify({ system, user, response: items[0].json }));
"#;
    let mut child = std::process::Command::new("node")
        .arg("-e")
        .arg(HARNESS)
        .arg(n8n_workflow())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(
                json!({"body": body, "model_answer": model_answer})
                    .to_string()
                    .as_bytes(),
            )
            .expect("write");
    }
    let out = child.wait_with_output().expect("node output");
    assert!(
        out.status.success(),
        "the workflow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("harness JSON");
    N8nRun {
        system: v["system"].as_str().unwrap_or("").to_string(),
        user: v["user"].as_str().unwrap_or("").to_string(),
        response: v["response"].clone(),
    }
}

/// What the scripted n8n instance does with one webhook call.
pub enum N8n {
    /// The model answers this text; the workflow turns it into the response.
    Model(String),
    /// An HTTP answer as it is (errors, delays).
    Answer(Answer),
}

/// A webhook server that behaves like n8n running the shipped workflow: `model` sees what
/// the workflow's LLM node would send (system, user) and answers as the model.
pub fn n8n(
    token: Option<&str>,
    model: impl Fn(&Hit, &str, &str) -> N8n + Send + Sync + 'static,
) -> Loopback {
    let token = token.map(|t| format!("Bearer {t}"));
    Loopback::start(move |hit| {
        if hit.method != "POST" || !hit.path.starts_with("/webhook/prompt-learning-teacher") {
            return Answer::json(
                404,
                json!({"code": 404, "message": format!("The requested webhook \"{} {}\" is not registered.", hit.method, hit.path)}),
            );
        }
        if let Some(expected) = &token
            && hit.header("authorization") != Some(expected.as_str())
        {
            return Answer::json(
                403,
                json!({"code": 403, "message": "Authorization data is wrong!"}),
            );
        }
        // What the LLM node would be asked, from the workflow's own expressions.
        let asked = run_n8n_workflow(&hit.json, "");
        match model(hit, &asked.system, &asked.user) {
            N8n::Model(text) => Answer::json(200, run_n8n_workflow(&hit.json, &text).response),
            N8n::Answer(answer) => answer,
        }
    })
}
