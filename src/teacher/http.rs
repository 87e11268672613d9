//! The retry policy every HTTP teacher shares (Anthropic, OpenAI-compatible, webhook):
//! retries with exponential backoff and jitter on 408, 409, 429, 5xx and 529, honouring
//! `retry-after` (seconds or an HTTP date); a total deadline over all tries; no retry on
//! other 4xx (bad key, unknown model, wrong URL), whose message carries a hint for the fix.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::TeacherError;
use crate::process::CancelToken;

/// Tries per question, the first included.
const MAX_TRIES: u32 = 5;
/// Tries when the server cannot be reached at all (nothing listening is unlikely to change).
const MAX_CONNECT_TRIES: u32 = 2;

/// One JSON POST with the shared retry policy.
pub struct JsonPost<'a> {
    /// The client (connect timeout set).
    pub client: &'a reqwest::blocking::Client,
    /// Where to post.
    pub url: &'a str,
    /// Extra headers (authentication, versions).
    pub headers: &'a [(&'static str, String)],
    /// The body.
    pub body: &'a Value,
    /// Total time for all tries.
    pub deadline: Duration,
    /// The setting that holds the deadline, for messages (`teacher.timeout`).
    pub deadline_key: &'static str,
    /// A hint for a status that is not retried (401: where the key comes from).
    pub hint: &'a dyn Fn(u16) -> String,
}

/// A client with a connect timeout; fails only if TLS cannot be set up.
pub fn client() -> Result<reqwest::blocking::Client, TeacherError> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TeacherError::NotConfigured(format!("build the HTTP client: {e}")))
}

impl JsonPost<'_> {
    /// Posts until a 2xx answer (returned as text), a status that is not retried, the retry
    /// limit or the deadline.
    pub fn send(&self, cancel: &CancelToken) -> Result<String, TeacherError> {
        let started = Instant::now();
        let mut tries = 0;
        let mut connect_failures = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(TeacherError::Cancelled);
            }
            tries += 1;
            let left = self.deadline.saturating_sub(started.elapsed());
            let give_up = |last: String| TeacherError::GaveUp {
                url: self.url.to_string(),
                attempts: tries,
                last,
            };
            if left.is_zero() {
                return Err(give_up(format!(
                    "the deadline ({}) passed",
                    self.deadline_key
                )));
            }
            let mut request = self.client.post(self.url).timeout(left).json(self.body);
            for (name, value) in self.headers {
                request = request.header(*name, value);
            }
            let (wait, last) = match request.send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let text = match resp.text() {
                        Ok(text) => text,
                        Err(e) if e.is_timeout() => {
                            return Err(give_up(self.timed_out()));
                        }
                        Err(e) => {
                            return Err(give_up(format!("read the answer: {}", error_chain(&e))));
                        }
                    };
                    tracing::debug!(
                        "POST {} (try {tries}): HTTP {status} after {:.1}s",
                        self.url,
                        started.elapsed().as_secs_f64()
                    );
                    if (200..300).contains(&status) {
                        return Ok(text);
                    }
                    let message = error_message(&text);
                    if !retryable(status) {
                        return Err(TeacherError::Rejected {
                            url: self.url.to_string(),
                            status,
                            message: format!("{message}{}", (self.hint)(status)),
                        });
                    }
                    (
                        retry_after.unwrap_or_else(|| backoff(tries)),
                        format!("HTTP {status}: {message}"),
                    )
                }
                // The deadline is total: a slow server is not asked again.
                Err(e) if e.is_timeout() => return Err(give_up(self.timed_out())),
                Err(e) => {
                    connect_failures += u32::from(e.is_connect());
                    if connect_failures >= MAX_CONNECT_TRIES {
                        return Err(give_up(format!("cannot connect: {}", error_chain(&e))));
                    }
                    (backoff(tries), error_chain(&e))
                }
            };
            if tries >= MAX_TRIES {
                return Err(give_up(last));
            }
            let left = self.deadline.saturating_sub(started.elapsed());
            if wait >= left {
                return Err(give_up(format!(
                    "{last} (the server asked to wait {}s, past the deadline {})",
                    wait.as_secs(),
                    self.deadline_key
                )));
            }
            tracing::warn!(
                "POST {} (try {tries}): {last}; retrying in {:.1}s",
                self.url,
                wait.as_secs_f64()
            );
            sleep_unless_cancelled(wait, cancel)?;
        }
    }

    fn timed_out(&self) -> String {
        format!(
            "no answer within {} ({}s)",
            self.deadline_key,
            self.deadline.as_secs()
        )
    }
}

/// Statuses worth another try: timeouts, conflicts, rate limits, server errors, overload.
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// `retry-after` in seconds (`2`, `1.5`) or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Exponential backoff with jitter: about 1, 2, 4, 8 s, never more than 30 s.
pub fn backoff(tries: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << tries.saturating_sub(1).min(5));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // ±25 % spread, so many clients do not retry in step.
    let jitter = (nanos % 500) as i64 - 250;
    let ms = (base as i64 + base as i64 * jitter / 1000).clamp(100, 30_000);
    Duration::from_millis(ms as u64)
}

/// Sleeps for `wait`, waking every 50 ms to notice Ctrl-C.
pub fn sleep_unless_cancelled(wait: Duration, cancel: &CancelToken) -> Result<(), TeacherError> {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if cancel.is_cancelled() {
            return Err(TeacherError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    Ok(())
}

/// The server's own message: `error.message` (Anthropic, OpenAI), `message` (n8n), or the
/// start of the body.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
                .or_else(|| v.get("error").filter(|e| e.is_string()))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| crate::failure::clip(body.trim(), 300))
}

/// An error and its causes, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1"), None);
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
        let fourth = backoff(4);
        assert!(fourth >= Duration::from_millis(6000) && fourth <= Duration::from_millis(10_000));
        assert!(backoff(30) <= Duration::from_secs(30));
    }

    #[test]
    fn error_messages_of_each_protocol() {
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            "invalid x-api-key"
        );
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
            ),
            "Incorrect API key provided"
        );
        assert_eq!(
            error_message(
                r#"{"code":404,"message":"The requested webhook \"POST x\" is not registered."}"#
            ),
            "The requested webhook \"POST x\" is not registered."
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
    }
}
