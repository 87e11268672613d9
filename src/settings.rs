//! Configuration for promptloop: discovery, loading, validation and flag
//! overrides, producing one validated [`Settings`] value.
//!
//! The file format is YAML and is a superset of the Python prototype's
//! `config.yaml`, which must load unchanged and without warnings.
//!
//! Loading runs two passes over the text with serde-saphyr:
//! 1. an untyped pass into a tree of [`serde_saphyr::Spanned`] nodes, which
//!    reports YAML syntax errors and records the line and column of every key
//!    and value, so later errors and warnings can point into the file;
//! 2. a typed pass into [`Settings`] through `serde_ignored`, which collects
//!    unknown keys instead of silently dropping them. Type errors carry a
//!    location from serde-saphyr; the tree turns that location back into the
//!    dotted key path.
//!
//! Validation that serde cannot express (ranges, cross-field rules) runs
//! afterwards and is located through the same tree.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::{MessageFormatter, Spanned};

/// File name looked up in the working directory.
pub const PROJECT_FILE_NAME: &str = "promptloop.yaml";

/// Path of the user-level file below the XDG config directory.
pub const USER_FILE_RELATIVE: &str = "promptloop/config.yaml";

// ---------------------------------------------------------------------------
// Closed sets
// ---------------------------------------------------------------------------

/// Declares an enum for a closed set of string values with its canonical
/// spelling, accepted aliases, case-insensitive parsing and serde impls, so
/// every enum-like field reports its valid values the same way.
macro_rules! closed_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident => $canon:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// Every value, in the order they are listed in messages.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The canonical spelling, as written to the effective settings.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $canon,)+
                }
            }

            /// Alternative spellings accepted on input.
            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*],)+
                }
            }

            /// The valid values for messages, aliases in parentheses.
            pub fn expected() -> String {
                expected_list(Self::ALL.iter().map(|v| (v.as_str(), v.aliases())))
            }

            /// Parses a value case-insensitively (treating `_` like `-`);
            /// the error is a message listing the valid values.
            pub fn parse(input: &str) -> Result<Self, String> {
                let wanted = normalize_choice(input);
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| {
                        normalize_choice(v.as_str()) == wanted
                            || v.aliases().iter().any(|a| normalize_choice(a) == wanted)
                    })
                    .ok_or_else(|| {
                        format!(
                            "unknown value {:?}, expected one of: {}",
                            input,
                            Self::expected()
                        )
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(de::Error::custom)
            }
        }
    };
}

/// Lowercases and maps `_` to `-` so `Claude_CLI` and `claude-cli` match.
fn normalize_choice(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('_', "-")
}

