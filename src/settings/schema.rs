//! The settings tree: every section of the YAML file with its defaults, the way it is
//! read (nulls and empty strings mean the default) and written back as effective settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;

/// The validated, effective configuration.
///
/// Obtain it from [`load`] (or [`from_yaml_str`]) rather than by deserializing
/// it directly: the loader also validates, expands `~/` and reports unknown
/// keys. [`Settings::default`] is the configuration used when no file exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The teacher LLM that turns failures into rules.
    #[serde(deserialize_with = "null_as_default")]
    pub teacher: TeacherSettings,
    /// Webhook teacher settings (the prototype's n8n integration).
    #[serde(deserialize_with = "null_as_default")]
    pub n8n: N8nSettings,
    /// The retry loop.
    #[serde(deserialize_with = "null_as_default")]
    pub learning: LearningSettings,
    /// Where failures come from; kept as data for later use.
    #[serde(deserialize_with = "failure_sources_or_default")]
    pub failure_sources: Vec<FailureSource>,
    /// Failure type → prompt name or prompt file path. Entries given in the
    /// file are merged over the defaults, so every known type has a prompt.
    #[serde(deserialize_with = "failure_prompts_merged")]
    pub failure_prompts: BTreeMap<String, String>,
    /// The project's tests.
    #[serde(deserialize_with = "null_as_default")]
    pub tests: TestsSettings,
    /// Which agent runs, and the `command` agent's settings.
    #[serde(deserialize_with = "null_as_default")]
    pub agent: AgentSettings,
    /// How Claude Code is run.
    #[serde(deserialize_with = "null_as_default")]
    pub claude: ClaudeSettings,
    /// The semantic review of passing attempts (`failure_sources: semantic`).
    #[serde(deserialize_with = "null_as_default")]
    pub semantic: SemanticSettings,
    /// Agent hooks (`promptloop hook claude`).
    #[serde(deserialize_with = "null_as_default")]
    pub hooks: HooksSettings,
    /// How Codex CLI is run.
    #[serde(deserialize_with = "null_as_default")]
    pub codex: CodexSettings,
    /// How Gemini CLI is run.
    #[serde(deserialize_with = "null_as_default")]
    pub gemini: GeminiSettings,
    /// Where learned rules are written.
    #[serde(deserialize_with = "null_as_default")]
    pub rules: RulesSettings,
    /// Logging.
    #[serde(deserialize_with = "null_as_default")]
    pub logging: LoggingSettings,
    /// What never leaves the machine.
    #[serde(deserialize_with = "null_as_default")]
    pub redaction: RedactionSettings,
    /// How long old runs keep their snapshot refs and record folders.
    #[serde(deserialize_with = "null_as_default")]
    pub retention: RetentionSettings,
    /// Where the rule store lives (SQLite in the project unless a server is named).
    #[serde(deserialize_with = "null_as_default")]
    pub store: StoreSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            teacher: TeacherSettings::default(),
            n8n: N8nSettings::default(),
            learning: LearningSettings::default(),
            failure_sources: default_failure_sources(),
            failure_prompts: default_failure_prompts(),
            tests: TestsSettings::default(),
            agent: AgentSettings::default(),
            claude: ClaudeSettings::default(),
            semantic: SemanticSettings::default(),
            hooks: HooksSettings::default(),
            codex: CodexSettings::default(),
            gemini: GeminiSettings::default(),
            rules: RulesSettings::default(),
            logging: LoggingSettings::default(),
            redaction: RedactionSettings::default(),
            retention: RetentionSettings::default(),
            store: StoreSettings::default(),
        }
    }
}

/// `teacher:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeacherSettings {
    /// Backend; `local` in a file becomes [`TeacherMode::Anthropic`].
    pub mode: TeacherMode,
    /// Model name passed to the backend.
    pub model: String,
    /// Maximum tokens of the teacher's answer.
    pub max_tokens: u32,
    /// API base URL; `None` lets the teacher use `ANTHROPIC_BASE_URL` or the
    /// public default.
    #[serde(deserialize_with = "non_empty_opt")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key; see
    /// [`TeacherSettings::api_key_env_name`] for the default.
    #[serde(deserialize_with = "non_empty_opt")]
    pub api_key_env: Option<String>,
    /// Total deadline for one teacher call.
    #[serde(with = "seconds")]
    pub timeout: Duration,
}

