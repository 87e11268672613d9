//! Building the teacher, the prompt router and the redactor from the settings.

use std::path::{Path, PathBuf};

use super::Failure;
use crate::failure::DEFAULT_PRIVATE_FILES;
use crate::learn::Learner;
use crate::learn::curate::Curation;
use crate::process::find_program;
use crate::redact::Redactor;
use crate::rules::RulesTargets;
use crate::settings::{Loaded, RuleScope, Settings, TeacherMode};
use crate::teacher::Teacher;
use crate::teacher::anthropic::{self, AnthropicConfig, AnthropicTeacher};
use crate::teacher::claude_cli::{ClaudeCliConfig, ClaudeCliTeacher};
use crate::teacher::offline::OfflineTeacher;
use crate::teacher::openai::{self, OpenAiConfig, OpenAiTeacher};
use crate::teacher::prompt::Router;
use crate::teacher::webhook::{WebhookConfig, WebhookTeacher};

/// A teacher, or why there is none (failures then stay pending).
pub(super) type MaybeTeacher = Result<Box<dyn Teacher>, String>;

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The teacher the settings ask for, or why there is none. A teacher that was asked for
/// by name but cannot work (no key, no URL, no `claude`) is a configuration error; `auto`
/// without any teacher keeps failures pending and says how to set one up.
pub(super) fn make_teacher(settings: &Settings) -> Result<MaybeTeacher, Failure> {
    let t = &settings.teacher;
    let usage = |e: crate::teacher::TeacherError| Failure::usage(e.to_string());
    let anthropic_key_env = match t.mode {
        TeacherMode::Auto => t.api_key_env.as_deref().unwrap_or("ANTHROPIC_API_KEY"),
        _ => t.api_key_env_name().unwrap_or("ANTHROPIC_API_KEY"),
    }
    .to_string();
    let anthropic = |api_key: String| -> Result<Box<dyn Teacher>, Failure> {
        let base_url = t
            .base_url
            .clone()
            .or_else(|| env_value("ANTHROPIC_BASE_URL"))
            .unwrap_or_else(|| anthropic::DEFAULT_BASE_URL.to_string());
        Ok(Box::new(
            AnthropicTeacher::new(AnthropicConfig {
                base_url,
                api_key,
                api_key_env: anthropic_key_env.clone(),
                model: t.model.clone(),
                max_tokens: t.max_tokens,
                deadline: t.timeout,
            })
            .map_err(usage)?,
        ))
    };
    let claude_cli = || -> Box<dyn Teacher> {
        Box::new(ClaudeCliTeacher::new(ClaudeCliConfig {
            command: settings.claude.command.clone(),
            model: Some(t.model.clone()),
            timeout: t.timeout,
        }))
    };
    match t.mode {
        TeacherMode::Offline => Ok(Ok(Box::new(OfflineTeacher))),
        TeacherMode::Anthropic => match env_value(&anthropic_key_env) {
            Some(key) => Ok(Ok(anthropic(key)?)),
            None => Err(Failure::usage(format!(
                "teacher.mode anthropic needs an API key in ${anthropic_key_env}; set it, or \
                 choose another teacher (--teacher claude-cli uses your Claude Code login)"
            ))),
        },
        TeacherMode::OpenAi => {
            let key_env = t.api_key_env_name().unwrap_or("OPENAI_API_KEY").to_string();
            let key = env_value(&key_env);
            let base_url = t
                .base_url
                .clone()
                .or_else(|| env_value("OPENAI_BASE_URL"))
                .unwrap_or_else(|| openai::DEFAULT_BASE_URL.to_string());
            // Local servers (Ollama, vLLM, llama.cpp) need no key; OpenAI itself does, and a
            // variable named in the config is expected to be set.
            if key.is_none() && (t.api_key_env.is_some() || base_url.contains("api.openai.com")) {
                return Err(Failure::usage(format!(
                    "teacher.mode openai needs an API key in ${key_env} for {base_url}; set it, \
                     or point teacher.base_url at a server that needs none"
                )));
            }
            Ok(Ok(Box::new(
                OpenAiTeacher::new(OpenAiConfig {
                    base_url,
                    api_key: key,
                    api_key_env: key_env,
                    model: t.model.clone(),
                    max_tokens: t.max_tokens,
                    deadline: t.timeout,
                })
                .map_err(usage)?,
            )))
        }
        TeacherMode::Webhook => {
            let n8n = &settings.n8n;
            let url = n8n.webhook_url.clone().ok_or_else(|| {
                Failure::usage("teacher.mode webhook needs n8n.webhook_url to be set")
            })?;
            let bearer_token = match &n8n.bearer_token_env {
                Some(name) => Some(env_value(name).ok_or_else(|| {
                    Failure::usage(format!(
                        "n8n.bearer_token_env names ${name}, which is not set; export the \
                         webhook's token in it"
                    ))
                })?),
                None => None,
            };
            Ok(Ok(Box::new(
                WebhookTeacher::new(WebhookConfig {
                    url,
                    bearer_token,
                    bearer_token_env: n8n.bearer_token_env.clone(),
                    deadline: n8n.timeout,
                })
                .map_err(usage)?,
            )))
        }
        TeacherMode::ClaudeCli => {
            if find_program(&settings.claude.command).is_none() {
                return Err(Failure::usage(format!(
                    "teacher.mode claude-cli runs Claude Code, but `{}` was not found; install \
                     it (npm install -g @anthropic-ai/claude-code) or set claude.command to its path",
                    settings.claude.command
                )));
            }
            Ok(Ok(claude_cli()))
        }
        TeacherMode::Auto => {
            if let Some(key) = env_value(&anthropic_key_env) {
                return Ok(Ok(anthropic(key)?));
            }
            if find_program(&settings.claude.command).is_some() {
                return Ok(Ok(claude_cli()));
            }
            Ok(Err(format!(
                "no teacher available: set ${anthropic_key_env} for the Anthropic API, or \
                 install Claude Code (`{}` on PATH, or claude.command), or choose \
                 teacher.mode openai, webhook or offline (docs/teachers.md); then run \
                 `promptloop learn`",
                settings.claude.command
            )))
        }
    }
}