fn expected_list<'a>(items: impl Iterator<Item = (&'a str, &'a [&'a str])>) -> String {
    items
        .map(|(canon, aliases)| {
            if aliases.is_empty() {
                canon.to_string()
            } else {
                format!("{canon} (alias {})", aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

closed_enum! {
    /// Which backend the teacher LLM uses.
    TeacherMode {
        /// Pick a backend from what is available at run time.
        #[default]
        Auto => "auto",
        /// Anthropic Messages API; `local` is the prototype's name for it.
        Anthropic => "anthropic" | "local",
        /// No LLM: rules are derived without a teacher.
        Offline => "offline",
        /// An OpenAI-compatible chat API.
        OpenAi => "openai",
        /// An n8n (or other) webhook, configured under `n8n`.
        Webhook => "webhook",
        /// The `claude` CLI itself acts as teacher.
        ClaudeCli => "claude-cli",
    }
}

closed_enum! {
    /// Claude Code's `--permission-mode` values.
    PermissionMode {
        /// Ask for every action.
        Default => "default",
        /// Auto-accept file edits.
        AcceptEdits => "acceptEdits",
        /// Skip all permission prompts; the default for headless runs.
        #[default]
        BypassPermissions => "bypassPermissions",
        /// Plan only, no edits.
        Plan => "plan",
        /// Deny whatever is not pre-approved.
        DontAsk => "dontAsk",
    }
}

closed_enum! {
    /// Which test runner output the failure parser expects.
    TestFramework {
        /// Python's pytest.
        #[default]
        Pytest => "pytest",
        /// Jest.
        Jest => "jest",
        /// Vitest.
        Vitest => "vitest",
        /// `go test`.
        Go => "go" | "gotest",
        /// `cargo test`.
        Cargo => "cargo" | "cargo-test",
        /// `cargo nextest run`.
        Nextest => "nextest" | "cargo-nextest",
        /// JUnit XML reports (`tests.report` says where).
        Junit => "junit",
        /// Detect from the command and the project.
        Auto => "auto",
        /// Judge by exit code only.
        None => "none",
    }
}

closed_enum! {
    /// What `promptloop hook claude` does when a Claude Code session stops with failing tests.
    StopAction {
        /// Capture the failures and learn rules from them.
        #[default]
        Learn => "learn",
        /// Capture the failures (kept pending for `promptloop learn`) and make the agent
        /// go on and fix them.
        Block => "block",
        /// Do nothing on Stop.
        Off => "off",
    }
}

closed_enum! {
    /// Claude Code's `--output-format` values that promptloop can parse.
    OutputFormat {
        /// One JSON object at the end.
        #[default]
        Json => "json",
        /// Newline-delimited JSON events.
        StreamJson => "stream-json",
    }
}

closed_enum! {
    /// Log verbosity, named as in Python's `logging` so the prototype's
    /// values keep working.
    LogLevel {
        /// Everything.
        Debug => "debug",
        /// Progress messages.
        #[default]
        Info => "info",
        /// Problems that do not stop the run.
        Warning => "warning" | "warn",
        /// Failures.
        Error => "error",
        /// Only fatal failures.
        Critical => "critical",
    }
}

mod agents;
pub use agents::{
    AgentKind, AgentSettings, COMMAND_PLACEHOLDERS, CodexSettings, GeminiSettings,
    check_command_template,
};

// ---------------------------------------------------------------------------
// Settings tree
// ---------------------------------------------------------------------------

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
}

impl Default for LearningSettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            auto_retry: true,
            context_budget: 16_000,
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
}

impl Default for FailureSource {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            enabled: true,
        }
    }
}

/// Known failure source names and their kind in the prototype.
const KNOWN_FAILURE_SOURCES: &[(&str, &str)] = &[
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

fn default_failure_sources() -> Vec<FailureSource> {
    KNOWN_FAILURE_SOURCES
        .iter()
        .map(|(name, kind)| FailureSource {
            name: (*name).to_string(),
            kind: (*kind).to_string(),
            // The prototype marks semantic analysis as a future feature.
            enabled: *name != "semantic",
        })
        .collect()
}

/// The prototype's prompt names (`default` for test failures), and `<type>_system` for
/// every other type: each has a built-in prompt of its own.
fn default_failure_prompts() -> BTreeMap<String, String> {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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
}

closed_enum! {
    /// `rules.scope`.
    RuleScope {
        /// The project's store.
        #[default]
        Project => "project",
        /// The user's store (every project).
        Global => "global" | "user",
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

/// `logging:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LoggingSettings {
    /// Verbosity.
    pub level: LogLevel,
    /// Log file; `None` logs to stderr only. A leading `~/` is expanded.
    #[serde(deserialize_with = "non_empty_path")]
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

/// A section written as `teacher:` with nothing below it is YAML null; treat
/// it as "all defaults" rather than a type error, since that is what people
/// mean when they comment out every key of a section.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn failure_sources_or_default<'de, D>(deserializer: D) -> Result<Vec<FailureSource>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(mut sources) = Option::<Vec<FailureSource>>::deserialize(deserializer)? else {
        return Ok(default_failure_sources());
    };
    for source in &mut sources {
        if source.kind.is_empty()
            && let Some((_, kind)) = KNOWN_FAILURE_SOURCES
                .iter()
                .find(|(name, _)| *name == source.name)
        {
            source.kind = (*kind).to_string();
        }
    }
    Ok(sources)
}

fn failure_prompts_merged<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let mut prompts = default_failure_prompts();
    if let Some(given) = Option::<BTreeMap<String, String>>::deserialize(deserializer)? {
        prompts.extend(given);
    }
    Ok(prompts)
}

/// Empty strings mean "unset": the prototype's users write `key: ""` for that.
fn non_empty_opt<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.trim().is_empty()))
}

fn non_empty_path<'de, D>(deserializer: D) -> Result<Option<PathBuf>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(non_empty_opt(deserializer)?.map(PathBuf::from))
}

/// A list of paths, written like [`string_list`].
fn path_list<'de, D>(deserializer: D) -> Result<Vec<PathBuf>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(string_list(deserializer)?
        .into_iter()
        .map(PathBuf::from)
        .collect())
}

/// A list of strings; a single string is refused because splitting it
/// shell-style would guess at quoting the user never wrote.
fn string_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "expected a list of strings, found the single string {v:?}; \
                 write one item per entry, e.g. [\"--verbose\", \"--debug\"]"
            )))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

/// Durations are written as seconds; integers are the norm, floats are
/// accepted because the prototype's YAML allowed them.
mod seconds {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds print as integers so the effective settings look
        // like what users write.
        if value.subsec_nanos() == 0 {
            serializer.serialize_u64(value.as_secs())
        } else {
            serializer.serialize_f64(value.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("expected a number of seconds, found {v}")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("expected a number of seconds, found {v}")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a number of seconds, e.g. 120, found {v:?}"
                )))
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

// ---------------------------------------------------------------------------
// Errors and warnings
// ---------------------------------------------------------------------------

/// A 1-based line and column in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in characters.
    pub column: u64,
}

/// Where a setting came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file, with a position when one is known.
    File {
        /// The file as the user would recognise it.
        path: PathBuf,
        /// Line and column, if the value is in the file.
        position: Option<Position>,
    },
    /// A command-line flag such as `--teacher`.
    Flag(String),
    /// A [`Settings`] value built in code, with no file or flag behind it.
    Effective,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                position: Some(p),
            } => write!(f, "{}:{}:{}", path.display(), p.line, p.column),
            Origin::File {
                path,
                position: None,
            } => write!(f, "{}", path.display()),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Effective => f.write_str("settings"),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error("{}: config file not found", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A config file exists but cannot be read (permissions, not UTF-8, a
    /// directory...).
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The text is not valid YAML.
    #[error("{at}: invalid yaml: {message}")]
    Syntax {
        /// File and position.
        at: Origin,
        /// Parser message.
        message: String,
    },
    /// Valid YAML, but a value has the wrong type, is out of range, or is
    /// not allowed.
    #[error("{}", invalid_display(at, key, message))]
    Invalid {
        /// File and position, or the flag.
        at: Origin,
        /// Dotted key path such as `claude.max_turns`; empty for the document.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid_display(at: &Origin, key: &str, message: &str) -> String {
    // A flag already names the setting, so repeating the key adds noise.
    if key.is_empty() || matches!(at, Origin::Flag(_)) {
        format!("{at}: {message}")
    } else {
        format!("{at}: {key}: {message}")
    }
}

impl ConfigError {
    /// Position in the file, when the error has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::Syntax {
                at: Origin::File { position, .. },
                ..
            }
            | ConfigError::Invalid {
                at: Origin::File { position, .. },
                ..
            } => *position,
            _ => None,
        }
    }
}

