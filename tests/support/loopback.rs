//! A recording HTTP server on 127.0.0.1 for every fake: the model APIs (`fake_openai`,
//! `fake_gemini`) and the teachers' protocols (`teacher_loopback`). Every request is kept
//! with its raw body and arrival time, and a handler turns each into an answer: any status,
//! headers, a JSON or server-sent-events body, after a delay (to test deadlines). Handlers run
//! on a blocking thread (they may start a process), and a panicking one answers 500 with its
//! message, so a test sees its own bug instead of a hung client. The server runs on its own
//! thread with its own tokio runtime, so synchronous tests can use it; dropping the
//! [`Loopback`] stops it.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::server::Served;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One HTTP request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST`, `GET`, …
    pub method: String,
    /// Path plus query string.
    pub path_and_query: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Null` when empty, a `String` when not JSON.
    pub body: Value,
    /// The body as sent.
    pub raw: String,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    /// A JSON body with this status.
    pub fn json(status: u16, value: Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// Server-sent events: each `(event name or None, data)`.
    pub fn sse(events: Vec<(Option<String>, Value)>) -> Answer {
        Answer {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            body: events
                .iter()
                .map(|(event, data)| match event {
                    Some(name) => format!("event: {name}\ndata: {data}\n\n"),
                    None => format!("data: {data}\r\n\r\n"),
                })
                .collect(),
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

type Handler = dyn Fn(&Recorded) -> Answer + Send + Sync + 'static;

/// The running server; stops when dropped.
pub struct Loopback {
    server: Served,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Loopback {
    /// Starts a server on an ephemeral port of 127.0.0.1 answering with `handler`.
    pub fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Loopback {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&requests);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                async move {
                    let request = record(method, uri, headers, body);
                    recorded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(request.clone());
                    let answer = tokio::task::spawn_blocking(move || handler(&request))
                        .await
                        .unwrap_or_else(|e| {
                            let text = e
                                .try_into_panic()
                                .ok()
                                .and_then(|p| {
                                    p.downcast_ref::<String>().cloned().or_else(|| {
                                        p.downcast_ref::<&str>().map(|s| (*s).to_string())
                                    })
                                })
                                .unwrap_or_default();
                            Answer::json(
                                500,
                                serde_json::json!({"error": {"message": format!("fake server panicked: {text}")}}),
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
            server: Served::start("loopback-server", app),
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn record(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Recorded {
    let raw = String::from_utf8_lossy(&body).into_owned();
    Recorded {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(raw.clone()))
        },
        raw,
        at: Instant::now(),
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

/// Appends every `text` string found anywhere in `value` (message content, parts, blocks).
pub fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(_) => {}
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("text", Value::String(s)) => {
                        out.push_str(s);
                        out.push('\n');
                    }
                    _ => collect_text(v, out),
                }
            }
        }
        _ => {}
    }
}
