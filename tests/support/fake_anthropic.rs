//! A scripted stand-in for the Anthropic Messages API, served on loopback.
//!
//! End-to-end tests point the real Claude Code CLI (and promptloop's teacher client) at
//! [`FakeAnthropic::base_url`]. Every request is recorded; the answer to each `POST /v1/messages`
//! (with or without `?beta=true`) comes from a test-supplied script that maps the [`Request`] to a
//! [`Reply`]. Replies are rendered as server-sent events when the request asks for
//! `"stream": true` (Claude Code always does, except for its last retry after a broken stream)
//! and as a plain JSON Messages response otherwise.
//!
//! The server runs on its own thread with its own tokio runtime, so synchronous `#[test]`
//! functions can use it directly; dropping the [`FakeAnthropic`] stops it.

// Each test binary uses a different subset of this module.
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::server::Served;

/// `input_tokens` reported for every answered request (Claude Code turns usage into `total_cost_usd`).
pub const INPUT_TOKENS: u64 = 1000;
/// `output_tokens` reported for every answered request.
pub const OUTPUT_TOKENS: u64 = 50;

/// One HTTP request the fake server received, whatever its path.
#[derive(Clone, Debug)]
pub struct Request {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path plus query string, e.g. `/v1/messages?beta=true`.
    pub path_and_query: String,
    /// Headers in the order received; names are lower-case.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Value::Null` when empty, a `Value::String` when not JSON.
    pub body: Value,
}

impl Request {
    /// Whether this is a Messages API call (`POST /v1/messages`, any query string).
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path() == "/v1/messages"
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request is an agent turn: Claude Code's requests carry a non-empty `tools`
    /// list, a teacher's plain Messages request does not.
    pub fn is_agent(&self) -> bool {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty())
    }

    /// Whether the request asks for a streamed (SSE) answer.
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The `model` field of the body, or `""`.
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// Number of `tool_result` blocks in `messages`, i.e. how many tool calls have completed.
    pub fn tool_results(&self) -> usize {
        self.tool_result_blocks().len()
    }

    /// Text and error flag of each `tool_result` block in `messages`, in order.
    pub fn tool_result_texts(&self) -> Vec<(String, bool)> {
        self.tool_result_blocks()
            .into_iter()
            .map(|block| {
                let mut text = String::new();
                if let Some(content) = block.get("content") {
                    collect_text(content, &mut text);
                }
                let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
                (text, is_error)
            })
            .collect()
    }

    /// All text in `system` and `messages` (including tool results), joined by newlines, so a
    /// test can look for a rule's text or the contents of CLAUDE.md.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(system) = self.body.get("system") {
            collect_text(system, &mut out);
        }
        for message in self.messages() {
            if let Some(content) = message.get("content") {
                collect_text(content, &mut out);
            }
        }
        out
    }

    /// The agent's working directory, taken from the environment text Claude Code sends
    /// (`Primary working directory: /path`).
    pub fn cwd(&self) -> Option<String> {
        const KEY: &str = "Primary working directory: ";
        let text = self.text();
        let start = text.find(KEY)? + KEY.len();
        let line = text[start..].lines().next()?.trim();
        (!line.is_empty()).then(|| line.to_string())
    }

    fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    fn tool_result_blocks(&self) -> Vec<&Value> {
        self.messages()
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
            .collect()
    }
}

/// Appends every `text` found in a string, a content block or a list of them.
fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        Value::Object(block) => {
            if let Some(Value::String(s)) = block.get("text") {
                out.push_str(s);
                out.push('\n');
            }
            if let Some(content) = block.get("content") {
                collect_text(content, out);
            }
        }
        _ => {}
    }
}

