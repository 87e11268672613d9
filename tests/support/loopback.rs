//! A recording HTTP server on 127.0.0.1 for the fake model APIs (`fake_openai`,
//! `fake_gemini`): every request is kept, and a handler turns each into a response. It runs
//! on its own thread with its own tokio runtime, so synchronous tests can use it; dropping
//! the [`Loopback`] stops it.

#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::server::Served;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
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
pub enum Answer {
    /// A JSON body with this status.
    Json(u16, Value),
    /// Server-sent events: each `(event name or None, data)`.
    Sse(Vec<(Option<String>, Value)>),
}

type Handler = dyn Fn(&Recorded) -> Answer + Send + Sync + 'static;

/// The running server; stops when dropped.
pub struct Loopback {
    server: Served,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Loopback {
    /// Starts a server on an ephemeral port of 127.0.0.1. A panicking handler answers 500
    /// with the panic's text, so a test sees its own bug instead of a hung client.
    pub fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Loopback {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&requests);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                async move { serve(&*handler, &recorded, method, uri, headers, body) }
            },
        );
        Loopback {
            server: Served::start("fake-model-server", app),
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

fn serve(
    handler: &Handler,
    recorded: &Mutex<Vec<Recorded>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded {
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
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        },
    };
    recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request.clone());
    let answer = catch_unwind(AssertUnwindSafe(|| handler(&request))).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        Answer::Json(
            500,
            serde_json::json!({"error": {"message": format!("fake server panicked: {text}")}}),
        )
    });
    match answer {
        Answer::Json(status, value) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            value.to_string(),
        )
            .into_response(),
        Answer::Sse(events) => {
            let body: String = events
                .iter()
                .map(|(event, data)| match event {
                    Some(name) => format!("event: {name}\ndata: {data}\n\n"),
                    None => format!("data: {data}\r\n\r\n"),
                })
                .collect();
            (
                StatusCode::OK,
                [
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                ],
                body,
            )
                .into_response()
        }
    }
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
