//! A run's events as they happen: `.promptloop/runs/<id>/events.jsonl` is read from a byte
//! offset and each complete line is sent as a server-sent event (its `id` is the offset
//! after it, so a reconnecting browser resumes where it was), until `run.finished`.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::view::{PageError, record_id, short};

/// How often a live view looks for new lines.
const POLL: Duration = Duration::from_millis(200);

/// The most read from the log at once.
const CHUNK: u64 = 256 * 1024;

/// A run's log as read so far.
pub(super) struct RunLog {
    /// Each event, described.
    pub(super) events: Vec<Value>,
    /// The byte offset after the last complete line.
    pub(super) offset: u64,
    /// `run.finished` is among them.
    pub(super) finished: bool,
}

fn log_path(app: &App, run_id: &str) -> PathBuf {
    app.project_dir
        .join(crate::store::DIR_NAME)
        .join("runs")
        .join(run_id)
        .join("events.jsonl")
}

/// The run's log, described line by line; `None` when it has none.
pub(super) fn read_log(app: &App, run_id: &str) -> Option<RunLog> {
    let bytes = std::fs::read(log_path(app, run_id)).ok()?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut finished = false;
    let events = String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (kind, text) = describe_line(app, line);
            finished |= kind == "run.finished";
            json!({"type": kind, "text": text})
        })
        .collect();
    Some(RunLog {
        events,
        offset: complete as u64,
        finished,
    })
}

/// One line of the log as (type, words), redacted.
fn describe_line(app: &App, line: &str) -> (String, String) {
    match serde_json::from_str::<Value>(line) {
        Ok(v) => {
            let kind = v["type"].as_str().unwrap_or("event").to_string();
            let text = app.clean(&describe(&v));
            (kind, text)
        }
        // A line cut by a crash: shown as it is, redacted.
        Err(_) => ("unreadable".into(), app.clean(&short(line, 300))),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// What an event says, in words (the same facts the terminal shows).
pub(super) fn describe(v: &Value) -> String {
    match s(v, "type") {
        "run.started" => format!(
            "run started: {} with {} (teacher {}), at most {} attempt(s); rules go to {}",
            short(s(v, "task"), 120),
            s(v, "agent"),
            s(v, "teacher"),
            n(v, "max_attempts"),
            s(v, "rules_file")
        ),
        "attempt.started" => format!(
            "attempt {} of {} started",
            n(v, "attempt"),
            n(v, "max_attempts")
        ),
        "agent.started" => format!("attempt {}: the agent is working", n(v, "attempt")),
        "agent.finished" => {
            let outcome = &v["outcome"];
            let files = v["changed_files"].as_array().map_or(0, Vec::len);
            let mut text = format!(
                "attempt {}: the agent ended ({}), {files} file(s) changed",
                n(v, "attempt"),
                s(outcome, "status").replace('_', " ")
            );
            if let Some(reason) = outcome["reason"].as_str().or(outcome["message"].as_str()) {
                text.push_str(&format!(": {}", short(reason, 200)));
            }
            text
        }
        "tests.started" => format!(
            "attempt {}: tests running: {}",
            n(v, "attempt"),
            short(s(v, "command"), 120)
        ),
        "tests.finished" => {
            let failing = v["failing"].as_array().map_or(0, Vec::len);
            let outcome = s(&v["tests"], "outcome").replace('_', " ");
            if failing > 0 {
                format!(
                    "attempt {}: tests {outcome}, {failing} failing",
                    n(v, "attempt")
                )
            } else {
                format!("attempt {}: tests {outcome}", n(v, "attempt"))
            }
        }
        "failure.captured" => format!(
            "failure {} captured ({}), {} characters for the teacher, {} secret(s) removed",
            s(v, "failure_id"),
            s(v, "failure_type"),
            n(v, "payload_chars"),
            n(v, "redactions")
        ),
        "teacher.started" => format!(
            "asking the teacher {} about {}",
            s(v, "teacher"),
            s(v, "failure_id")
        ),
        "rule.learned" => format!(
            "rule {} {}: {}",
            s(v, "rule_id"),
            s(v, "action"),
            short(s(&v["rule"], "rule"), 200)
        ),
        "failure.recurred" => format!(
            "failure {} repeats {} (recurred {} time(s) since its rule)",
            s(v, "failure_id"),
            s(v, "original_failure_id"),
            n(v, "count")
        ),
        "review.finished" => format!(
            "attempt {}: the reviewer found {} thing(s), {} accepted",
            n(v, "attempt"),
            v["findings"].as_array().map_or(0, Vec::len),
            n(v, "accepted")
        ),
        "review.failed" => format!("the review failed: {}", short(s(v, "reason"), 200)),
        "failure.pending" => format!(
            "failure {} kept pending: {}",
            s(v, "failure_id"),
            short(s(v, "reason"), 200)
        ),
        "attempt.reverted" => format!(
            "attempt {}: its changes were undone (kept under {})",
            n(v, "attempt"),
            s(v, "kept_ref")
        ),
        "warning" => format!("warning: {}", short(s(v, "message"), 300)),
        "run.finished" => format!(
            "run finished: {} after {} attempt(s), {} rule(s) learned, {} pending",
            s(v, "outcome"),
            n(v, "attempts"),
            n(v, "rules_learned"),
            n(v, "pending")
        ),
        other => other.to_string(),
    }
}

/// `?from=OFFSET`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct From {
    from: Option<u64>,
}

/// What one read of the log found.
struct Chunk {
    lines: Vec<(u64, String)>,
    offset: u64,
}

/// The complete lines after `offset` (each with the offset after it).
fn read_from(path: &std::path::Path, offset: u64) -> Chunk {
    let mut out = Chunk {
        lines: Vec::new(),
        offset,
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return out;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return out;
    }
    let mut bytes = Vec::new();
    if file.take(CHUNK).read_to_end(&mut bytes).is_err() {
        return out;
    }
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            let line = String::from_utf8_lossy(&bytes[start..i]).into_owned();
            out.offset = offset + i as u64 + 1;
            if !line.trim().is_empty() {
                out.lines.push((out.offset, line));
            }
            start = i + 1;
        }
    }
    out
}