/// What a [`ConfigWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A key that no setting reads; it is ignored.
    UnknownKey {
        /// A known key that is probably meant, as a dotted path.
        suggestion: Option<String>,
    },
    /// A `failure_sources` entry with a name promptloop does not know.
    UnknownFailureSource,
    /// A `failure_prompts` key that is not a known failure type.
    UnknownFailureType,
}

/// A problem that does not stop loading but that the user should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// File and position.
    pub at: Origin,
    /// Dotted key path.
    pub key: String,
    /// Category, with the suggestion for unknown keys.
    pub kind: WarningKind,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.at, self.key)?;
        match &self.kind {
            WarningKind::UnknownKey {
                suggestion: Some(s),
            } => write!(f, "unknown key, ignored (did you mean `{s}`?)"),
            WarningKind::UnknownKey { suggestion: None } => f.write_str("unknown key, ignored"),
            WarningKind::UnknownFailureSource => write!(
                f,
                "unknown failure source, expected one of: {}",
                KNOWN_FAILURE_SOURCES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            WarningKind::UnknownFailureType => write!(
                f,
                "unknown failure type, expected one of: {}",
                KNOWN_FAILURE_TYPES.join(", ")
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Which file the settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Named with `--config`.
    Explicit(PathBuf),
    /// `<cwd>/promptloop.yaml`.
    Project(PathBuf),
    /// `$XDG_CONFIG_HOME/promptloop/config.yaml` or
    /// `$HOME/.config/promptloop/config.yaml`.
    User(PathBuf),
    /// No file; built-in defaults.
    Defaults,
}

impl ConfigSource {
    /// The file, unless defaults were used.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Explicit(p) | ConfigSource::Project(p) | ConfigSource::User(p) => Some(p),
            ConfigSource::Defaults => None,
        }
    }
}

/// Result of [`load`].
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// Where they came from.
    pub source: ConfigSource,
    /// Problems to show the user; never fatal.
    pub warnings: Vec<ConfigWarning>,
}

