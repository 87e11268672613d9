//! A webhook as teacher (`teacher.mode: webhook`): the prototype's n8n contract.
//!
//! Request (POST, JSON): the prototype's fields `diff`, `error_logs`, `task_description` and
//! `failure_type`, plus `system_prompt` (the prompt for the failure type), `prompt` (the whole
//! redacted failure as the other teachers get it), `description`, `context`, `known_rules`,
//! `prompt_name` and `source: "promptloop"`. Everything in it went through the redactor.
//!
//! Response: `{analysis, rule, error_type}` where `rule` is the markdown rule
//! (`- **Rule**: … / - **When**: … / - **Why**: …`) or an object `{rule, when, why,
//! category?}`. A list holding one such object (n8n's "all incoming items") and a plain
//! markdown body are accepted too.
//!
//! `integrations/n8n/prompt-learning-teacher.json` is a workflow that implements it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Lesson, Teacher, TeacherError, TeacherReply, http};
use crate::failure::FailureContext;
use crate::process::CancelToken;

/// How to reach the webhook.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `n8n.webhook_url`.
    pub url: String,
    /// The bearer token, read from the variable `n8n.bearer_token_env` names.
    pub bearer_token: Option<String>,
    /// That variable's name, for the hint on 401.
    pub bearer_token_env: Option<String>,
    /// `n8n.timeout`: total time for one question, retries included.
    pub deadline: Duration,
}

/// The webhook teacher.
pub struct WebhookTeacher {
    config: WebhookConfig,
    client: reqwest::blocking::Client,
}

impl WebhookTeacher {
    /// A teacher; fails only if the HTTP client cannot be built.
    pub fn new(config: WebhookConfig) -> Result<Self, TeacherError> {
        Ok(Self {
            config,
            client: http::client()?,
        })
    }
}

/// The request body for `lesson` (`follow_up` adds the previous answer and the correction).
pub fn request_body(lesson: &Lesson, follow_up: Option<(&str, &str)>) -> Value {
    let parts = &lesson.parts;
    let mut prompt = lesson.user.clone();
    if let Some((previous, correction)) = follow_up {
        prompt.push_str(&format!(
            "\n\n# Your previous answer\n\n{previous}\n\n# Correction\n\n{correction}\n"
        ));
    }
    json!({
        "diff": parts.diff,
        "error_logs": parts.error_logs,
        "task_description": parts.task,
        "failure_type": lesson.failure_type,
        "description": parts.description,
        "context": parts.context,
        "system_prompt": lesson.system,
        "prompt": prompt,
        "prompt_name": lesson.prompt_name,
        "known_rules": lesson.known_rules,
        "source": "promptloop",
    })
}

impl Teacher for WebhookTeacher {
    fn name(&self) -> String {
        format!("webhook ({})", self.config.url)
    }