/// What the script answers to one Messages request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A final assistant text; `stop_reason` `end_turn`.
    Text(String),
    /// One `tool_use` block; `stop_reason` `tool_use`.
    ToolUse {
        /// Tool name as advertised in the request's `tools`, e.g. `Read`, `Edit`, `Bash`.
        name: String,
        /// Tool input, e.g. `{"file_path": "/abs/path"}`.
        input: Value,
    },
    /// An HTTP error with Anthropic's error body
    /// `{"type":"error","error":{"type":..,"message":..}}`.
    Error {
        /// HTTP status, e.g. 429.
        status: u16,
        /// Anthropic error type, e.g. `rate_limit_error`.
        error_type: String,
        /// Human-readable message.
        message: String,
        /// Value of a `retry-after` header (seconds), if any.
        retry_after: Option<u64>,
    },
    /// For a streaming request: HTTP 200, `message_start`, then an SSE `error` event
    /// (an overload in the middle of a stream). A non-streaming request gets the same error as an
    /// HTTP 529 instead. Claude Code retries a broken stream and at last falls back to
    /// `"stream": false`.
    StreamError {
        /// Anthropic error type, e.g. `overloaded_error`.
        error_type: String,
        /// Human-readable message.
        message: String,
    },
    /// The reply, sent only after a delay (a slow or hanging server).
    Delayed {
        /// How long to wait.
        delay: Duration,
        /// What to send then.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// A final text reply.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Text(text.into())
    }

    /// A tool call.
    pub fn tool(name: impl Into<String>, input: Value) -> Reply {
        Reply::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// An error with the conventional Anthropic `error.type` for the status
    /// (401 `authentication_error`, 429 `rate_limit_error`, 529 `overloaded_error`, ...).
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        let error_type = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        Reply::Error {
            status,
            error_type: error_type.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync + 'static;

struct Shared {
    script: Box<Script>,
    requests: Mutex<Vec<Request>>,
    ids: AtomicU64,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<Request>> {
        // A panic while holding the lock cannot leave the Vec half-updated; keep going.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A fake Anthropic API server on `127.0.0.1:<ephemeral port>`; stops when dropped.
pub struct FakeAnthropic {
    server: Served,
    shared: Arc<Shared>,
}

impl FakeAnthropic {
    /// Starts the server; `script` answers each `POST /v1/messages`. A panicking script turns
    /// into a 500 reply (with the panic text in the error message) instead of a dropped connection.
    ///
    /// Panics if the loopback socket or the runtime cannot be set up (a broken test machine).
    pub fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeAnthropic {
        let shared = Arc::new(Shared {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            ids: AtomicU64::new(0),
        });
        let state = Arc::clone(&shared);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&state);
                // Blocking pool: a delayed reply sleeps without stalling others.
                async move {
                    tokio::task::spawn_blocking(move || handle(&state, method, uri, headers, body))
                        .await
                        .unwrap_or_else(|e| error_response(500, "api_error", &e.to_string(), None))
                }
            },
        );
        FakeAnthropic {
            server: Served::start("fake-anthropic", app),
            shared,
        }
    }

    /// The value for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The environment that points Claude Code (and an Anthropic teacher) at this server
    /// and keeps it offline: base URL, a key, no telemetry, error reports, non-essential
    /// traffic or auto-update, two retries.
    pub fn claude_code_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ANTHROPIC_BASE_URL", self.base_url()),
            ("ANTHROPIC_API_KEY", "test-key".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "2".into()),
        ]
    }

    /// Every request received so far, in arrival order (all paths, not only Messages calls).
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests().clone()
    }

    /// The `POST /v1/messages` requests received so far, in arrival order.
    pub fn messages_requests(&self) -> Vec<Request> {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.is_messages())
            .cloned()
            .collect()
    }
}

fn handle(state: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let parsed = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let request = Request {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: parsed,
    };
    state.requests().push(request.clone());

    if request.method == "POST" && request.path() == "/v1/messages/count_tokens" {
        return json_response(StatusCode::OK, &json!({ "input_tokens": INPUT_TOKENS }));
    }
    if !request.is_messages() {
        let message = format!(
            "fake_anthropic: no route for {} {}",
            request.method, request.path_and_query
        );
        return error_response(404, "not_found_error", &message, None);
    }

    let reply = match catch_unwind(AssertUnwindSafe(|| (state.script)(&request))) {
        Ok(reply) => reply,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Reply::error(500, format!("fake_anthropic script panicked: {text}"))
        }
    };
    let id = state.next_id();
    render(&request, id, reply)
}

fn render(request: &Request, id: u64, reply: Reply) -> Response {
    match reply {
        Reply::Error {
            status,
            error_type,
            message,
            retry_after,
        } => error_response(status, &error_type, &message, retry_after),
        Reply::StreamError {
            error_type,
            message,
        } => {
            if request.is_stream() {
                stream_error_response(request, id, &error_type, &message)
            } else {
                error_response(529, &error_type, &message, None)
            }
        }
        Reply::Text(text) => message_response(request, id, Block::Text(text)),
        Reply::ToolUse { name, input } => {
            message_response(request, id, Block::ToolUse(name, input))
        }
        Reply::Delayed { delay, reply } => {
            std::thread::sleep(delay);
            render(request, id, *reply)
        }
    }
}

enum Block {
    Text(String),
    ToolUse(String, Value),
}