/// `GET /runs/{id}/events`: the run's events from `?from=` (or `Last-Event-ID`) on, as
/// server-sent events named `run-event` (`{"type", "text"}`), then `end`.
pub(super) async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(from): Query<From>,
    headers: HeaderMap,
) -> Response {
    let id = match record_id(&id) {
        Ok(id) => id.to_string(),
        Err(e) => return e.into_response(),
    };
    let path = log_path(&app, &id);
    if !path.parent().is_some_and(std::path::Path::is_dir) {
        return PageError::NotFound(format!("no run {id}")).into_response();
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let offset = resume.or(from.from).unwrap_or(0);
    struct Tail {
        app: Arc<App>,
        path: PathBuf,
        offset: u64,
        queue: std::collections::VecDeque<SseEvent>,
        ended: bool,
    }
    let tail = Tail {
        app,
        path,
        offset,
        queue: Default::default(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some(event) = tail.queue.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(event), tail));
            }
            if tail.ended || *tail.app.stopping.borrow() {
                return None;
            }
            let (path, offset) = (tail.path.clone(), tail.offset);
            let chunk = tokio::task::spawn_blocking(move || read_from(&path, offset))
                .await
                .unwrap_or(Chunk {
                    lines: Vec::new(),
                    offset,
                });
            tail.offset = chunk.offset;
            for (after, line) in chunk.lines {
                let (kind, text) = describe_line(&tail.app, &line);
                let finished = kind == "run.finished";
                let data = json!({"type": kind, "text": text}).to_string();
                tail.queue.push_back(
                    SseEvent::default()
                        .event("run-event")
                        .id(after.to_string())
                        .data(data),
                );
                if finished {
                    tail.queue
                        .push_back(SseEvent::default().event("end").data("finished"));
                    tail.ended = true;
                }
            }
            if tail.queue.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_of_a_run_reads_as_words() {
        let started = json!({"type": "run.started", "task": "Fix it", "agent": "claude",
            "teacher": "offline", "max_attempts": 3, "rules_file": "CLAUDE.md"});
        assert_eq!(
            describe(&started),
            "run started: Fix it with claude (teacher offline), at most 3 attempt(s); rules go to CLAUDE.md"
        );
        let tests = json!({"type": "tests.finished", "attempt": 2,
            "tests": {"outcome": "failed"}, "failing": ["a", "b"]});
        assert_eq!(describe(&tests), "attempt 2: tests failed, 2 failing");
        let agent = json!({"type": "agent.finished", "attempt": 1,
            "outcome": {"status": "timed_out"}, "changed_files": ["x"]});
        assert_eq!(
            describe(&agent),
            "attempt 1: the agent ended (timed out), 1 file(s) changed"
        );
        let rule = json!({"type": "rule.learned", "rule_id": "r-1", "action": "added",
            "rule": {"rule": "Return None"}});
        assert_eq!(describe(&rule), "rule r-1 added: Return None");
    }

    #[test]
    fn only_complete_lines_are_read_and_the_offset_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\"").unwrap();
        let first = read_from(&path, 0);
        assert_eq!(first.lines.len(), 2);
        assert_eq!(first.offset, 16);
        assert_eq!(first.lines[1].0, 16);
        let again = read_from(&path, first.offset);
        assert!(again.lines.is_empty());
        assert_eq!(again.offset, 16);
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n").unwrap();
        let more = read_from(&path, first.offset);
        assert_eq!(more.lines.len(), 1);
        assert_eq!(more.lines[0].1, "{\"c\":3}");
    }
}