    fn ask(
        &self,
        lesson: &Lesson,
        _failure: &FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        let body = request_body(lesson, follow_up);
        let token_env = self.config.bearer_token_env.clone();
        let hint = move |status: u16| hint(status, token_env.as_deref());
        let headers: Vec<(&'static str, String)> = self
            .config
            .bearer_token
            .iter()
            .map(|token| ("authorization", format!("Bearer {token}")))
            .collect();
        let text = http::JsonPost {
            client: &self.client,
            url: &self.config.url,
            headers: &headers,
            body: &body,
            deadline: self.config.deadline,
            deadline_key: "n8n.timeout",
            hint: &hint,
        }
        .send(cancel)?;
        Ok(TeacherReply {
            text: answer_text(&text)?,
            model: None,
            input_tokens: None,
            output_tokens: None,
        })
    }
}

fn hint(status: u16, token_env: Option<&str>) -> String {
    match (status, token_env) {
        (401 | 403, Some(env)) => format!(" (check the token in ${env}, which n8n.bearer_token_env names, against the webhook's Header Auth credential)"),
        (401 | 403, None) => " (the webhook wants a token: put it in an environment variable and set n8n.bearer_token_env to its name)".into(),
        (404, _) => " (check n8n.webhook_url, and that the workflow is active: a /webhook-test/ URL answers only while the editor is listening)".into(),
        _ => String::new(),
    }
}

/// The webhook's answer as text the rule parser reads: `Analysis: …` then the rule.
pub fn answer_text(body: &str) -> Result<String, TeacherError> {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        // Not JSON: a workflow that answers with the model's text as it is.
        Err(_) if !body.trim().is_empty() => return Ok(body.trim().to_string()),
        Err(_) => {
            return Err(TeacherError::BadResponse(
                "the webhook answered with an empty body".into(),
            ));
        }
    };
    let object = match &value {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let Some(map) = object.as_object() else {
        return Err(TeacherError::BadResponse(format!(
            "expected {{analysis, rule, error_type}}, got {}",
            crate::failure::clip(body.trim(), 200)
        )));
    };
    let analysis = map.get("analysis").and_then(Value::as_str).unwrap_or("");
    let error_type = map
        .get("error_type")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let rule = match map.get("rule") {
        Some(Value::String(markdown)) => {
            let markdown = markdown.trim();
            match error_type {
                // The error type becomes the category when the rule has no heading.
                Some(kind) if !markdown.contains("###") && !markdown.is_empty() => {
                    format!("### {}\n{markdown}", category(kind))
                }
                _ => markdown.to_string(),
            }
        }
        Some(Value::Object(fields)) => {
            let mut fields = fields.clone();
            if let Some(kind) = error_type
                && !fields.contains_key("category")
            {
                fields.insert("category".into(), json!(category(kind)));
            }
            Value::Object(fields).to_string()
        }
        Some(other) => {
            return Err(TeacherError::BadResponse(format!(
                "`rule` must be markdown text or an object, got {other}"
            )));
        }
        None => {
            return Err(TeacherError::BadResponse(format!(
                "the webhook's answer has no `rule`: {}",
                crate::failure::clip(body.trim(), 200)
            )));
        }
    };
    Ok(if analysis.trim().is_empty() {
        rule
    } else {
        format!("Analysis: {}\n\n{rule}", analysis.trim())
    })
}

/// `planning_error` → `Planning Error`; free text stays as it is.
fn category(kind: &str) -> String {
    if kind.contains(' ') {
        return kind.to_string();
    }
    kind.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format::parse_answer;

    #[test]
    fn markdown_rule_with_error_type_as_category() {
        let text = answer_text(r#"{"analysis":"It guessed.","rule":"- **Rule**: Check first.\n- **When**: Always.\n- **Why**: It guessed.","error_type":"planning_error"}"#).unwrap();
        assert!(text.starts_with("Analysis: It guessed."));
        let rule = parse_answer(&text).unwrap();
        assert_eq!(rule.rule, "Check first.");
        assert_eq!(rule.category.as_deref(), Some("Planning Error"));
    }

    #[test]
    fn object_rule_and_n8n_item_lists() {
        let text = answer_text(r#"[{"analysis":"a","rule":{"rule":"Use X.","when":"Doing Y.","why":"Z broke."},"error_type":"Logic Error"}]"#).unwrap();
        let rule = parse_answer(&text).unwrap();
        assert_eq!(rule.rule, "Use X.");
        assert_eq!(rule.category.as_deref(), Some("Logic Error"));
    }

    #[test]
    fn garbage_is_a_bad_response() {
        assert!(answer_text("").is_err());
        assert!(answer_text(r#"{"analysis":"a"}"#).is_err());
        assert!(answer_text(r#"{"rule":42}"#).is_err());
        assert!(answer_text("42").is_err());
        // Plain text passes through; the parser decides.
        assert_eq!(answer_text(" - **Rule**: x ").unwrap(), "- **Rule**: x");
    }
}