fn message_response(request: &Request, id: u64, block: Block) -> Response {
    let (content, stop_reason) = match &block {
        Block::Text(text) => (json!({ "type": "text", "text": text }), "end_turn"),
        Block::ToolUse(name, input) => (
            json!({ "type": "tool_use", "id": format!("toolu_fake_{id}"), "name": name, "input": input }),
            "tool_use",
        ),
    };
    let usage = json!({
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    });
    let mut message = json!({
        "id": format!("msg_fake_{id}"),
        "type": "message",
        "role": "assistant",
        "model": request.model(),
        "content": [content.clone()],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage,
    });
    if !request.is_stream() {
        return with_request_id(json_response(StatusCode::OK, &message), id);
    }

    message["content"] = json!([]);
    message["stop_reason"] = Value::Null;
    message["usage"]["output_tokens"] = json!(1);
    let (start_block, delta) = match block {
        Block::Text(text) => (
            json!({ "type": "text", "text": "" }),
            json!({ "type": "text_delta", "text": text }),
        ),
        Block::ToolUse(_, input) => {
            let mut start = content;
            start["input"] = json!({});
            (
                start,
                json!({ "type": "input_json_delta", "partial_json": input.to_string() }),
            )
        }
    };
    let events = [
        (
            "message_start",
            json!({ "type": "message_start", "message": message }),
        ),
        (
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": start_block }),
        ),
        (
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        ),
        (
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": 0 }),
        ),
        (
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": { "input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS },
            }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ];
    let body: String = events
        .iter()
        .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
        .collect();
    sse_response(body, id)
}

fn stream_error_response(request: &Request, id: u64, error_type: &str, message: &str) -> Response {
    let start = json!({
        "type": "message_start",
        "message": {
            "id": format!("msg_fake_{id}"),
            "type": "message",
            "role": "assistant",
            "model": request.model(),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": { "input_tokens": INPUT_TOKENS, "output_tokens": 1 },
        },
    });
    let error = json!({ "type": "error", "error": { "type": error_type, "message": message } });
    let body = format!("event: message_start\ndata: {start}\n\nevent: error\ndata: {error}\n\n");
    sse_response(body, id)
}

fn sse_response(body: String, id: u64) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response();
    set_header(&mut response, "request-id", &format!("req_fake_{id}"));
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "type": "error", "error": { "type": error_type, "message": message } });
    let mut response = json_response(status, &body);
    if let Some(seconds) = retry_after {
        set_header(&mut response, "retry-after", &seconds.to_string());
    }
    response
}

fn with_request_id(mut response: Response, id: u64) -> Response {
    set_header(&mut response, "request-id", &format!("req_fake_{id}"));
    response
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// Resolves `file` against the agent's working directory unless it is already absolute
/// (Claude Code's file tools take absolute paths only).
fn absolute(request: &Request, file: &str) -> String {
    if Path::new(file).is_absolute() {
        return file.to_string();
    }
    match request.cwd() {
        Some(cwd) => Path::new(&cwd).join(file).to_string_lossy().into_owned(),
        None => file.to_string(),
    }
}

/// The common agent scenario: with no tool result yet, `Read` the file; after one, `Edit` it
/// (`old` → `new`); after two, finish with a text. `file` may be relative to the agent's working
/// directory (read from the request). Claude Code refuses an Edit of a file not Read first in the
/// session, hence the Read. Non-agent (teacher) requests get a 400, so a test that forgot to
/// script the teacher fails loudly; see [`agent_or_teacher`].
pub fn edit_script(
    file: &str,
    old: &str,
    new: &str,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let (file, old, new) = (file.to_string(), old.to_string(), new.to_string());
    move |request: &Request| {
        if !request.is_agent() {
            return Reply::error(400, "edit_script answers agent requests only");
        }
        let path = absolute(request, &file);
        match request.tool_results() {
            0 => Reply::tool("Read", json!({ "file_path": path })),
            1 => Reply::tool(
                "Edit",
                json!({ "file_path": path, "old_string": old, "new_string": new }),
            ),
            _ => Reply::text(format!("Edited {file}.")),
        }
    }
}

/// An agent that runs one shell command and then finishes: `Bash` with `command`, then a text.
/// In `-p` mode Claude Code runs it only when allowed (e.g. `--allowedTools "Bash(python3:*)"`);
/// a denial arrives as an error tool result.
pub fn bash_script(command: &str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let command = command.to_string();
    move |request: &Request| {
        if !request.is_agent() {
            return Reply::error(400, "bash_script answers agent requests only");
        }
        match request.tool_results() {
            0 => Reply::tool(
                "Bash",
                json!({ "command": command, "description": "Run the command" }),
            ),
            _ => Reply::text("Ran the command."),
        }
    }
}

/// Routes agent requests (with `tools`) to `agent` and everything else (the teacher's plain
/// Messages calls) to `teacher`.
pub fn agent_or_teacher(
    agent: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    teacher: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request: &Request| {
        if request.is_agent() {
            agent(request)
        } else {
            teacher(request)
        }
    }
}
