//! Checks serde cannot express: ranges, URLs, environment variable names, cross-field rules.

use std::fmt;
use std::time::Duration;

use super::*;

/// One failed check: the dotted key and what is wrong.
pub(super) struct Violation {
    pub(super) key: &'static str,
    pub(super) message: String,
}

pub(super) fn check_range<T: PartialOrd + fmt::Display>(
    value: T,
    min: T,
    max: T,
) -> Option<String> {
    (value < min || value > max).then(|| format!("must be between {min} and {max}, got {value}"))
}

pub(super) fn check_positive(value: Duration) -> Option<String> {
    value
        .is_zero()
        .then(|| "must be greater than 0 seconds".to_string())
}

pub(super) fn check_url(value: &Option<String>) -> Option<String> {
    let url = value.as_deref()?;
    (!(url.starts_with("http://") || url.starts_with("https://")))
        .then(|| format!("expected an http:// or https:// url, got {url:?}"))
}

/// A PostgreSQL URL; the message never repeats it (it may hold a password).
pub(super) fn check_store_url(value: &Option<String>) -> Option<String> {
    let url = value.as_deref()?.trim().to_ascii_lowercase();
    (!(url.starts_with("postgres://") || url.starts_with("postgresql://"))).then(|| {
        "expected a postgres:// or postgresql:// url (or no store.url: the project's \
         SQLite file)"
            .to_string()
    })
}

/// Env var names only; anything else is most likely a pasted secret.
pub(super) fn check_env_name(value: &Option<String>) -> Option<String> {
    let name = value.as_deref()?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!valid).then(|| {
        "must be the name of an environment variable (like MY_TOKEN), not the secret itself"
            .to_string()
    })
}

pub(super) fn check_non_empty(value: &str) -> Option<String> {
    value
        .trim()
        .is_empty()
        .then(|| "must not be empty".to_string())
}