impl Default for TeacherSettings {
    fn default() -> Self {
        Self {
            mode: TeacherMode::Auto,
            model: "claude-sonnet-4-5".to_string(),
            max_tokens: 1024,
            base_url: None,
            api_key_env: None,
            timeout: Duration::from_secs(120),
        }
    }
}

impl TeacherSettings {
    /// The environment variable to read the API key from: the configured one,
    /// else the backend's conventional name; `None` where the mode needs no
    /// key or is not decided yet (`auto`).
    pub fn api_key_env_name(&self) -> Option<&str> {
        match (&self.api_key_env, self.mode) {
            (Some(name), _) => Some(name.as_str()),
            (None, TeacherMode::Anthropic) => Some("ANTHROPIC_API_KEY"),
            (None, TeacherMode::OpenAi) => Some("OPENAI_API_KEY"),
            (None, _) => None,
        }
    }
}

/// `n8n:` section (webhook teacher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct N8nSettings {
    /// Webhook URL; required when the teacher mode is `webhook`.
    #[serde(deserialize_with = "non_empty_opt")]
    pub webhook_url: Option<String>,
    /// Deadline for one webhook call.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Name of the environment variable holding a bearer token. A literal
    /// token in the file is rejected so secrets stay out of config files.
    #[serde(deserialize_with = "non_empty_opt")]
    pub bearer_token_env: Option<String>,
}

impl Default for N8nSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout: Duration::from_secs(60),
            bearer_token_env: None,
        }
    }
}

/// `learning:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LearningSettings {
    /// Retries after the first attempt (0..=20).
    pub max_retries: u32,
    /// Retry automatically after learning a rule.
    pub auto_retry: bool,
    /// Characters of failure context sent to the teacher (2000..=200000).
    pub context_budget: usize,
    /// Validate each rule a run learned, right after the run: rerun its failure with the
    /// rule and without it (`promptloop rules validate`).
    pub validate: bool,
    /// Reruns at most for that validation, both sides counted (2..=200).
    pub validate_budget: u32,
}

impl Default for LearningSettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            auto_retry: true,
            context_budget: 16_000,
            validate: false,
            validate_budget: 6,
        }
    }
}

/// One entry of `failure_sources:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureSource {
    /// Source name; known: pytest, manual, semantic.
    pub name: String,
    /// Free-form kind, e.g. `automated`; filled in for known names if empty.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the source is used.
    pub enabled: bool,
    /// What the source is, in the user's words (the prototype's config has one).
    #[serde(
        deserialize_with = "non_empty_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
}

impl Default for FailureSource {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            enabled: true,
            description: None,
        }
    }
}

/// Known failure source names and their kind in the prototype.
pub(super) const KNOWN_FAILURE_SOURCES: &[(&str, &str)] = &[
    ("pytest", "automated"),
    ("manual", "user_reported"),
    ("semantic", "llm_analysis"),
];

/// Failure types that may appear as keys of `failure_prompts`.
pub const KNOWN_FAILURE_TYPES: &[&str] = &[
    "test_failure",
    "planning_error",
    "integration_error",
    "workflow_error",
    "architecture_error",
    "scope_error",
    "config_error",
    "other",
];

pub(super) fn default_failure_sources() -> Vec<FailureSource> {
    KNOWN_FAILURE_SOURCES
        .iter()
        .map(|(name, kind)| FailureSource {
            name: (*name).to_string(),
            kind: (*kind).to_string(),
            // The prototype marks semantic analysis as a future feature.
            enabled: *name != "semantic",
            description: None,
        })
        .collect()
}

/// The prototype's prompt names (`default` for test failures), and `<type>_system` for
/// every other type: each has a built-in prompt of its own.
pub(super) fn default_failure_prompts() -> BTreeMap<String, String> {
    KNOWN_FAILURE_TYPES
        .iter()
        .map(|kind| {
            let prompt = match *kind {
                "test_failure" => "default".to_string(),
                other => format!("{other}_system"),
            };
            ((*kind).to_string(), prompt)
        })
        .collect()
}

