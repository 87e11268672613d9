//! Command-line flags over the file: each flag overrides one key, and its errors name the flag.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

impl Settings {
    /// Applies command-line overrides (flags beat the file) and re-validates.
    /// Errors name the flag, e.g. `--teacher: unknown value "gpt", ...`.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        let flag_error = |flag: &str, key: &str, message: String| ConfigError::Invalid {
            at: Origin::Flag(flag.to_string()),
            key: key.to_string(),
            message,
        };
        // Parse every enum-like flag before changing anything, so a bad flag
        // leaves the settings untouched.
        let teacher_mode = overrides
            .teacher_mode
            .as_deref()
            .map(TeacherMode::parse)
            .transpose()
            .map_err(|m| flag_error(FLAG_TEACHER, "teacher.mode", m))?;
        let test_framework = overrides
            .test_framework
            .as_deref()
            .map(TestFramework::parse)
            .transpose()
            .map_err(|m| flag_error(FLAG_TEST_FRAMEWORK, "tests.framework", m))?;
        let permission_mode = overrides
            .permission_mode
            .as_deref()
            .map(PermissionMode::parse)
            .transpose()
            .map_err(|m| flag_error(FLAG_PERMISSION_MODE, "claude.permission_mode", m))?;
        let log_level = overrides
            .log_level
            .as_deref()
            .map(LogLevel::parse)
            .transpose()
            .map_err(|m| flag_error(FLAG_LOG_LEVEL, "logging.level", m))?;
        let agent_kind = overrides
            .agent_kind
            .as_deref()
            .map(AgentKind::parse)
            .transpose()
            .map_err(|m| flag_error(FLAG_AGENT, "agent.kind", m))?;

        let mut next = self.clone();
        let o = overrides;
        set(&mut next.learning.max_retries, o.max_retries);
        set(&mut next.learning.auto_retry, o.auto_retry);
        set(&mut next.learning.context_budget, o.context_budget);
        set(&mut next.teacher.mode, teacher_mode);
        set(&mut next.teacher.model, o.teacher_model.clone());
        if o.webhook_url.is_some() {
            next.n8n.webhook_url = o.webhook_url.clone();
        }
        if o.rules_file.is_some() {
            // One explicit file replaces the list of targets.
            next.rules.file = o.rules_file.clone();
            next.rules.targets.clear();
        }
        set(&mut next.agent.kind, agent_kind);
        set(&mut next.rules.review, o.review);
        set(&mut next.tests.command, o.test_command.clone());
        set(&mut next.tests.framework, test_framework);
        set(&mut next.tests.timeout, o.test_timeout);
        set(&mut next.claude.command, o.claude_command.clone());
        if o.claude_model.is_some() {
            next.claude.model = o.claude_model.clone();
        }
        set(&mut next.claude.max_turns, o.max_turns);
        set(&mut next.claude.permission_mode, permission_mode);
        set(&mut next.logging.level, log_level);

        if let Some(v) = next.violations().into_iter().next() {
            // File values were validated at load, so a new problem comes
            // from a flag; name it when we can tell which.
            let at = flag_for_key(v.key, o).map_or(Origin::Effective, |f| Origin::Flag(f.into()));
            return Err(ConfigError::Invalid {
                at,
                key: v.key.to_string(),
                message: v.message,
            });
        }
        *self = next;
        Ok(())
    }
}

pub(super) fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Flag names used in override error messages.
pub const FLAG_MAX_RETRIES: &str = "--max-retries";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_AUTO_RETRY: &str = "--auto-retry";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_CONTEXT_BUDGET: &str = "--context-budget";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_TEACHER: &str = "--teacher";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_TEACHER_MODEL: &str = "--teacher-model";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_WEBHOOK_URL: &str = "--webhook-url";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_RULES_FILE: &str = "--rules-file";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_TEST_COMMAND: &str = "--test-command";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_TEST_FRAMEWORK: &str = "--test-framework";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_TEST_TIMEOUT: &str = "--test-timeout";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_CLAUDE_COMMAND: &str = "--claude-command";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_MODEL: &str = "--model";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_MAX_TURNS: &str = "--max-turns";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_PERMISSION_MODE: &str = "--permission-mode";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_LOG_LEVEL: &str = "--log-level";
/// See [`FLAG_MAX_RETRIES`].
pub const FLAG_AGENT: &str = "--agent";

