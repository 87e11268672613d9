//! A scripted stand-in for the OpenAI Responses API (`POST /v1/responses`, server-sent
//! events), the only wire API Codex CLI speaks. Point Codex at it with a model provider:
//! `-c model_provider=fake -c 'model_providers.fake={base_url="http://127.0.0.1:PORT/v1",
//! wire_api="responses", env_key="FAKE_KEY", …}'` (see [`FakeOpenAi::codex_args`]).
//!
//! Each request goes to the test's script, which answers with a [`Reply`]: a patch through
//! Codex's free-form `apply_patch` tool, a shell command through `exec_command`, a final
//! message, or an HTTP error with OpenAI's error body.

#![allow(dead_code)]

use serde_json::{Value, json};

use super::loopback::{Answer, Loopback, Recorded, collect_text};

/// Input tokens reported for every answered request.
pub const INPUT_TOKENS: u64 = 900;
/// Output tokens reported for every answered request.
pub const OUTPUT_TOKENS: u64 = 40;

/// One Responses request.
#[derive(Clone, Debug)]
pub struct ResponsesRequest(pub Recorded);

impl ResponsesRequest {
    /// Whether this is `POST /v1/responses`.
    pub fn is_responses(&self) -> bool {
        self.0.method == "POST" && self.0.path() == "/v1/responses"
    }

    /// The `input` items.
    pub fn input(&self) -> &[Value] {
        self.0
            .body
            .get("input")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// All text of `instructions` and the input messages, joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(Value::String(s)) = self.0.body.get("instructions") {
            out.push_str(s);
            out.push('\n');
        }
        for item in self.input() {
            collect_text(item, &mut out);
        }
        out
    }

    /// How many tool calls have completed (their outputs are in `input`).
    pub fn tool_outputs(&self) -> usize {
        self.input()
            .iter()
            .filter(|i| {
                matches!(
                    i.get("type").and_then(Value::as_str),
                    Some("custom_tool_call_output" | "function_call_output")
                )
            })
            .count()
    }

    /// The outputs of completed tool calls, in order.
    pub fn tool_output_texts(&self) -> Vec<String> {
        self.input()
            .iter()
            .filter(|i| {
                matches!(
                    i.get("type").and_then(Value::as_str),
                    Some("custom_tool_call_output" | "function_call_output")
                )
            })
            .map(|i| match i.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect()
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.0
            .body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of the block Codex builds from the project's AGENTS.md
    /// (`# AGENTS.md instructions for DIR\n\n<INSTRUCTIONS>…</INSTRUCTIONS>`), if any.
    pub fn agents_md_block(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("# AGENTS.md instructions for ")?;
        let rest = &text[start..];
        let end = rest.find("</INSTRUCTIONS>")?;
        Some(rest[..end].to_string())
    }

    /// The agent's working directory (`<cwd>…</cwd>` in the environment context).
    pub fn cwd(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<cwd>")? + "<cwd>".len();
        let end = text[start..].find("</cwd>")?;
        Some(text[start..start + end].trim().to_string())
    }

    /// The `model` field.
    pub fn model(&self) -> &str {
        self.0
            .body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// What the script answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A patch for the `apply_patch` tool (`*** Begin Patch … *** End Patch`).
    Patch(String),
    /// A shell command for the `exec_command` tool.
    Exec(String),
    /// The final assistant message.
    Text(String),
    /// An HTTP error with OpenAI's body `{"error": {"message", "type", "code"}}`.
    Error {
        /// HTTP status.
        status: u16,
        /// `error.type`, e.g. `rate_limit_exceeded`.
        kind: String,
        /// `error.message`.
        message: String,
    },
}

impl Reply {
    /// A patch that replaces line `old` with line `new` in `file` (relative to the cwd).
    pub fn replace_line(file: &str, old: &str, new: &str) -> Reply {
        Reply::Patch(format!(
            "*** Begin Patch\n*** Update File: {file}\n@@\n-{old}\n+{new}\n*** End Patch"
        ))
    }

    /// An HTTP error with the conventional `error.type` for its status.
    pub fn error(status: u16, message: &str) -> Reply {
        let kind = match status {
            401 => "invalid_api_key",
            429 => "rate_limit_exceeded",
            400 => "invalid_request_error",
            _ => "server_error",
        };
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// The fake server.
pub struct FakeOpenAi {
    server: Loopback,
}

impl FakeOpenAi {
    /// Starts the server; `script` answers each `POST /v1/responses`.
    pub fn start(script: impl Fn(&ResponsesRequest) -> Reply + Send + Sync + 'static) -> Self {
        let server = Loopback::start(move |recorded: &Recorded| {
            let request = ResponsesRequest(recorded.clone());
            if !request.is_responses() {
                return Answer::json(
                    404,
                    json!({"error": {"message": format!("fake_openai: no route for {} {}", recorded.method, recorded.path_and_query), "type": "not_found"}}),
                );
            }
            let n = request.tool_outputs();
            answer(script(&request), n)
        });
        FakeOpenAi { server }
    }

    /// `http://127.0.0.1:PORT/v1`, the provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.base_url())
    }

    /// The Codex arguments that select this server as the model provider, with the API key
    /// in `$FAKE_OPENAI_KEY` and no retries (an error ends the turn at once).
    pub fn codex_args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            "model_provider=fake".into(),
            "-c".into(),
            format!(
                "model_providers.fake={{name=\"Fake\",base_url=\"{}\",env_key=\"FAKE_OPENAI_KEY\",wire_api=\"responses\",request_max_retries=0,stream_max_retries=0}}",
                self.base_url()
            ),
        ]
    }

    /// The Responses requests so far.
    pub fn requests(&self) -> Vec<ResponsesRequest> {
        self.server
            .requests()
            .into_iter()
            .map(ResponsesRequest)
            .filter(ResponsesRequest::is_responses)
            .collect()
    }

    /// Every request, whatever its path.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }
}

fn answer(reply: Reply, n: usize) -> Answer {
    let id = format!("resp_fake_{n}");
    let item = match reply {
        Reply::Error {
            status,
            kind,
            message,
        } => {
            return Answer::json(
                status,
                json!({"error": {"message": message, "type": kind, "code": null}}),
            );
        }
        Reply::Patch(patch) => json!({
            "type": "custom_tool_call", "id": format!("ctc_{n}"), "call_id": format!("call_{n}"),
            "name": "apply_patch", "input": patch, "status": "completed"
        }),
        Reply::Exec(cmd) => json!({
            "type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"),
            "name": "exec_command",
            // Not a login shell: /etc/profile would reset PATH.
            "arguments": json!({"cmd": cmd, "login": false}).to_string()
        }),
        Reply::Text(text) => json!({
            "type": "message", "role": "assistant", "id": format!("msg_{n}"),
            "content": [{"type": "output_text", "text": text, "annotations": []}]
        }),
    };
    let event = |data: Value| {
        let name = data["type"].as_str().map(str::to_string);
        (name, data)
    };
    Answer::sse(vec![
        event(json!({"type": "response.created", "response": {"id": id}})),
        event(json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
        event(
            json!({"type": "response.completed", "response": {"id": id, "usage": {
                "input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS
            }}}),
        ),
    ])
}