/// `tests:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestsSettings {
    /// Test runner whose output is parsed.
    pub framework: TestFramework,
    /// Shell command that runs the tests (non-empty).
    pub command: String,
    /// Deadline for one test run.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// JUnit XML files the command writes (path or glob relative to the project), read
    /// when `framework` is `junit`; unset looks in the usual places (Surefire, Gradle).
    #[serde(deserialize_with = "non_empty_opt")]
    pub report: Option<String>,
}

impl Default for TestsSettings {
    fn default() -> Self {
        Self {
            framework: TestFramework::Pytest,
            command: "pytest tests/ -v --tb=short".to_string(),
            timeout: Duration::from_secs(120),
            report: None,
        }
    }
}

/// `semantic:` section: the reviewer that reads passing attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SemanticSettings {
    /// Findings below this confidence (0.0..=1.0) are reported but not learned from.
    pub min_confidence: f64,
    /// Findings learned from per attempt, most confident first (1..=10).
    pub max_findings: u32,
}

impl Default for SemanticSettings {
    fn default() -> Self {
        Self {
            min_confidence: 0.7,
            max_findings: 3,
        }
    }
}

/// `hooks:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HooksSettings {
    /// What the Claude Code Stop hook does when the tests fail.
    pub stop: StopAction,
}

/// `claude:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaudeSettings {
    /// Program to run (non-empty).
    pub command: String,
    /// `--max-turns` (1..=500).
    pub max_turns: u32,
    /// `--output-format`.
    pub output_format: OutputFormat,
    /// `--permission-mode`.
    pub permission_mode: PermissionMode,
    /// `--allowedTools` entries.
    #[serde(deserialize_with = "string_list")]
    pub allowed_tools: Vec<String>,
    /// `--model`; `None` leaves Claude Code's default.
    #[serde(deserialize_with = "non_empty_opt")]
    pub model: Option<String>,
    /// Extra arguments appended verbatim; must be a list, never split.
    #[serde(deserialize_with = "string_list")]
    pub extra_args: Vec<String>,
    /// Deadline for one Claude Code run.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Variables added to the inherited environment.
    #[serde(deserialize_with = "agents::env_map")]
    pub env: BTreeMap<String, String>,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            command: "claude".to_string(),
            max_turns: 15,
            output_format: OutputFormat::Json,
            permission_mode: PermissionMode::BypassPermissions,
            allowed_tools: Vec::new(),
            model: None,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(600),
            env: BTreeMap::new(),
        }
    }
}

/// `rules:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesSettings {
    /// Rules file; `None` means the caller's default (`CLAUDE.md` in the
    /// project). A leading `~/` is expanded at load time.
    #[serde(deserialize_with = "non_empty_path")]
    pub file: Option<PathBuf>,
    /// Instruction files kept in step, each getting every learned rule in its own form
    /// (`CLAUDE.md`, `AGENTS.md`, `GEMINI.md`, `.cursor/rules/promptloop.mdc`,
    /// `.github/copilot-instructions.md`, any path). Empty: the file of the agent in use.
    /// Relative paths are taken from the project; `~/` is expanded.
    #[serde(deserialize_with = "path_list")]
    pub targets: Vec<PathBuf>,
    /// Review mode: learned rules are stored as proposed and written to no file until
    /// `promptloop rules approve ID`.
    pub review: bool,
    /// Where learned rules live: `project` (the project's store) or `global` (the user's
    /// store, for rules that hold in every project).
    pub scope: RuleScope,
    /// The size budget of each instruction file, the user's own text included.
    pub budget: RulesBudget,
    /// Ask the teacher whether two rules say the same thing when the text similarity is in
    /// the borderline band (costs a teacher call per borderline pair).
    pub dedup_judge: bool,
    /// Days a rule without evidence (never validated helpful, never learned again, never
    /// recurred) stays in the instruction files; then it ages out of them and stays in the
    /// store. 0: never.
    pub unproven_max_age_days: u32,
    /// An embeddings endpoint that judges the duplicates the method is unsure of (preferred
    /// over the teacher when set).
    pub dedup_embeddings: EmbeddingsSettings,
}

