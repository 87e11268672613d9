//! A scripted HTTP server on 127.0.0.1 for the teachers' protocols that have no fake of
//! their own: the OpenAI-compatible chat API ([`openai_reply`]) and the n8n webhook
//! ([`n8n`], which runs the shipped workflow's own expressions and code), on the one
//! recording server of [`super::loopback`].

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::{Value, json};

pub use super::loopback::{Answer, Loopback, Recorded as Hit};

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
            "model": request.body["model"],
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
    let messages = request.body["messages"]
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
        if hit.method != "POST" || !hit.path().starts_with("/webhook/prompt-learning-teacher") {
            return Answer::json(
                404,
                json!({"code": 404, "message": format!("The requested webhook \"{} {}\" is not registered.", hit.method, hit.path_and_query)}),
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
        let asked = run_n8n_workflow(&hit.body, "");
        match model(hit, &asked.system, &asked.user) {
            N8n::Model(text) => Answer::json(200, run_n8n_workflow(&hit.body, &text).response),
            N8n::Answer(answer) => answer,
        }
    })
}