/// Maps a violated key to the flag that set it, if one did.
pub(super) fn flag_for_key(key: &str, o: &Overrides) -> Option<&'static str> {
    let (flag, given) = match key {
        "learning.max_retries" => (FLAG_MAX_RETRIES, o.max_retries.is_some()),
        "learning.context_budget" => (FLAG_CONTEXT_BUDGET, o.context_budget.is_some()),
        "teacher.mode" => (FLAG_TEACHER, o.teacher_mode.is_some()),
        "teacher.model" => (FLAG_TEACHER_MODEL, o.teacher_model.is_some()),
        "n8n.webhook_url" => (FLAG_WEBHOOK_URL, o.webhook_url.is_some()),
        "tests.command" => (FLAG_TEST_COMMAND, o.test_command.is_some()),
        "tests.timeout" => (FLAG_TEST_TIMEOUT, o.test_timeout.is_some()),
        "claude.command" => (FLAG_CLAUDE_COMMAND, o.claude_command.is_some()),
        "claude.max_turns" => (FLAG_MAX_TURNS, o.max_turns.is_some()),
        "agent.kind" => (FLAG_AGENT, o.agent_kind.is_some()),
        _ => return None,
    };
    given.then_some(flag)
}

/// Command-line values that replace file values; `None` keeps the file's.
/// Enum-like values are strings so [`Settings::apply`] can report a bad one
/// with the valid values, exactly like a bad file value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--max-retries`.
    pub max_retries: Option<u32>,
    /// `--review`.
    pub review: Option<bool>,
    /// `--auto-retry` / `--no-auto-retry`.
    pub auto_retry: Option<bool>,
    /// `--context-budget`.
    pub context_budget: Option<usize>,
    /// `--teacher`.
    pub teacher_mode: Option<String>,
    /// `--teacher-model`.
    pub teacher_model: Option<String>,
    /// `--webhook-url`.
    pub webhook_url: Option<String>,
    /// `--rules-file`; taken as given (the shell has expanded `~`).
    pub rules_file: Option<PathBuf>,
    /// `--test-command`.
    pub test_command: Option<String>,
    /// `--test-framework`.
    pub test_framework: Option<String>,
    /// `--test-timeout`.
    pub test_timeout: Option<Duration>,
    /// `--claude-command`.
    pub claude_command: Option<String>,
    /// `--model` (Claude Code's model).
    pub claude_model: Option<String>,
    /// `--max-turns`.
    pub max_turns: Option<u32>,
    /// `--permission-mode`.
    pub permission_mode: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--agent`: claude, codex, gemini or command.
    pub agent_kind: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::*;

    #[test]
    fn overrides_beat_the_file() -> Result<(), ConfigError> {
        let mut s = parse_ok(PROTOTYPE);
        s.apply(&Overrides {
            max_retries: Some(7),
            auto_retry: Some(false),
            teacher_mode: Some("OFFLINE".into()),
            rules_file: Some(PathBuf::from("/tmp/rules.md")),
            test_command: Some("cargo test".into()),
            test_framework: Some("none".into()),
            max_turns: Some(40),
            permission_mode: Some("plan".into()),
            claude_model: Some("opus".into()),
            ..Overrides::default()
        })?;
        assert_eq!(s.learning.max_retries, 7);
        assert!(!s.learning.auto_retry);
        assert_eq!(s.teacher.mode, TeacherMode::Offline);
        assert_eq!(s.rules.file, Some(PathBuf::from("/tmp/rules.md")));
        assert_eq!(s.tests.command, "cargo test");
        assert_eq!(s.tests.framework, TestFramework::None);
        assert_eq!(s.claude.max_turns, 40);
        assert_eq!(s.claude.permission_mode, PermissionMode::Plan);
        assert_eq!(s.claude.model.as_deref(), Some("opus"));
        // Untouched values stay.
        assert_eq!(s.teacher.model, "claude-3-5-haiku-20241022");
        Ok(())
    }

    #[test]
    fn bad_overrides_name_the_flag_and_change_nothing() {
        let mut s = Settings::default();
        let before = s.clone();
        let err = s.apply(&Overrides {
            max_retries: Some(1),
            teacher_mode: Some("gpt".into()),
            ..Overrides::default()
        });
        let err = err.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "--teacher: unknown value \"gpt\", expected one of: auto, anthropic (alias local), \
                 offline, openai, webhook, claude-cli"
            )
        );
        assert_eq!(s, before);

        let err = s.apply(&Overrides {
            max_retries: Some(50),
            ..Overrides::default()
        });
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("--max-retries: must be between 0 and 20, got 50")
        );
        let err = s.apply(&Overrides {
            teacher_mode: Some("webhook".into()),
            ..Overrides::default()
        });
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("--teacher: mode webhook needs n8n.webhook_url to be set")
        );
        assert_eq!(s, before);
    }
}