/// `rules.dedup_embeddings:` — an OpenAI-compatible `/v1/embeddings` endpoint (a local
/// Ollama, llama.cpp, or a hosted API). Off while `base_url` is unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbeddingsSettings {
    /// The server (`http://127.0.0.1:11434`, or a URL ending in `/v1`); unset: no judge.
    #[serde(deserialize_with = "non_empty_opt")]
    pub base_url: Option<String>,
    /// The embedding model.
    pub model: String,
    /// Name of the environment variable holding a bearer token, when the server wants one.
    #[serde(deserialize_with = "non_empty_opt")]
    pub api_key_env: Option<String>,
    /// Cosine similarity from which two rules are the same.
    pub same_cosine: f64,
    /// Requests one insert may make (texts already embedded come from a cache).
    pub max_calls: usize,
    /// Per request.
    #[serde(with = "seconds")]
    pub timeout: Duration,
}

impl Default for EmbeddingsSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            model: "nomic-embed-text".to_string(),
            api_key_env: None,
            same_cosine: 0.9,
            max_calls: 2,
            timeout: Duration::from_secs(20),
        }
    }
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            file: None,
            targets: Vec::new(),
            review: false,
            scope: RuleScope::default(),
            budget: RulesBudget::default(),
            dedup_judge: false,
            unproven_max_age_days: 90,
            dedup_embeddings: EmbeddingsSettings::default(),
        }
    }
}

impl RulesSettings {
    /// `unproven_max_age_days` as the curator takes it (`None`: never).
    pub fn unproven_max_age(&self) -> Option<u32> {
        (self.unproven_max_age_days > 0).then_some(self.unproven_max_age_days)
    }
}

closed_enum! {
    /// `rules.scope`.
    RuleScope {
        /// The project's store.
        #[default]
        Project => "project",
        /// The user's store (every project).
        Global => "global" | "user",
        /// The team store (`store.url`): every project in the database.
        Team => "team",
    }
}

/// `rules.budget:` — lines and characters for a whole instruction file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesBudget {
    /// Lines at most (Claude Code's advice: about 200 for CLAUDE.md).
    pub lines: usize,
    /// Characters at most.
    pub chars: usize,
}

impl Default for RulesBudget {
    fn default() -> Self {
        Self {
            lines: 200,
            chars: 12_000,
        }
    }
}

/// `retention:` — old runs' snapshot refs (`refs/promptloop/runs/`) and folders
/// (`.promptloop/runs/`); the store's rules, failures and history always stay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Prune at the end of every run (what `promptloop gc` does with these numbers).
    pub auto: bool,
    /// Keep the last this many runs (1..=1000000).
    pub keep_runs: u32,
    /// Keep the runs of the last this many days, whichever keeps more; 0: by count only.
    pub keep_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            auto: true,
            keep_runs: 100,
            keep_days: 30,
        }
    }
}

/// `store:` — a team store on a PostgreSQL server instead of the project's SQLite file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StoreSettings {
    /// `postgres://user@host:5432/db` (`PROMPTLOOP_STORE_URL` overrides it). The password
    /// comes from an environment reference in the URL (`postgres://app:${PG_PASS}@db/rules`),
    /// `PGPASSWORD` or `.pgpass`; one written in the URL is never printed.
    #[serde(
        deserialize_with = "non_empty_opt",
        serialize_with = "redacted_store_url"
    )]
    pub url: Option<String>,
    /// The project's identity in the team store (default: the `origin` remote's URL,
    /// normalised, so every clone shares one project).
    #[serde(deserialize_with = "non_empty_opt")]
    pub project_id: Option<String>,
}

/// `store.url` as printed (`config check`, `to_yaml`): a password written in it is `***`.
fn redacted_store_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&redact_store_url(url)),
        None => s.serialize_none(),
    }
}