/// Reads the process environment; pass it to [`load`] outside tests.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Finds the config file to use when none is named, without reading it:
/// `<cwd>/promptloop.yaml`, then `$XDG_CONFIG_HOME/promptloop/config.yaml`
/// (or `$HOME/.config/...` when XDG_CONFIG_HOME is unset, empty or relative,
/// as the XDG spec says), then defaults.
pub fn discover(cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> ConfigSource {
    let project = cwd.join(PROJECT_FILE_NAME);
    if exists(&project) {
        return ConfigSource::Project(project);
    }
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(user) = config_home.map(|dir| dir.join(USER_FILE_RELATIVE))
        && exists(&user)
    {
        return ConfigSource::User(user);
    }
    ConfigSource::Defaults
}

/// A file we cannot even stat (e.g. permission denied) still counts as
/// present, so the read reports the problem instead of silently skipping it.
fn exists(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Loads the effective settings.
///
/// `explicit` is the `--config` path (relative paths are taken from `cwd`);
/// it must exist. Without it the file is found by [`discover`]. `env` reads
/// environment variables (`HOME`, `XDG_CONFIG_HOME`); tests pass a fake.
pub fn load(
    explicit: Option<&Path>,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let (source, shown) = match explicit {
        Some(given) => {
            let resolved = cwd.join(given);
            if !exists(&resolved) {
                return Err(ConfigError::NotFound {
                    path: given.to_path_buf(),
                });
            }
            // Messages use the path as typed, which is what the user knows.
            (ConfigSource::Explicit(resolved), given.to_path_buf())
        }
        None => match discover(cwd, env) {
            ConfigSource::Defaults => {
                return Ok(Loaded {
                    settings: Settings::default(),
                    source: ConfigSource::Defaults,
                    warnings: Vec::new(),
                });
            }
            found => {
                let shown = found.path().map(Path::to_path_buf).unwrap_or_default();
                (found, shown)
            }
        },
    };
    let file = source.path().map(Path::to_path_buf).unwrap_or_default();
    let text = fs::read_to_string(&file).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    let (settings, warnings) = from_yaml_str(&text, &shown, env)?;
    Ok(Loaded {
        settings,
        source,
        warnings,
    })
}

/// Parses and validates config text; `path` is only used in messages.
/// Empty text (or only comments) gives the defaults.
pub fn from_yaml_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, Vec<ConfigWarning>), ConfigError> {
    let at = |position: Option<Position>| Origin::File {
        path: path.to_path_buf(),
        position,
    };

    // Pass 1: syntax, and the location of every key and value.
    let root = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, yaml_options()).map_err(
        |e| ConfigError::Syntax {
            at: at(error_position(&e)),
            message: error_message(&e),
        },
    )?;
    // An empty document (no text, only comments, or a bare `---`) is null;
    // it means "all defaults", not "the document must be a mapping".
    if matches!(root.value, Node::Null) {
        return Ok((Settings::default(), Vec::new()));
    }
    let tree = LocationTree::new(root, text);

    // Pass 2: typed, collecting keys nothing reads.
    let mut ignored: Vec<Vec<Seg>> = Vec::new();
    let typed = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |d| {
        serde_ignored::deserialize(d, |p| ignored.push(segments_of(&p)))
    });
    let mut settings: Settings = typed.map_err(|e| {
        let position = error_position(&e);
        let entry = position.and_then(|p| tree.entry_at(p));
        ConfigError::Invalid {
            at: at(position),
            key: entry.map(|n| dotted(&n.path)).unwrap_or_default(),
            message: friendly_type_message(&error_message(&e), entry),
        }
    })?;

    let mut warnings = Vec::new();
    for path_segs in &ignored {
        let key = dotted(path_segs);
        let key_pos = tree
            .find(path_segs)
            .and_then(|e| e.key_at.or(Some(e.value_at)));
        if let Some(message) = secret_key_message(path_segs) {
            return Err(ConfigError::Invalid {
                at: at(key_pos),
                key,
                message,
            });
        }
        warnings.push(ConfigWarning {
            at: at(key_pos),
            key,
            kind: WarningKind::UnknownKey {
                suggestion: suggest_key(path_segs),
            },
        });
    }

    for (i, source) in settings.failure_sources.iter().enumerate() {
        if !source.name.is_empty() && !KNOWN_FAILURE_SOURCES.iter().any(|(n, _)| *n == source.name)
        {
            let segs = vec![
                Seg::Key("failure_sources".into()),
                Seg::Index(i),
                Seg::Key("name".into()),
            ];
            warnings.push(ConfigWarning {
                at: at(tree.find(&segs).map(|e| e.value_at)),
                key: dotted(&segs),
                kind: WarningKind::UnknownFailureSource,
            });
        }
    }
    for kind in settings.failure_prompts.keys() {
        if !KNOWN_FAILURE_TYPES.contains(&kind.as_str()) {
            let segs = vec![Seg::Key("failure_prompts".into()), Seg::Key(kind.clone())];
            warnings.push(ConfigWarning {
                at: at(tree.find(&segs).and_then(|e| e.key_at)),
                key: dotted(&segs),
                kind: WarningKind::UnknownFailureType,
            });
        }
    }

    let home = env("HOME").filter(|h| !h.is_empty());
    for (i, target) in settings.rules.targets.iter_mut().enumerate() {
        *target = expand_home(target, home.as_deref()).map_err(|message| {
            let segs = [
                Seg::Key("rules".into()),
                Seg::Key("targets".into()),
                Seg::Index(i),
            ];
            ConfigError::Invalid {
                at: at(tree.find(&segs).map(|e| e.value_at)),
                key: dotted(&segs),
                message,
            }
        })?;
    }
    for (key, slot) in [
        ("rules.file", &mut settings.rules.file),
        ("agent.rules_file", &mut settings.agent.rules_file),
        ("codex.home", &mut settings.codex.home),
        ("logging.file", &mut settings.logging.file),
    ] {
        if let Some(file) = slot.as_mut() {
            *file = expand_home(file, home.as_deref()).map_err(|message| ConfigError::Invalid {
                at: at(tree.find_dotted(key).map(|e| e.value_at)),
                key: key.to_string(),
                message,
            })?;
        }
    }

    if let Some(v) = settings.violations().into_iter().next() {
        return Err(ConfigError::Invalid {
            at: at(tree.find_dotted(v.key).map(|e| e.value_at)),
            key: v.key.to_string(),
            message: v.message,
        });
    }
    Ok((settings, warnings))
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // We render our own one-line messages; snippets would be wasted work.
    options.with_snippet = false;
    options
}

