//! Settings of the agents promptloop drives: which one runs (`agent.kind`), the `command`
//! agent's template (`agent:`), and the `codex:` and `gemini:` sections. The prototype's
//! `claude:` section stays in the parent module.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::*;

closed_enum! {
    /// Which agent CLI works on the task.
    AgentKind {
        /// Claude Code (`claude -p`), the prototype's agent.
        #[default]
        Claude => "claude" | "claude-code",
        /// OpenAI's Codex CLI (`codex exec`).
        Codex => "codex",
        /// Google's Gemini CLI (`gemini -p`).
        Gemini => "gemini" | "gemini-cli",
        /// Any other agent: a shell command template (`agent.command`).
        Command => "command",
    }
}

impl AgentKind {
    /// The instruction file this agent reads from the project, which is where its rules go
    /// by default. The `command` agent's file is configurable (`agent.rules_file`).
    pub fn default_rules_file(self) -> &'static str {
        match self {
            AgentKind::Claude => "CLAUDE.md",
            AgentKind::Codex | AgentKind::Command => "AGENTS.md",
            AgentKind::Gemini => "GEMINI.md",
        }
    }
}

/// The placeholders an `agent.command` template may contain.
pub const COMMAND_PLACEHOLDERS: &[&str] = &["{task}", "{project_dir}"];

/// `agent:` section: which agent runs, and the settings of the `command` agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    /// The agent: claude, codex, gemini or command.
    pub kind: AgentKind,
    /// For `command`: a shell command with `{task}` and `{project_dir}` placeholders, which
    /// promptloop replaces with shell-quoted values (so they are written without quotes).
    #[serde(deserialize_with = "non_empty_opt")]
    pub command: Option<String>,
    /// For `command`: the instruction file the agent reads (default `AGENTS.md`).
    #[serde(deserialize_with = "non_empty_path")]
    pub rules_file: Option<PathBuf>,
    /// For `command`: deadline for one run.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// For `command`: variables added to the inherited environment.
    #[serde(deserialize_with = "env_map")]
    pub env: BTreeMap<String, String>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            kind: AgentKind::Claude,
            command: None,
            rules_file: None,
            timeout: Duration::from_secs(600),
            env: BTreeMap::new(),
        }
    }
}

/// `codex:` section (OpenAI Codex CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodexSettings {
    /// Program to run (non-empty).
    pub command: String,
    /// `-m`; `None` leaves Codex's configured model.
    #[serde(deserialize_with = "non_empty_opt")]
    pub model: Option<String>,
    /// Extra arguments, e.g. `["-c", "model_provider=…"]`; a list, never split.
    #[serde(deserialize_with = "string_list")]
    pub extra_args: Vec<String>,
    /// Variables added to the inherited environment.
    #[serde(deserialize_with = "env_map")]
    pub env: BTreeMap<String, String>,
    /// Deadline for one run (Codex has no turn limit of its own).
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// `CODEX_HOME` for the agent, used only when the environment sets none, so a user's
    /// own `CODEX_HOME` always wins. `None`: Codex's default (`~/.codex`, with the user's
    /// login and config.toml).
    #[serde(deserialize_with = "non_empty_path")]
    pub home: Option<PathBuf>,
}

impl Default for CodexSettings {
    fn default() -> Self {
        Self {
            command: "codex".to_string(),
            model: None,
            extra_args: Vec::new(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(600),
            home: None,
        }
    }
}

/// `gemini:` section (Google Gemini CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeminiSettings {
    /// Program to run (non-empty).
    pub command: String,
    /// `-m`; `None` lets Gemini CLI route between its models.
    #[serde(deserialize_with = "non_empty_opt")]
    pub model: Option<String>,
    /// Extra arguments appended verbatim; a list, never split.
    #[serde(deserialize_with = "string_list")]
    pub extra_args: Vec<String>,
    /// Variables added to the inherited environment.
    #[serde(deserialize_with = "env_map")]
    pub env: BTreeMap<String, String>,
    /// Deadline for one run. Gemini CLI's turn limit is its own setting
    /// `model.maxSessionTurns` in `~/.gemini/settings.json`.
    #[serde(with = "seconds")]
    pub timeout: Duration,
}

impl Default for GeminiSettings {
    fn default() -> Self {
        Self {
            command: "gemini".to_string(),
            model: None,
            extra_args: Vec::new(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// A mapping of environment variables; numbers and booleans are taken as their text
/// (`CLAUDE_CODE_MAX_RETRIES: 2`), a key without a value is the empty string.
pub(super) fn env_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Scalar(String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct ScalarVisitor;
            impl Visitor<'_> for ScalarVisitor {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar(String::new()))
                }
                fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar(String::new()))
                }
            }
            deserializer.deserialize_any(ScalarVisitor)
        }
    }

    let map = Option::<BTreeMap<String, Scalar>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Environment names must be names, and secrets stay out of config files: the agent