/// A database URL with a literal password replaced by `***` (`${NAME}` references stay).
pub fn redact_store_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.to_ascii_lowercase().contains("password") {
            "***".to_string()
        } else {
            url.to_string()
        };
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = if tail.to_ascii_lowercase().contains("password=") {
        tail.split_once('?')
            .map_or(tail, |(path, _)| path)
            .to_string()
            + "?***"
    } else {
        tail.to_string()
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pass)) if !pass.starts_with('$') => {
                format!("{scheme}://{user}:***@{host}{tail}")
            }
            _ => format!("{scheme}://{userinfo}@{host}{tail}"),
        },
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `logging:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LoggingSettings {
    /// Verbosity.
    pub level: LogLevel,
    /// Log file; `None` writes no log. A leading `~/` is expanded; a relative path is
    /// relative to the project. The prototype's config calls it `log_file`.
    #[serde(alias = "log_file", deserialize_with = "non_empty_path")]
    pub file: Option<PathBuf>,
    /// Line format string, kept as given.
    #[serde(deserialize_with = "non_empty_opt")]
    pub format: Option<String>,
}

/// `redaction:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RedactionSettings {
    /// File-name globs whose content is never sent to a teacher, in addition to the
    /// built-in ones (`.env*`, `*.pem`, `id_*`, …). A glob with a `/` matches the whole
    /// path (`config/secrets/*`, `**/credentials.yml`).
    #[serde(deserialize_with = "string_list")]
    pub private_files: Vec<String>,
    /// Extra regular expressions whose matches are removed before sending; only the
    /// group named `secret` is removed when there is one.
    #[serde(deserialize_with = "string_list")]
    pub patterns: Vec<String>,
}

// ---------------------------------------------------------------------------
// Field deserializers
// ---------------------------------------------------------------------------