impl Settings {
    /// Checks ranges and cross-field rules; the first problem is returned
    /// with [`Origin::Effective`] as its location. [`load`] and
    /// [`Settings::apply`] already call this with better locations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.violations().into_iter().next() {
            Some(v) => Err(ConfigError::Invalid {
                at: Origin::Effective,
                key: v.key.to_string(),
                message: v.message,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn violations(&self) -> Vec<Violation> {
        let t = &self.teacher;
        let c = &self.claude;
        let mut checks: Vec<(&'static str, Option<String>)> = vec![
            ("teacher.model", check_non_empty(&t.model)),
            (
                "teacher.max_tokens",
                check_range(t.max_tokens, 1, 1_000_000),
            ),
            ("teacher.base_url", check_url(&t.base_url)),
            ("teacher.api_key_env", check_env_name(&t.api_key_env)),
            ("teacher.timeout", check_positive(t.timeout)),
            ("n8n.webhook_url", check_url(&self.n8n.webhook_url)),
            ("n8n.timeout", check_positive(self.n8n.timeout)),
            (
                "n8n.bearer_token_env",
                check_env_name(&self.n8n.bearer_token_env),
            ),
            (
                "learning.max_retries",
                check_range(self.learning.max_retries, 0, 20),
            ),
            (
                "learning.context_budget",
                check_range(self.learning.context_budget, 2_000, 200_000),
            ),
            (
                "learning.validate_budget",
                check_range(self.learning.validate_budget, 2, 200),
            ),
            (
                "retention.keep_runs",
                check_range(self.retention.keep_runs, 1, 1_000_000),
            ),
            (
                "retention.keep_days",
                check_range(self.retention.keep_days, 0, 36_500),
            ),
            ("store.url", check_store_url(&self.store.url)),
            (
                "rules.dedup_embeddings.base_url",
                check_url(&self.rules.dedup_embeddings.base_url),
            ),
            (
                "rules.dedup_embeddings.model",
                check_non_empty(&self.rules.dedup_embeddings.model),
            ),
            (
                "rules.dedup_embeddings.api_key_env",
                check_env_name(&self.rules.dedup_embeddings.api_key_env),
            ),
            (
                "rules.dedup_embeddings.same_cosine",
                check_range(self.rules.dedup_embeddings.same_cosine, 0.5, 1.0),
            ),
            (
                "rules.dedup_embeddings.max_calls",
                check_range(self.rules.dedup_embeddings.max_calls, 1, 50),
            ),
            (
                "rules.dedup_embeddings.timeout",
                check_positive(self.rules.dedup_embeddings.timeout),
            ),
            (
                "rules.unproven_max_age_days",
                check_range(self.rules.unproven_max_age_days, 0, 36_500),
            ),
            ("tests.command", check_non_empty(&self.tests.command)),
            ("tests.timeout", check_positive(self.tests.timeout)),
            (
                "semantic.min_confidence",
                check_range(self.semantic.min_confidence, 0.0, 1.0),
            ),
            (
                "semantic.max_findings",
                check_range(self.semantic.max_findings, 1, 10),
            ),
            ("claude.command", check_non_empty(&c.command)),
            ("claude.max_turns", check_range(c.max_turns, 1, 500)),
            ("claude.timeout", check_positive(c.timeout)),
            (
                "rules.budget.lines",
                check_range(self.rules.budget.lines, 20, 100_000),
            ),
            (
                "rules.budget.chars",
                check_range(self.rules.budget.chars, 1_000, 10_000_000),
            ),
            (
                "claude.allowed_tools",
                c.allowed_tools
                    .iter()
                    .any(|t| t.trim().is_empty())
                    .then(|| "entries must not be empty".to_string()),
            ),
            ("claude.env", agents::check_env(&c.env)),
            ("codex.command", check_non_empty(&self.codex.command)),
            ("codex.timeout", check_positive(self.codex.timeout)),
            ("codex.env", agents::check_env(&self.codex.env)),
            ("gemini.command", check_non_empty(&self.gemini.command)),
            ("gemini.timeout", check_positive(self.gemini.timeout)),
            ("gemini.env", agents::check_env(&self.gemini.env)),
            ("agent.timeout", check_positive(self.agent.timeout)),
            ("agent.env", agents::check_env(&self.agent.env)),
            (
                "agent.command",
                self.agent
                    .command
                    .as_deref()
                    .and_then(check_command_template),
            ),
            (
                "rules.targets",
                self.rules
                    .targets
                    .iter()
                    .any(|t| t.as_os_str().is_empty())
                    .then(|| "entries must not be empty".to_string()),
            ),
        ];
        if self.agent.kind == AgentKind::Command && self.agent.command.is_none() {
            checks.push((
                "agent.kind",
                Some(
                    "the command agent needs agent.command, a shell command with {task} \
                     where the task goes, e.g. `aider --yes --message {task}`"
                        .to_string(),
                ),
            ));
        }
        if self.rules.file.is_some() && !self.rules.targets.is_empty() {
            checks.push((
                "rules.targets",
                Some(
                    "set either rules.file (one file) or rules.targets (several), not both"
                        .to_string(),
                ),
            ));
        }
        // The webhook teacher cannot run without somewhere to send to; say
        // so now rather than after the first failing attempt.
        if t.mode == TeacherMode::Webhook && self.n8n.webhook_url.is_none() {
            checks.push((
                "teacher.mode",
                Some("mode webhook needs n8n.webhook_url to be set".to_string()),
            ));
        }
        if self
            .failure_sources
            .iter()
            .any(|s| s.name.trim().is_empty())
        {
            checks.push((
                "failure_sources",
                Some("every entry needs a name".to_string()),
            ));
        }
        if self
            .redaction
            .private_files
            .iter()
            .any(|p| p.trim().is_empty())
        {
            checks.push((
                "redaction.private_files",
                Some("entries must not be empty".to_string()),
            ));
        }
        if let Some(problem) = self
            .redaction
            .patterns
            .iter()
            .find_map(|p| regex::Regex::new(p).err().map(|e| (p, e)))
        {
            checks.push((
                "redaction.patterns",
                Some(format!(
                    "{:?} is not a valid regular expression: {}",
                    problem.0,
                    problem.1.to_string().lines().last().unwrap_or("").trim()
                )),
            ));
        }
        if self.failure_prompts.values().any(|p| p.trim().is_empty()) {
            checks.push((
                "failure_prompts",
                Some("prompt names must not be empty".to_string()),
            ));
        }
        checks
            .into_iter()
            .filter_map(|(key, problem)| problem.map(|message| Violation { key, message }))
            .collect()
    }
}

#[cfg(test)]
mod tests {

    use crate::settings::test_support::*;

    #[test]
    fn validation_errors_point_at_the_value() {
        let err = parse_err("learning:\n  max_retries: 50\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:2:16: learning.max_retries: must be between 0 and 20, got 50"
        );
        let err = parse_err("learning:\n  context_budget: 10\n");
        assert!(err.to_string().contains("between 2000 and 200000"), "{err}");
        let err = parse_err("claude:\n  max_turns: 0\n");
        assert_eq!(err.position(), pos(2, 14));
        let err = parse_err("tests:\n  command: \"  \"\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:2:12: tests.command: must not be empty"
        );
        let err = parse_err("tests:\n  timeout: 0\n");
        assert!(
            err.to_string()
                .contains("tests.timeout: must be greater than 0"),
            "{err}"
        );
        let err = parse_err("n8n:\n  webhook_url: ftp://x\n");
        assert!(
            err.to_string()
                .contains("n8n.webhook_url: expected an http"),
            "{err}"
        );
        // Cross-field: webhook mode without a URL.
        let err = parse_err("teacher:\n  mode: webhook\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:2:9: teacher.mode: mode webhook needs n8n.webhook_url to be set"
        );
    }
}