fn error_position(e: &serde_saphyr::Error) -> Option<Position> {
    e.location().filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// The error text without serde-saphyr's own "line X column Y" prefix or
/// snippet, since we print the location as `file:line:col` ourselves.
fn error_message(e: &serde_saphyr::Error) -> String {
    let raw = serde_saphyr::DefaultMessageFormatter.format_message(e.without_snippet());
    // The formatter's output is not sanitized; keep messages on one line.
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rewords serde-saphyr's terse type errors ("invalid u32") into what the
/// user should write, quoting what was found.
fn friendly_type_message(message: &str, entry: Option<&TreeEntry>) -> String {
    let found = entry.map(|e| e.found.as_str()).unwrap_or("");
    let wanted = if message.starts_with("invalid u") {
        "a whole number (0 or more)"
    } else if message.starts_with("invalid i") {
        "a whole number"
    } else if message.starts_with("invalid f") {
        "a number"
    } else if message.starts_with("invalid bool") {
        "true or false"
    } else if message == "expected mapping start" {
        "a mapping of keys"
    } else if message == "expected sequence start" {
        "a list"
    } else if message == "expected string scalar" {
        "a string"
    } else {
        return message.to_string();
    };
    if found.is_empty() {
        format!("expected {wanted}")
    } else {
        format!("expected {wanted}, found {found}")
    }
}

/// Literal secrets do not belong in a file that gets committed or shared.
fn secret_key_message(path: &[Seg]) -> Option<String> {
    const SECRET_KEYS: &[&str] = &["token", "bearer_token", "api_key", "apikey", "password"];
    let [Seg::Key(section), Seg::Key(key)] = path else {
        return None;
    };
    if !SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return None;
    }
    let env_key = match section.as_str() {
        "n8n" => "bearer_token_env",
        "teacher" => "api_key_env",
        _ => return None,
    };
    Some(format!(
        "secrets are not allowed in the config file; put the token in an environment \
         variable and set {section}.{env_key} to its name"
    ))
}

fn expand_home(path: &Path, home: Option<&str>) -> Result<PathBuf, String> {
    let Some(text) = path.to_str() else {
        return Ok(path.to_path_buf());
    };
    let rest = if text == "~" {
        ""
    } else if let Some(rest) = text.strip_prefix("~/") {
        rest
    } else {
        return Ok(path.to_path_buf());
    };
    match home {
        Some(home) => Ok(Path::new(home).join(rest)),
        None => Err("cannot expand ~/ because HOME is not set".to_string()),
    }
}

// ---------------------------------------------------------------------------
// Validation and overrides
// ---------------------------------------------------------------------------

/// One failed check: the dotted key and what is wrong.
struct Violation {
    key: &'static str,
    message: String,
}

fn check_range<T: PartialOrd + fmt::Display>(value: T, min: T, max: T) -> Option<String> {
    (value < min || value > max).then(|| format!("must be between {min} and {max}, got {value}"))
}

fn check_positive(value: Duration) -> Option<String> {
    value
        .is_zero()
        .then(|| "must be greater than 0 seconds".to_string())
}

fn check_url(value: &Option<String>) -> Option<String> {
    let url = value.as_deref()?;
    (!(url.starts_with("http://") || url.starts_with("https://")))
        .then(|| format!("expected an http:// or https:// url, got {url:?}"))
}

/// Env var names only; anything else is most likely a pasted secret.
fn check_env_name(value: &Option<String>) -> Option<String> {
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

fn check_non_empty(value: &str) -> Option<String> {
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

    fn violations(&self) -> Vec<Violation> {
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

fn set<T>(slot: &mut T, value: Option<T>) {
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
fn flag_for_key(key: &str, o: &Overrides) -> Option<&'static str> {
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

// ---------------------------------------------------------------------------
// Location tree (pass 1)
// ---------------------------------------------------------------------------

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn segments_of(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                segs.push(Seg::Index(*index));
                cur = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                segs.push(Seg::Key(key.clone()));
                cur = parent;
            }
            // Option and newtype wrappers do not appear in the YAML.
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    segs.reverse();
    segs
}

/// An untyped YAML node, only kept for its shape and positions.
enum Node {
    Map(Vec<(Spanned<ScalarKey>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
    /// YAML null, kept apart so an empty document can be told from a scalar.
    Null,
}

/// A mapping key of any scalar type, as text.
struct ScalarKey(String);

impl<'de> Deserialize<'de> for ScalarKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = ScalarKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarKey, E> {
                Ok(ScalarKey("null".to_string()))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any yaml value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<ScalarKey>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A key or sequence item with its positions.
struct TreeEntry {
    path: Vec<Seg>,
    /// Where the key is; `None` for sequence items.
    key_at: Option<Position>,
    /// Where the value starts.
    value_at: Position,
    /// The value as the user wrote it, for "found ..." in messages.
    found: String,
}

/// Every key and item of the document with its positions, flattened.
struct LocationTree {
    entries: Vec<TreeEntry>,
}

fn position_of(loc: &serde_saphyr::Location) -> Position {
    Position {
        line: loc.line(),
        column: loc.column(),
    }
}

impl LocationTree {
    fn new(root: Spanned<Node>, text: &str) -> Self {
        let mut entries = Vec::new();
        walk(&root.value, &mut Vec::new(), text, &mut entries);
        Self { entries }
    }

    fn find(&self, path: &[Seg]) -> Option<&TreeEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    fn find_dotted(&self, key: &str) -> Option<&TreeEntry> {
        let segs: Vec<Seg> = key.split('.').map(|k| Seg::Key(k.to_string())).collect();
        self.find(&segs)
    }

    /// The entry whose value starts at `pos`; the deepest one wins because
    /// a nested mapping starts where its first key does.
    fn entry_at(&self, pos: Position) -> Option<&TreeEntry> {
        self.entries
            .iter()
            .filter(|e| e.value_at == pos)
            .max_by_key(|e| e.path.len())
    }
}

fn walk(node: &Node, path: &mut Vec<Seg>, text: &str, out: &mut Vec<TreeEntry>) {
    let mut record =
        |seg: Seg, key_at: Option<Position>, value: &Spanned<Node>, out: &mut Vec<TreeEntry>| {
            path.push(seg);
            out.push(TreeEntry {
                path: path.clone(),
                key_at,
                value_at: position_of(&value.referenced),
                found: describe_found(value, text),
            });
            walk(&value.value, path, text, out);
            path.pop();
        };
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                record(
                    Seg::Key(key.value.0.clone()),
                    Some(position_of(&key.referenced)),
                    value,
                    out,
                );
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                record(Seg::Index(i), None, item, out);
            }
        }
        Node::Scalar | Node::Null => {}
    }
}

fn describe_found(value: &Spanned<Node>, text: &str) -> String {
    match value.value {
        Node::Map(_) => "a mapping".to_string(),
        Node::Seq(_) => "a list".to_string(),
        Node::Null => "nothing".to_string(),
        Node::Scalar => {
            let span = value.referenced.span();
            let raw = span
                .byte_offset()
                .zip(span.byte_len())
                .and_then(|(start, len)| {
                    let start = usize::try_from(start).ok()?;
                    let end = start.checked_add(usize::try_from(len).ok()?)?;
                    text.get(start..end)
                })
                .unwrap_or("");
            let first_line = raw.lines().next().unwrap_or("").trim();
            if first_line.is_empty() {
                "nothing".to_string()
            } else if first_line.chars().count() > 40 {
                format!("{}...", first_line.chars().take(40).collect::<String>())
            } else {
                first_line.to_string()
            }
        }
    }
}

// ---------------------------------------------------------------------------
// "Did you mean"
// ---------------------------------------------------------------------------

/// Suggests a known key for an unknown one: a near spelling in the same
/// section first, then the same name in another section (e.g. `timeout`
/// put under `learning`).
fn suggest_key(path: &[Seg]) -> Option<String> {
    let (Seg::Key(unknown), parent) = path.split_last()? else {
        return None;
    };
    let defaults = serde_json::to_value(Settings::default()).ok()?;
    let mut section = &defaults;
    for seg in parent {
        section = match seg {
            Seg::Key(k) => section.get(k)?,
            // Every list item has the same fields; the first default shows them.
            Seg::Index(_) => section.get(0)?,
        };
    }
    let known: Vec<&String> = section.as_object()?.keys().collect();
    let wanted = unknown.to_ascii_lowercase();
    let near = known
        .iter()
        .map(|k| (edit_distance(&wanted, k), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone());
    if let Some(k) = near {
        let mut full = parent.to_vec();
        full.push(Seg::Key(k));
        return Some(dotted(&full));
    }
    // Same name in another top-level section, which is where people
    // misplace keys; only when exactly one section has it, since guessing
    // between `teacher.timeout` and `tests.timeout` would mislead.
    if parent.len() != 1 {
        return None;
    }
    let mut homes = defaults
        .as_object()?
        .iter()
        .filter(|(_, value)| value.get(&wanted).is_some())
        .map(|(name, _)| format!("{name}.{wanted}"));
    match (homes.next(), homes.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Optimal string alignment distance: Levenshtein plus adjacent swaps, so
/// `max_retires` is one edit from `max_retries`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The prototype's config.yaml, shared with the CLI tests.
    const PROTOTYPE: &str = include_str!("../tests/fixtures/prototype-config.yaml");

    /// A fake environment; tests never read the real one.
    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn parse(text: &str) -> Result<(Settings, Vec<ConfigWarning>), ConfigError> {
        from_yaml_str(
            text,
            Path::new("config.yaml"),
            &env_of(&[("HOME", "/home/u")]),
        )
    }

    fn parse_ok(text: &str) -> Settings {
        match parse(text) {
            Ok((s, w)) => {
                assert!(w.is_empty(), "unexpected warnings: {w:?}");
                s
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e,
        }
    }

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

    fn pos(line: u64, column: u64) -> Option<Position> {
        Some(Position { line, column })
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
        let s = parse_ok(PROTOTYPE);
        assert_eq!(s.teacher.mode, TeacherMode::Anthropic);
        assert_eq!(s.teacher.model, "claude-3-5-sonnet-20241022");
        assert_eq!(s.teacher.max_tokens, 1024);
        assert_eq!(s.teacher.api_key_env_name(), Some("ANTHROPIC_API_KEY"));
        assert_eq!(
            s.n8n.webhook_url.as_deref(),
            Some("https://your-instance.app.n8n.cloud/webhook/prompt-learning-teacher")
        );
        assert_eq!(s.n8n.timeout, Duration::from_secs(60));
        assert_eq!(s.learning.max_retries, 3);
        assert!(s.learning.auto_retry);
        assert_eq!(s.failure_sources.len(), 3);
        assert_eq!(s.failure_sources[2].name, "semantic");
        assert_eq!(s.failure_sources[2].kind, "llm_analysis");
        assert!(!s.failure_sources[2].enabled);
        assert_eq!(s.failure_prompts["planning_error"], "planning_error_system");
        assert_eq!(s.tests.framework, TestFramework::Pytest);
        assert_eq!(s.tests.command, "pytest tests/ -v --tb=short");
        assert_eq!(s.tests.timeout, Duration::from_secs(120));
        assert_eq!(s.claude.max_turns, 15);
        assert_eq!(s.claude.output_format, OutputFormat::Json);
        assert_eq!(s.logging.level, LogLevel::Info);
        assert_eq!(s.logging.file, Some(PathBuf::from("prompt_learning.log")));
        // The alias shows as its canonical name in the effective settings.
        assert!(s.to_yaml().contains("mode: anthropic"));
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
    fn discovery_order() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let cwd = tmp.path().join("project");
        let home = tmp.path().join("home");
        let xdg = tmp.path().join("xdg");
        for dir in [
            &cwd,
            &home.join(".config/promptloop"),
            &xdg.join("promptloop"),
        ] {
            fs::create_dir_all(dir)?;
        }
        let home_s = home.to_string_lossy().into_owned();
        let xdg_s = xdg.to_string_lossy().into_owned();
        let with_xdg = env_of(&[("HOME", &home_s), ("XDG_CONFIG_HOME", &xdg_s)]);
        let empty_xdg = env_of(&[("HOME", &home_s), ("XDG_CONFIG_HOME", "")]);
        let nothing = env_of(&[]);

        // Nothing anywhere: defaults.
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Defaults);
        assert_eq!(l.settings, Settings::default());

        // $HOME/.config is used when XDG_CONFIG_HOME is empty.
        let home_file = home.join(".config/promptloop/config.yaml");
        fs::write(&home_file, "learning:\n  max_retries: 1\n")?;
        let l = load(None, &cwd, &empty_xdg)?;
        assert_eq!(l.source, ConfigSource::User(home_file.clone()));
        assert_eq!(l.settings.learning.max_retries, 1);
        // ...and skipped when there is no HOME at all.
        assert_eq!(load(None, &cwd, &nothing)?.source, ConfigSource::Defaults);

        // XDG_CONFIG_HOME replaces $HOME/.config.
        let xdg_file = xdg.join("promptloop/config.yaml");
        fs::write(&xdg_file, "learning:\n  max_retries: 2\n")?;
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::User(xdg_file));
        assert_eq!(l.settings.learning.max_retries, 2);

        // The project file beats the user file.
        let project_file = cwd.join("promptloop.yaml");
        fs::write(&project_file, "learning:\n  max_retries: 4\n")?;
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Project(project_file));
        assert_eq!(l.settings.learning.max_retries, 4);

        // An explicit file beats everything; relative paths start at cwd.
        fs::write(cwd.join("config.yaml"), PROTOTYPE)?;
        let l = load(Some(Path::new("config.yaml")), &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Explicit(cwd.join("config.yaml")));
        assert_eq!(l.settings.learning.max_retries, 3);
        assert!(l.warnings.is_empty());
        Ok(())
    }

    #[test]
    fn explicit_missing_file_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let err = load(Some(Path::new("nope.yaml")), tmp.path(), &env_of(&[]))
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert_eq!(err.to_string(), "nope.yaml: config file not found");
        Ok(())
    }

    #[test]
    fn explicit_empty_file_gives_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("empty.yaml");
        fs::write(&file, "")?;
        let l = load(Some(&file), tmp.path(), &env_of(&[]))?;
        assert_eq!(l.settings, Settings::default());
        assert_eq!(l.source, ConfigSource::Explicit(file));
        Ok(())
    }

    #[test]
    fn unreadable_file_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        // A directory named like the project file cannot be read as text.
        fs::create_dir(tmp.path().join("promptloop.yaml"))?;
        let err = load(None, tmp.path(), &env_of(&[]))
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn invalid_yaml_reports_line_and_column() {
        let err = parse_err("claude:\n  max_turns: [1\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert_eq!(err.position(), pos(2, 14));
        assert!(
            err.to_string()
                .starts_with("config.yaml:2:14: invalid yaml: "),
            "{err}"
        );

        let err = parse_err("teacher:\n  mode: x: y\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert_eq!(err.position().map(|p| p.line), Some(2));

        let err = parse_err("learning:\n  max_retries: 1\n  max_retries: 2\n");
        assert_eq!(err.position().map(|p| p.line), Some(3), "{err}");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn wrong_type_reports_line_column_and_key() {
        let err = parse_err("claude:\n  max_turns: \"lots\"\n");
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        assert_eq!(err.position(), pos(2, 14));
        assert_eq!(
            err.to_string(),
            "config.yaml:2:14: claude.max_turns: expected a whole number (0 or more), found \"lots\""
        );

        let err = parse_err("teacher: fast\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:1:10: teacher: expected a mapping of keys, found fast"
        );

        let err = parse_err("- a\n- b\n");
        assert_eq!(err.position(), pos(1, 1), "{err}");

        let err = parse_err("learning:\n  auto_retry: maybe\n");
        assert_eq!(err.position(), pos(2, 15), "{err}");
        assert!(err.to_string().contains("learning.auto_retry"), "{err}");
    }

    #[test]
    fn unknown_enum_values_list_valid_values() {
        let err = parse_err("# comment\nteacher:\n  mode: \"gpt\"\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:3:9: teacher.mode: unknown value \"gpt\", expected one of: \
             auto, anthropic (alias local), offline, openai, webhook, claude-cli"
        );
        let err = parse_err("tests:\n  framework: mocha\n");
        assert!(
            err.to_string()
                .ends_with("tests.framework: unknown value \"mocha\", expected one of: pytest, jest, vitest, go (alias gotest), cargo (alias cargo-test), nextest (alias cargo-nextest), junit, auto, none"),
            "{err}"
        );
        let err = parse_err("claude:\n  output_format: text\n");
        assert!(err.to_string().contains("json, stream-json"), "{err}");
        let err = parse_err("claude:\n  permission_mode: yolo\n");
        assert!(
            err.to_string()
                .contains("default, acceptEdits, bypassPermissions, plan, dontAsk"),
            "{err}"
        );
        let err = parse_err("logging:\n  level: loud\n");
        assert!(err.to_string().contains("warning (alias warn)"), "{err}");
    }

    #[test]
    fn enum_values_are_case_insensitive() {
        let s = parse_ok(
            "teacher:\n  mode: Claude_CLI\ntests:\n  framework: PyTest\nclaude:\n  \
             permission_mode: acceptedits\n  output_format: STREAM-JSON\nlogging:\n  level: warn\n",
        );
        assert_eq!(s.teacher.mode, TeacherMode::ClaudeCli);
        assert_eq!(s.tests.framework, TestFramework::Pytest);
        assert_eq!(s.claude.permission_mode, PermissionMode::AcceptEdits);
        assert_eq!(s.claude.output_format, OutputFormat::StreamJson);
        assert_eq!(s.logging.level, LogLevel::Warning);
        assert_eq!(
            parse_ok("teacher:\n  mode: OpenAI\n")
                .teacher
                .api_key_env_name(),
            Some("OPENAI_API_KEY")
        );
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() -> Result<(), ConfigError> {
        let (s, warnings) = parse(
            "learning:\n  max_retires: 5\nloging:\n  level: debug\nfailure_sources:\n  \
             - nmae: pytest\n    name: pytest\nlearning_extra: 1\n",
        )?;
        // The misspelled key is ignored, not half-applied.
        assert_eq!(s.learning.max_retries, 3);
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "config.yaml:2:3: learning.max_retires: unknown key, ignored (did you mean `learning.max_retries`?)",
                "config.yaml:3:1: loging: unknown key, ignored (did you mean `logging`?)",
                "config.yaml:6:5: failure_sources[0].nmae: unknown key, ignored (did you mean `failure_sources[0].name`?)",
                "config.yaml:8:1: learning_extra: unknown key, ignored",
            ]
        );
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey {
                suggestion: Some("learning.max_retries".to_string())
            }
        );

        // A key put in the wrong section points at the right one...
        let (_, warnings) = parse("learning:\n  max_turns: 5\n")?;
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey {
                suggestion: Some("claude.max_turns".to_string())
            }
        );
        // ...unless several sections have it.
        let (_, warnings) = parse("learning:\n  timeout: 5\n")?;
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey { suggestion: None }
        );
        Ok(())
    }

    #[test]
    fn unknown_failure_sources_and_types_warn() -> Result<(), ConfigError> {
        let (s, warnings) = parse(
            "failure_sources:\n  - name: mutation\n    type: automated\nfailure_prompts:\n  \
             style_error: style.md\n  scope_error: prompts/scope.md\n",
        )?;
        assert_eq!(s.failure_prompts["style_error"], "style.md");
        assert_eq!(s.failure_prompts["scope_error"], "prompts/scope.md");
        // Types the file leaves out keep their defaults.
        assert_eq!(s.failure_prompts["test_failure"], "default");
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2);
        assert!(
            shown[0]
                .starts_with("config.yaml:2:11: failure_sources[0].name: unknown failure source"),
            "{shown:?}"
        );
        assert!(
            shown[1]
                .starts_with("config.yaml:5:3: failure_prompts.style_error: unknown failure type"),
            "{shown:?}"
        );
        Ok(())
    }

    #[test]
    fn known_failure_source_gets_its_type() {
        let s = parse_ok("failure_sources:\n  - name: manual\n");
        assert_eq!(
            s.failure_sources,
            vec![FailureSource {
                name: "manual".into(),
                kind: "user_reported".into(),
                enabled: true
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
    fn literal_tokens_are_rejected() {
        let err = parse_err("n8n:\n  webhook_url: https://x\n  bearer_token: abc123\n");
        assert_eq!(err.position(), pos(3, 3));
        assert!(
            err.to_string()
                .contains("n8n.bearer_token: secrets are not allowed"),
            "{err}"
        );
        assert!(err.to_string().contains("n8n.bearer_token_env"), "{err}");
        let err = parse_err("n8n:\n  token: abc\n");
        assert!(err.to_string().contains("n8n.token"), "{err}");
        let err = parse_err("teacher:\n  api_key: sk-ant-123\n");
        assert!(err.to_string().contains("teacher.api_key_env"), "{err}");
        // A secret pasted into the *_env field is caught too.
        let err = parse_err("n8n:\n  bearer_token_env: \"sk-abc-123\"\n");
        assert!(
            err.to_string().contains("name of an environment variable"),
            "{err}"
        );
        let s = parse_ok("n8n:\n  bearer_token_env: N8N_TOKEN\n");
        assert_eq!(s.n8n.bearer_token_env.as_deref(), Some("N8N_TOKEN"));
    }

    #[test]
    fn home_prefix_is_expanded() {
        let s = parse_ok("rules:\n  file: ~/rules/CLAUDE.md\nlogging:\n  file: ~/pl.log\n");
        assert_eq!(s.rules.file, Some(PathBuf::from("/home/u/rules/CLAUDE.md")));
        assert_eq!(s.logging.file, Some(PathBuf::from("/home/u/pl.log")));
        let s = parse_ok("rules:\n  file: docs/~/CLAUDE.md\n");
        assert_eq!(s.rules.file, Some(PathBuf::from("docs/~/CLAUDE.md")));
        let err = from_yaml_str(
            "rules:\n  file: ~/x.md\n",
            Path::new("c.yaml"),
            &env_of(&[]),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("c.yaml:2:9: rules.file: cannot expand ~/ because HOME is not set")
        );
    }

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
        assert_eq!(s.teacher.model, "claude-3-5-sonnet-20241022");
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
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("max_retires", "max_retries"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
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