impl Settings {
    /// The effective settings as YAML, loadable again with [`load`].
    pub fn to_yaml(&self) -> String {
        // Serializing plain data cannot fail short of non-UTF-8 paths; keep
        // the output valid YAML even then.
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// The effective settings as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::*;
    use std::path::Path;

    #[test]
    fn redaction_section_adds_private_files_and_checked_patterns() {
        let (s, warnings) = parse(
            "redaction:\n  private_files: [\"config/secrets/*\", \"*.vault\"]\n  patterns: ['ACME-[0-9]{6}']\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.redaction.private_files, ["config/secrets/*", "*.vault"]);
        assert_eq!(s.redaction.patterns, ["ACME-[0-9]{6}"]);
        let err = parse_err("redaction:\n  patterns: ['ok', '(unclosed']\n");
        let text = err.to_string();
        assert!(text.contains("redaction.patterns"), "{text}");
        assert!(text.contains("(unclosed"), "{text}");
        assert!(err.position().is_some(), "{text}");
        let err = parse_err("redaction:\n  private_files: ['']\n");
        assert!(err.to_string().contains("redaction.private_files"), "{err}");
    }

    #[test]
    fn every_failure_type_routes_to_its_own_prompt_by_default() {
        let s = Settings::default();
        assert_eq!(s.failure_prompts["test_failure"], "default");
        for kind in KNOWN_FAILURE_TYPES.iter().filter(|k| **k != "test_failure") {
            assert_eq!(s.failure_prompts[*kind], format!("{kind}_system"));
        }
    }

    #[test]
    fn retention_keys_load_with_their_defaults_and_ranges() {
        let d = Settings::default().retention;
        assert!(d.auto);
        assert_eq!((d.keep_runs, d.keep_days), (100, 30));
        let (s, warnings) = from_yaml_str(
            "retention:\n  auto: false\n  keep_runs: 20\n  keep_days: 0\n",
            Path::new("c.yaml"),
            &|_| None,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            s.retention,
            RetentionSettings {
                auto: false,
                keep_runs: 20,
                keep_days: 0
            }
        );
        let err = parse_err("retention:\n  keep_runs: 0\n");
        assert!(err.to_string().contains("retention.keep_runs"), "{err}");
    }

    #[test]
    fn evidence_keys_load_with_their_defaults_and_ranges() {
        let d = Settings::default();
        assert!(!d.learning.validate);
        assert_eq!(d.learning.validate_budget, 6);
        assert_eq!(d.rules.unproven_max_age_days, 90);
        assert_eq!(d.rules.unproven_max_age(), Some(90));
        let (s, warnings) = from_yaml_str(
            "learning:\n  validate: true\n  validate_budget: 10\nrules:\n  unproven_max_age_days: 0\n",
            Path::new("c.yaml"),
            &|_| None,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(s.learning.validate);
        assert_eq!(s.learning.validate_budget, 10);
        assert_eq!(
            s.rules.unproven_max_age(),
            None,
            "0 keeps unproven rules for ever"
        );
        let err = parse_err("learning:\n  validate_budget: 1\n");
        assert!(
            err.to_string().contains("learning.validate_budget"),
            "{err}"
        );
        let err = parse_err("rules:\n  unproven_max_age_days: -3\n");
        assert!(err.to_string().contains("unproven_max_age_days"), "{err}");
    }

    #[test]
    fn rules_store_keys_load_validate_and_override() {
        let (s, warnings) = from_yaml_str(
            "rules:\n  review: true\n  scope: global\n  budget:\n    lines: 150\n    chars: 9000\n  dedup_judge: true\n",
            Path::new("c.yaml"),
            &|_| None,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(s.rules.review && s.rules.dedup_judge);
        assert_eq!(s.rules.scope, RuleScope::Global);
        assert_eq!(s.rules.budget.lines, 150);
        assert_eq!(s.rules.budget.chars, 9000);
        let err = from_yaml_str(
            "rules:\n  budget:\n    lines: 5\n",
            Path::new("c.yaml"),
            &|_| None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("rules.budget.lines"), "{err}");
        let mut s = Settings::default();
        assert!(!s.rules.review);
        s.apply(&Overrides {
            review: Some(true),
            ..Overrides::default()
        })
        .unwrap();
        assert!(s.rules.review);
    }

    #[test]
    fn prototype_config_loads_without_warnings() {
        // The prototype's config.yaml exactly as it ships.
        let (s, warnings) = parse(PROTOTYPE).unwrap();
        assert_eq!(warnings, Vec::new());
        assert_eq!(s.teacher.mode, TeacherMode::Anthropic);
        assert_eq!(s.teacher.model, "claude-3-5-haiku-20241022");
        assert_eq!(s.teacher.max_tokens, 1024);
        assert_eq!(s.teacher.api_key_env_name(), Some("ANTHROPIC_API_KEY"));
        assert_eq!(
            s.n8n.webhook_url.as_deref(),
            Some("https://im4tlai.app.n8n.cloud/webhook/prompt-learning-teacher")
        );
        assert_eq!(s.n8n.timeout, Duration::from_secs(60));
        assert_eq!(s.learning.max_retries, 3);
        assert!(s.learning.auto_retry);
        assert_eq!(s.failure_sources.len(), 3);
        assert_eq!(s.failure_sources[0].kind, "automated");
        assert_eq!(
            s.failure_sources[0].description.as_deref(),
            Some("Captures test failures from pytest runs")
        );
        assert_eq!(s.failure_sources[2].name, "semantic");
        assert_eq!(s.failure_sources[2].kind, "llm_analysis");
        assert!(!s.failure_sources[2].enabled);
        assert_eq!(s.failure_prompts["planning_error"], "planning_error_system");
        // The prototype routes these two to the prompts of their nearest kin.
        assert_eq!(s.failure_prompts["scope_error"], "planning_error_system");
        assert_eq!(
            s.failure_prompts["config_error"],
            "integration_error_system"
        );
        assert_eq!(s.tests.framework, TestFramework::Pytest);
        assert_eq!(s.tests.command, "pytest tests/ -v --tb=short");
        assert_eq!(s.tests.timeout, Duration::from_secs(120));
        assert_eq!(s.claude.max_turns, 15);
        assert_eq!(s.claude.output_format, OutputFormat::Json);
        // `dangerously-skip-permissions` is what it passed: bypassPermissions.
        assert_eq!(s.claude.permission_mode, PermissionMode::BypassPermissions);
        assert_eq!(s.logging.level, LogLevel::Info);
        // `log_file: null`: no log file.
        assert_eq!(s.logging.file, None);
        // The alias shows as its canonical name in the effective settings.
        assert!(s.to_yaml().contains("mode: anthropic"));
        assert!(s.to_yaml().contains("permission_mode: bypassPermissions"));
    }

    #[test]
    fn prototype_readme_config_loads_without_warnings() {
        let (s, warnings) = parse(PROTOTYPE_README).unwrap();
        assert_eq!(warnings, Vec::new());
        assert_eq!(s.teacher.model, "claude-3-5-sonnet-20241022");
        assert_eq!(
            s.n8n.webhook_url.as_deref(),
            Some("https://your-instance.app.n8n.cloud/webhook/prompt-learning-teacher")
        );
        assert_eq!(s.failure_sources.len(), 3);
        assert_eq!(s.claude.permission_mode, PermissionMode::BypassPermissions);
    }

    #[test]
    fn the_prototypes_log_file_key_names_the_log() {
        let s = parse_ok("logging:\n  level: DEBUG\n  log_file: ./learning_loop.log\n");
        assert_eq!(s.logging.level, LogLevel::Debug);
        assert_eq!(s.logging.file, Some(PathBuf::from("./learning_loop.log")));
    }

    #[test]
    fn empty_and_comment_only_files_give_defaults() {
        assert_eq!(parse_ok(""), Settings::default());
        assert_eq!(parse_ok("# nothing here\n\n"), Settings::default());
        assert_eq!(parse_ok("---\n"), Settings::default());
    }

    #[test]
    fn defaults() {
        let s = Settings::default();
        assert_eq!(s.teacher.mode, TeacherMode::Auto);
        assert_eq!(s.teacher.model, "claude-sonnet-4-5");
        assert_eq!(s.teacher.max_tokens, 1024);
        assert_eq!(s.teacher.base_url, None);
        assert_eq!(s.teacher.api_key_env, None);
        assert_eq!(s.teacher.api_key_env_name(), None);
        assert_eq!(s.teacher.timeout, Duration::from_secs(120));
        assert_eq!(s.n8n.webhook_url, None);
        assert_eq!(s.n8n.timeout, Duration::from_secs(60));
        assert_eq!(s.n8n.bearer_token_env, None);
        assert_eq!(s.learning.max_retries, 3);
        assert!(s.learning.auto_retry);
        assert_eq!(s.learning.context_budget, 16_000);
        let names: Vec<_> = s.failure_sources.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["pytest", "manual", "semantic"]);
        assert_eq!(s.failure_prompts.len(), KNOWN_FAILURE_TYPES.len());
        assert_eq!(s.failure_prompts["test_failure"], "default");
        assert_eq!(s.tests.framework, TestFramework::Pytest);
        assert_eq!(s.tests.command, "pytest tests/ -v --tb=short");
        assert_eq!(s.tests.timeout, Duration::from_secs(120));
        assert_eq!(s.claude.command, "claude");
        assert_eq!(s.claude.max_turns, 15);
        assert_eq!(s.claude.output_format, OutputFormat::Json);
        assert_eq!(s.claude.permission_mode, PermissionMode::BypassPermissions);
        assert!(s.claude.allowed_tools.is_empty());
        assert_eq!(s.claude.model, None);
        assert!(s.claude.extra_args.is_empty());
        assert_eq!(s.claude.timeout, Duration::from_secs(600));
        assert_eq!(s.rules.file, None);
        assert_eq!(s.logging.level, LogLevel::Info);
        assert_eq!(s.logging.file, None);
        assert_eq!(s.logging.format, None);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn known_failure_source_gets_its_type() {
        let s = parse_ok("failure_sources:\n  - name: manual\n");
        assert_eq!(
            s.failure_sources,
            vec![FailureSource {
                name: "manual".into(),
                kind: "user_reported".into(),
                enabled: true,
                description: None,
            }]
        );
        let err = parse_err("failure_sources:\n  - type: automated\n");
        assert!(
            err.to_string()
                .contains("failure_sources: every entry needs a name"),
            "{err}"
        );
    }

    #[test]
    fn durations_accept_floats_and_reject_strings() {
        let s = parse_ok("claude:\n  timeout: 1.5\nteacher:\n  timeout: 30\n");
        assert_eq!(s.claude.timeout, Duration::from_millis(1500));
        assert_eq!(s.teacher.timeout, Duration::from_secs(30));
        let err = parse_err("claude:\n  timeout: 10m\n");
        assert!(
            err.to_string()
                .contains("claude.timeout: expected a number of seconds"),
            "{err}"
        );
        let err = parse_err("claude:\n  timeout: -1\n");
        assert_eq!(err.position(), pos(2, 12), "{err}");
    }

    #[test]
    fn lists_must_be_lists() {
        let s = parse_ok(
            "claude:\n  extra_args: [\"--verbose\", \"--x=a b\"]\n  allowed_tools:\n    - Read\n    - Edit\n",
        );
        assert_eq!(s.claude.extra_args, ["--verbose", "--x=a b"]);
        assert_eq!(s.claude.allowed_tools, ["Read", "Edit"]);
        let err = parse_err("claude:\n  extra_args: \"--verbose --debug\"\n");
        assert!(
            err.to_string()
                .starts_with("config.yaml:2:15: claude.extra_args: expected a list of strings"),
            "{err}"
        );
    }

    #[test]
    fn null_sections_and_empty_strings_mean_defaults() {
        let s = parse_ok("teacher:\nclaude:\n  model: \"\"\n  allowed_tools:\nfailure_sources:\n");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn to_yaml_round_trips() -> Result<(), ConfigError> {
        let mut s = parse_ok(PROTOTYPE);
        s.teacher.base_url = Some("http://localhost:8080".into());
        s.teacher.api_key_env = Some("MY_KEY".into());
        s.n8n.bearer_token_env = Some("N8N_TOKEN".into());
        s.claude.extra_args = vec!["--verbose".into(), "a: b".into()];
        s.claude.allowed_tools = vec!["Bash(git:*)".into()];
        s.claude.timeout = Duration::from_millis(2500);
        s.rules.file = Some(PathBuf::from("/abs/CLAUDE.md"));
        s.logging.format = Some("%(asctime)s - %(message)s".into());
        s.failure_prompts
            .insert("other".into(), "prompts/other.md".into());
        for settings in [s, Settings::default()] {
            let yaml = settings.to_yaml();
            let (back, warnings) = parse(&yaml)?;
            assert!(warnings.is_empty(), "{warnings:?}\n{yaml}");
            assert_eq!(back, settings, "{yaml}");
            let json: serde_json::Value =
                serde_json::from_str(&settings.to_json()).map_err(|e| ConfigError::Syntax {
                    at: Origin::Effective,
                    message: e.to_string(),
                })?;
            assert_eq!(json["claude"]["max_turns"], settings.claude.max_turns);
        }
        Ok(())
    }

    #[test]
    fn failure_source_keys() {
        let s = parse_ok(
            "tests:\n  framework: cargo-nextest\n  report: build/*.xml\nsemantic:\n  min_confidence: 0.5\nhooks:\n  stop: block\n",
        );
        assert_eq!(s.tests.framework, TestFramework::Nextest);
        assert_eq!(s.tests.report.as_deref(), Some("build/*.xml"));
        assert_eq!(s.semantic.min_confidence, 0.5);
        assert_eq!(s.semantic.max_findings, 3);
        assert_eq!(s.hooks.stop, StopAction::Block);
        assert_eq!(parse_ok("").hooks.stop, StopAction::Learn);
        assert_eq!(
            parse_ok("tests:\n  framework: pytest\n").tests.framework,
            TestFramework::Pytest
        );
        let err = parse_err("semantic:\n  min_confidence: 1.5\n");
        assert!(err.to_string().contains("semantic.min_confidence"), "{err}");
        let err = parse_err("hooks:\n  stop: maybe\n");
        assert!(err.to_string().contains("learn, block, off"), "{err}");
    }
}