/// inherits promptloop's environment, so a key exported in the shell reaches it anyway.
pub(super) fn check_env(env: &BTreeMap<String, String>) -> Option<String> {
    for name in env.keys() {
        if check_env_name(&Some(name.clone())).is_some() {
            return Some(format!(
                "{name:?} is not an environment variable name (letters, digits and _)"
            ));
        }
        let upper = name.to_ascii_uppercase();
        let secret = upper == "KEY"
            || upper.ends_with("_KEY")
            || ["TOKEN", "SECRET", "PASSWORD", "API_KEY"]
                .iter()
                .any(|s| upper.contains(s));
        if secret {
            return Some(format!(
                "{name} looks like a secret, and secrets are not allowed in the config file; \
                 export it in the environment instead (the agent inherits promptloop's \
                 environment)"
            ));
        }
    }
    None
}

/// The `agent.command` template: placeholders must stand outside quotes, because
/// promptloop quotes the values itself and quotes inside quotes would become literal.
pub fn check_command_template(template: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let mut escaped = false;
    for (i, c) in template.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Quote::Single, '\'') => quote = Quote::None,
            (Quote::Single, _) => {}
            (_, '\\') => escaped = true,
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Double, '"') => quote = Quote::None,
            _ => {}
        }
        if quote != Quote::None
            && let Some(p) = COMMAND_PLACEHOLDERS
                .iter()
                .find(|p| template[i..].starts_with(*p))
        {
            return Some(format!(
                "write {p} without quotes around it: promptloop replaces it with a \
                 shell-quoted value, e.g. `my-agent --message {p}`"
            ));
        }
    }
    (quote != Quote::None).then(|| "has an unclosed quote".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn placeholders_inside_quotes_are_refused() {
        assert_eq!(check_command_template("aider --message {task}"), None);
        assert_eq!(
            check_command_template("cd {project_dir} && ./agent.sh {task} 'literal {x}'"),
            None
        );
        assert!(
            check_command_template("aider --message \"{task}\"")
                .is_some_and(|m| m.contains("write {task} without quotes"))
        );
        assert!(check_command_template("run '{project_dir}'").is_some());
        // An escaped quote does not open a quoted string.
        assert_eq!(check_command_template("echo \\\" {task}"), None);
        assert!(
            check_command_template("echo 'oops {task}")
                .is_some_and(|m| m.contains("without quotes"))
        );
        assert_eq!(
            check_command_template("echo 'oops"),
            Some("has an unclosed quote".into())
        );
    }

    #[test]
    fn env_names_and_secrets_are_checked() {
        let env = |k: &str| BTreeMap::from([(k.to_string(), "v".to_string())]);
        assert_eq!(check_env(&env("CLAUDE_CODE_MAX_RETRIES")), None);
        assert_eq!(check_env(&env("GOOGLE_GEMINI_BASE_URL")), None);
        assert!(check_env(&env("OPENAI_API_KEY")).is_some_and(|m| m.contains("secret")));
        assert!(check_env(&env("GH_TOKEN")).is_some());
        assert!(check_env(&env("1BAD")).is_some_and(|m| m.contains("not an environment")));
    }

    fn parse(text: &str) -> Result<(Settings, Vec<ConfigWarning>), ConfigError> {
        from_yaml_str(text, Path::new("config.yaml"), &|name: &str| {
            (name == "HOME").then(|| "/home/u".to_string())
        })
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn agent_sections_load_with_their_values() {
        let (s, warnings) = parse(
            "agent:\n  kind: Codex\n  command: my-agent --message {task}\n  rules_file: ~/AI.md\n  \
             timeout: 30\n  env:\n    LEVEL: 2\n    VERBOSE: true\n    EMPTY:\n\
             claude:\n  env: {CLAUDE_CODE_MAX_RETRIES: 2}\n\
             codex:\n  command: /opt/codex\n  model: gpt-5.5\n  extra_args: [-c, model_provider=fake]\n  \
             home: ~/codex-home\n  timeout: 90\n\
             gemini:\n  model: gemini-2.5-pro\n  extra_args: [--debug]\n  env: {GOOGLE_GEMINI_BASE_URL: \"http://127.0.0.1:9\"}\n\
             rules:\n  targets: [CLAUDE.md, AGENTS.md, GEMINI.md, .cursor/rules/promptloop.mdc, ~/x.md]\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.agent.kind, AgentKind::Codex);
        assert_eq!(
            s.agent.command.as_deref(),
            Some("my-agent --message {task}")
        );
        assert_eq!(s.agent.rules_file, Some(PathBuf::from("/home/u/AI.md")));
        assert_eq!(s.agent.timeout, Duration::from_secs(30));
        assert_eq!(
            s.agent.env,
            BTreeMap::from([
                ("EMPTY".to_string(), String::new()),
                ("LEVEL".to_string(), "2".to_string()),
                ("VERBOSE".to_string(), "true".to_string()),
            ])
        );
        assert_eq!(s.claude.env["CLAUDE_CODE_MAX_RETRIES"], "2");
        assert_eq!(s.codex.command, "/opt/codex");
        assert_eq!(s.codex.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(s.codex.extra_args, ["-c", "model_provider=fake"]);
        assert_eq!(s.codex.home, Some(PathBuf::from("/home/u/codex-home")));
        assert_eq!(s.codex.timeout, Duration::from_secs(90));
        assert_eq!(s.gemini.model.as_deref(), Some("gemini-2.5-pro"));
        assert_eq!(s.gemini.command, "gemini");
        assert_eq!(s.rules.targets.len(), 5);
        assert_eq!(s.rules.targets[4], PathBuf::from("/home/u/x.md"));
        // The effective settings load back to the same value.
        let (back, w) = parse(&s.to_yaml()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(back, s);
    }

    #[test]
    fn defaults_keep_the_prototype_agent() {
        let s = Settings::default();
        assert_eq!(s.agent.kind, AgentKind::Claude);
        assert_eq!(s.agent.command, None);
        assert_eq!(s.codex.command, "codex");
        assert_eq!(s.codex.home, None);
        assert_eq!(s.gemini.command, "gemini");
        assert!(s.rules.targets.is_empty());
    }

    #[test]
    fn bad_agent_settings_are_errors_at_their_place() {
        assert_eq!(
            error("agent:\n  kind: aider\n"),
            "config.yaml:2:9: agent.kind: unknown value \"aider\", expected one of: claude \
             (alias claude-code), codex, gemini (alias gemini-cli), command"
        );
        assert!(
            error("agent:\n  kind: command\n")
                .contains("agent.kind: the command agent needs agent.command"),
        );
        assert!(
            error("agent:\n  kind: command\n  command: aider --message \"{task}\"\n")
                .starts_with("config.yaml:3:12: agent.command: write {task} without quotes"),
        );
        assert!(
            error("codex:\n  env:\n    OPENAI_API_KEY: sk-123\n")
                .contains("codex.env: OPENAI_API_KEY looks like a secret")
        );
        assert!(error("gemini:\n  extra_args: --debug\n").contains("expected a list of strings"));
        assert!(error("codex:\n  timeout: 0\n").contains("codex.timeout: must be greater than 0"));
        assert!(
            error("rules:\n  file: R.md\n  targets: [A.md]\n").contains("set either rules.file")
        );
        // A typo gets a suggestion.
        let (_, warnings) = parse("gemini:\n  modle: x\n").unwrap();
        assert_eq!(
            warnings[0].to_string(),
            "config.yaml:2:3: gemini.modle: unknown key, ignored (did you mean `gemini.model`?)"
        );
    }

    #[test]
    fn the_agent_flag_overrides_and_one_rules_file_replaces_targets() {
        let (mut s, _) = parse("rules:\n  targets: [A.md, B.md]\n").unwrap();
        s.apply(&Overrides {
            agent_kind: Some("gemini".into()),
            rules_file: Some(PathBuf::from("ONLY.md")),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.agent.kind, AgentKind::Gemini);
        assert_eq!(s.rules.file, Some(PathBuf::from("ONLY.md")));
        assert!(s.rules.targets.is_empty());
        let before = s.clone();
        let err = s.apply(&Overrides {
            agent_kind: Some("cursor".into()),
            ..Overrides::default()
        });
        assert!(err.is_err_and(|e| {
            e.to_string()
                .starts_with("--agent: unknown value \"cursor\"")
        }),);
        let err = s.apply(&Overrides {
            agent_kind: Some("command".into()),
            ..Overrides::default()
        });
        assert!(err.is_err_and(|e| {
            e.to_string()
                .starts_with("--agent: the command agent needs agent.command")
        }),);
        assert_eq!(s, before);
    }

    #[test]
    fn each_agent_has_its_instruction_file() {
        assert_eq!(AgentKind::Claude.default_rules_file(), "CLAUDE.md");
        assert_eq!(AgentKind::Codex.default_rules_file(), "AGENTS.md");
        assert_eq!(AgentKind::Gemini.default_rules_file(), "GEMINI.md");
        assert_eq!(AgentKind::Command.default_rules_file(), "AGENTS.md");
        assert_eq!(AgentKind::parse("Gemini-CLI"), Ok(AgentKind::Gemini));
        assert!(AgentKind::parse("aider").is_err_and(|m| m.contains("claude")));
    }
}