/// The folder relative prompt files are read from: the config file's, else the current one.
fn config_dir(loaded: &Loaded) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match loaded.source.path().and_then(Path::parent) {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => cwd.join(dir),
        None => cwd,
    }
}

/// `failure_prompts` resolved: every name known, every file read. Exit 2 otherwise.
pub(super) fn router(loaded: &Loaded) -> Result<Router, Failure> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    Router::new(
        &loaded.settings.failure_prompts,
        &config_dir(loaded),
        home.as_deref(),
    )
    .map_err(|e| {
        let place = loaded
            .source
            .path()
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default();
        Failure::usage(format!("{place}{e}"))
    })
}

/// The redactor with the user's `redaction.patterns` (validated at load).
pub(super) fn redactor(settings: &Settings) -> Result<Redactor, Failure> {
    Redactor::with_patterns(&settings.redaction.patterns).map_err(|e| Failure::usage(e.to_string()))
}

/// The built-in private-file globs plus `redaction.private_files`.
pub(super) fn private_files(settings: &Settings) -> Vec<String> {
    DEFAULT_PRIVATE_FILES
        .iter()
        .map(|s| s.to_string())
        .chain(settings.redaction.private_files.iter().cloned())
        .collect()
}

/// What every command that learns needs from the configuration, resolved once: the prompt
/// router, the redactor, the private files, the budget and how rules are kept. It builds
/// the `Learner`s.
pub(crate) struct Teaching {
    prompts: Router,
    redactor: Redactor,
    private_files: Vec<String>,
    context_budget: usize,
    curation: Curation,
}

impl Teaching {
    /// Resolves the prompts (exit 2 for a bad `failure_prompts` entry) and the redactor.
    pub(crate) fn new(loaded: &Loaded) -> Result<Teaching, Failure> {
        if loaded.settings.rules.scope == RuleScope::Team
            && !crate::store::team_store_set(&loaded.settings.store, &crate::settings::process_env)
        {
            return Err(Failure::usage(
                "rules.scope: team needs a team store: set store.url (or PROMPTLOOP_STORE_URL) \
                 to a postgres:// URL",
            ));
        }
        Ok(Teaching {
            prompts: router(loaded)?,
            redactor: redactor(&loaded.settings)?,
            private_files: private_files(&loaded.settings),
            context_budget: loaded.settings.learning.context_budget,
            curation: curation(&loaded.settings),
        })
    }

    /// A learner that asks `teacher` (or keeps failures pending, with the reason) and writes
    /// into `rules`.
    pub(crate) fn learner<'a>(
        &'a self,
        teacher: Result<&'a dyn Teacher, String>,
        rules: RulesTargets,
    ) -> Learner<'a> {
        Learner {
            teacher,
            rules,
            context_budget: self.context_budget,
            private_files: self.private_files.clone(),
            prompts: self.prompts.clone(),
            redactor: &self.redactor,
            curation: self.curation.clone(),
        }
    }
}

/// The embeddings judge `rules.dedup_embeddings` sets up, its vectors cached in
/// `$XDG_CACHE_HOME/promptloop/embeddings.db` (else `~/.cache/…`, else the temp dir).
fn embeddings(
    e: &crate::settings::EmbeddingsSettings,
) -> Option<crate::store::dedup::embed::EmbeddingsConfig> {
    let base_url = e.base_url.as_deref()?;
    let env = crate::settings::process_env;
    let cache_dir = env("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| std::path::Path::new(&h).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    let mut config = crate::store::dedup::embed::EmbeddingsConfig::new(
        base_url,
        &e.model,
        cache_dir.join("promptloop").join("embeddings.db"),
    );
    config.api_key = e
        .api_key_env
        .as_deref()
        .and_then(env)
        .filter(|k| !k.is_empty());
    config.same_cosine = e.same_cosine;
    config.max_calls = e.max_calls;
    config.timeout = e.timeout;
    Some(config)
}

/// How learned rules are kept, from `rules:` (review mode, scope, budget, the dedup judge).
pub(crate) fn curation(settings: &Settings) -> Curation {
    let r = &settings.rules;
    Curation {
        review: r.review,
        scope: match r.scope {
            RuleScope::Project => crate::store::Scope::Project,
            RuleScope::Global => crate::store::Scope::Global,
            RuleScope::Team => crate::store::Scope::Team,
        },
        budget: crate::store::render::Budget {
            lines: r.budget.lines,
            chars: r.budget.chars,
        },
        judge: r.dedup_judge,
        embeddings: embeddings(&r.dedup_embeddings),
        user_db: crate::store::user_db_path(&crate::settings::process_env),
        unproven_max_age_days: r.unproven_max_age(),
    }
}
