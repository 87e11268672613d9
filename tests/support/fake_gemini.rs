//! A scripted stand-in for the Gemini API as Gemini CLI uses it:
//! `POST /v1beta/models/<model>:streamGenerateContent?alt=sse` (server-sent events, one
//! `GenerateContentResponse` per event) and `:generateContent` (one JSON object). Point
//! Gemini CLI at it with `GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT` and
//! `GEMINI_API_KEY=<any>`.
//!
//! Each request goes to the test's script, which answers with a function call (Gemini
//! CLI's tools: `read_file`, `replace`, `write_file`, `run_shell_command`, …), a final text,
//! or an HTTP error with Google's error body.

#![allow(dead_code)]

use serde_json::{Value, json};

use super::loopback::{Answer, Loopback, Recorded, collect_text};

/// Prompt tokens reported for every answered request.
pub const PROMPT_TOKENS: u64 = 800;
/// Candidate tokens reported for every answered request.
pub const CANDIDATE_TOKENS: u64 = 30;

/// One generateContent request.
#[derive(Clone, Debug)]
pub struct GeminiRequest(pub Recorded);

impl GeminiRequest {
    /// Whether this asks for content (`:streamGenerateContent` or `:generateContent`).
    pub fn is_generate(&self) -> bool {
        self.0.method == "POST"
            && self.0.path().starts_with("/v1beta/models/")
            && (self.0.path().ends_with(":streamGenerateContent")
                || self.0.path().ends_with(":generateContent"))
    }

    /// Whether the answer is streamed.
    pub fn is_stream(&self) -> bool {
        self.0.path().ends_with(":streamGenerateContent")
    }

    /// The model from the path.
    pub fn model(&self) -> &str {
        let path = self.0.path();
        let rest = path.trim_start_matches("/v1beta/models/");
        rest.split(':').next().unwrap_or("")
    }

    /// The `contents` turns.
    pub fn contents(&self) -> &[Value] {
        self.0
            .body
            .get("contents")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// All text of the system instruction and the contents, joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(system) = self.0.body.get("systemInstruction") {
            collect_text(system, &mut out);
        }
        for turn in self.contents() {
            collect_text(turn, &mut out);
        }
        out
    }

    /// How many function calls have completed (their `functionResponse` parts are in).
    pub fn function_responses(&self) -> usize {
        self.function_response_values().len()
    }

    /// The `response` objects of the completed function calls, in order.
    pub fn function_response_values(&self) -> Vec<Value> {
        self.contents()
            .iter()
            .filter_map(|c| c.get("parts").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| p.get("functionResponse"))
            .map(|r| r.get("response").cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// Whether the request offers tools (an agent turn, not a side request).
    pub fn has_tools(&self) -> bool {
        self.0
            .body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
    }

    /// The text Gemini CLI loaded from the project's GEMINI.md
    /// (`--- Context from: DIR/GEMINI.md --- … --- End of Context from: …`), if any.
    pub fn gemini_md_block(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("--- Context from: ")?;
        let rest = &text[start..];
        let header_end = rest.find('\n')?;
        if !rest[..header_end].contains("GEMINI.md") {
            return None;
        }
        let end = rest.find("--- End of Context from: ")?;
        Some(rest[..end].to_string())
    }

    /// The project directory (`Workspace Directories:` in the session context).
    pub fn cwd(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("Workspace Directories:**")? + "Workspace Directories:**".len();
        text[start..]
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("- "))
            .map(|l| l.trim_start_matches("- ").trim().to_string())
    }
}

/// What the script answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A function call.
    Call {
        /// Tool name, e.g. `replace`.
        name: String,
        /// Its arguments.
        args: Value,
    },
    /// The final text.
    Text(String),
    /// An HTTP error with Google's body `[{"error": {"code", "message", "status", "details"}}]`.
    Error {
        /// HTTP status.
        status: u16,
        /// `error.message`.
        message: String,
        /// `error.details`.
        details: Value,
    },
}

impl Reply {
    /// A function call.
    pub fn call(name: &str, args: Value) -> Reply {
        Reply::Call {
            name: name.into(),
            args,
        }
    }

    /// A text answer.
    pub fn text(text: &str) -> Reply {
        Reply::Text(text.into())
    }

    /// An error without details. Gemini CLI retries 429 and 5xx for minutes; see
    /// [`Reply::daily_quota_exhausted`] for a 429 it gives up on at once.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Error {
            status,
            message: message.into(),
            details: json!([]),
        }
    }

    /// The 429 the Gemini API sends when a daily quota is used up; Gemini CLI does not
    /// retry it.
    pub fn daily_quota_exhausted() -> Reply {
        Reply::Error {
            status: 429,
            message: "You exceeded your current quota. Quota exceeded for metric: \
                      generativelanguage.googleapis.com/generate_content_requests, limit: 0"
                .into(),
            details: json!([{
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerDayPerProjectPerModel"
                }]
            }]),
        }
    }
}

/// The fake server.
pub struct FakeGemini {
    server: Loopback,
}

impl FakeGemini {
    /// Starts the server; `script` answers each generateContent request.
    pub fn start(script: impl Fn(&GeminiRequest) -> Reply + Send + Sync + 'static) -> Self {
        let server = Loopback::start(move |recorded: &Recorded| {
            let request = GeminiRequest(recorded.clone());
            if !request.is_generate() {
                return Answer::json(
                    404,
                    json!([{"error": {"code": 404, "message": format!("fake_gemini: no route for {} {}", recorded.method, recorded.path_and_query), "status": "NOT_FOUND"}}]),
                );
            }
            answer(&request, script(&request))
        });
        FakeGemini { server }
    }

    /// The value for `GOOGLE_GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The generateContent requests so far.
    pub fn requests(&self) -> Vec<GeminiRequest> {
        self.server
            .requests()
            .into_iter()
            .map(GeminiRequest)
            .filter(GeminiRequest::is_generate)
            .collect()
    }

    /// Every request, whatever its path.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }
}

fn answer(request: &GeminiRequest, reply: Reply) -> Answer {
    let part = match reply {
        Reply::Error {
            status,
            message,
            details,
        } => {
            let status_text = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            return Answer::json(
                status,
                json!([{"error": {"code": status, "message": message, "status": status_text, "details": details}}]),
            );
        }
        Reply::Call { name, args } => json!({"functionCall": {"name": name, "args": args}}),
        Reply::Text(text) => json!({"text": text}),
    };
    let response = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": CANDIDATE_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + CANDIDATE_TOKENS
        },
        "modelVersion": request.model()
    });
    if request.is_stream() {
        Answer::sse(vec![(None, response)])
    } else {
        Answer::json(200, response)
    }
}
