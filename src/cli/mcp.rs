//! `promptloop mcp`: the rule store and the teacher over the Model Context Protocol (stdio),
//! so an agent in an interactive session reports its own mistakes the moment the user
//! corrects it, and fetches the rules that fit the task or file at hand — more than the
//! instruction file's budget shows. Only protocol goes to stdout; logs go to stderr (and to
//! `logging.file`).
//!
//! Tools: `report_failure` (the `report-failure` path: router, redaction, teacher, store),
//! `search_rules`, `list_rules`, `get_rule`, `rule_feedback`; one resource, the active rules
//! as markdown. `promptloop mcp install|uninstall` (see `mcp_install.rs`) registers it with
//! Claude Code, Codex CLI and Gemini CLI.
//!
//! Each call opens its own connection to the store (SQLite, write transactions `BEGIN
//! IMMEDIATE`), so several servers — one per agent session — can share one store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, tool, tool_handler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::mcp_install::{self, InstallArgs, UninstallArgs};
use super::teachers::{self, Teaching};
use super::{Failure, finish, load_settings, project_dir};
use crate::events::Event;
use crate::failure::FailureContext;
use crate::git::Repo;
use crate::learn::Lesson;
use crate::process::CancelToken;
use crate::record::{self, Record};
use crate::rules::RulesTargets;
use crate::settings::{Loaded, Overrides, StoreSettings};
use crate::store::search::{self, Query};
use crate::store::sqlite::feedback::FeedbackCounts;
use crate::store::{RuleFilter, RuleStore, SqliteStore, Status, StoreError, StoredRule};

/// Seconds `report_failure` waits for the teacher by default (`--wait-seconds`).
pub(super) const DEFAULT_WAIT_SECONDS: u64 = 10;
/// How long a report may wait for the store to take the failure (it is busy when other
/// sessions write; SQLite's own busy timeout is 10 s).
const SAVE_WAIT: Duration = Duration::from_secs(30);
/// The most rules one search or list answers with.
const MAX_LIMIT: u32 = 50;
/// The resource: the project's active rules as markdown.
const ACTIVE_RULES_URI: &str = "promptloop://rules/active";

const AFTER_HELP: &str = "\
The server speaks MCP over standard input and output; it is started by the agent CLI, not by
hand. Register it with `promptloop mcp install`:

  promptloop mcp install                          # Claude Code, this project's .mcp.json
  promptloop mcp install --agent gemini           # Gemini CLI, .gemini/settings.json
  promptloop mcp install --agent codex            # Codex CLI, ~/.codex/config.toml
  promptloop mcp install --scope user             # Claude Code, every project (~/.claude.json)
  promptloop mcp uninstall [--agent NAME] [--scope SCOPE]

Tools: report_failure (learn a rule from a mistake, like `promptloop report-failure`),
search_rules (the rules that fit a task or the files being edited), list_rules, get_rule,
rule_feedback (a rule helped or misled). Resource: promptloop://rules/active (markdown).

The project is --project-dir (default: the current directory, as the agent CLI starts it),
widened to its git work tree. report_failure waits --wait-seconds for the teacher; past that
it answers with the pending failure's id, and learning goes on in the background while the
server runs (a failure the server could not finish stays pending for `promptloop learn`).";

/// `promptloop mcp …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = AFTER_HELP)]
pub(super) struct McpArgs {
    #[command(subcommand)]
    command: Option<McpCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Register `promptloop mcp` with an agent CLI (Claude Code, Codex CLI, Gemini CLI),
    /// keeping every other byte of its config file.
    Install(InstallArgs),
    /// Remove what `mcp install` added (and only that).
    Uninstall(UninstallArgs),
}

/// How the server runs.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The project (default: the current directory; its git work tree's root is used).
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (default: ./promptloop.yaml, then ~/.config/promptloop/config.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The teacher: auto, anthropic (alias local), openai, webhook, claude-cli, offline
    /// (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
    /// The agent whose instruction file learned rules go to: claude, codex, gemini, command
    /// (overrides agent.kind).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// Seconds report_failure waits for the teacher before it answers with the pending
    /// failure's id (learning goes on in the background).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WAIT_SECONDS)]
    wait_seconds: u64,
}

/// Runs `promptloop mcp`.
pub(super) fn main(args: McpArgs) -> std::process::ExitCode {
    finish(match args.command {
        Some(McpCommand::Install(a)) => mcp_install::install(a),
        Some(McpCommand::Uninstall(a)) => mcp_install::uninstall(a),
        None => serve(args.serve),
    })
}

/// What every call needs, resolved once at start.
struct Ctx {
    /// The project's root (its git work tree, or the directory given).
    root: PathBuf,
    /// The root is a git work tree (reports outside one need `rules.file`).
    is_project: bool,
    /// The settings, flags applied.
    loaded: Loaded,
    /// Where learned rules go.
    rules: RulesTargets,
    /// How long report_failure waits for the teacher.
    wait: Duration,
    /// Learning still running after its report answered; joined before the server exits.
    learning: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let dir = project_dir(&args.project_dir)?;
    let repo = Repo::open(&dir).ok();
    let root = repo
        .as_ref()
        .map_or_else(|| dir.clone(), |r| r.root().to_path_buf());
    let mut loaded = load_settings(args.config.as_deref())?;
    loaded.settings.apply(&Overrides {
        teacher_mode: args.teacher.clone(),
        agent_kind: args.agent.clone(),
        ..Overrides::default()
    })?;
    // Checked now, so a bad config shows when the agent CLI starts the server.
    Teaching::new(&loaded)?;
    super::start_log(&loaded.settings, &root, "mcp")?;
    if let Err(f) = teachers::make_teacher(&loaded.settings) {
        eprintln!(
            "promptloop mcp: warning: {}; reported failures stay pending",
            f.message
        );
    }
    // A store that is there must open (a newer schema is refused here, not per call); one
    // that is not is created by the first report, so a server started in every project
    // (user scope) leaves no `.promptloop/` where nothing was reported.
    if !crate::store::team_store_set(&loaded.settings.store, &crate::settings::process_env)
        && project_has_store(&root)
    {
        crate::store::open_project(&root).map_err(|e| Failure::usage(e.to_string()))?;
    }
    let agent = super::agents::make_agent(&loaded.settings);
    let rules = super::agents::rules_targets(&loaded.settings, &root, agent.as_ref());
    let ctx = Arc::new(Ctx {
        is_project: repo.is_some(),
        root,
        loaded,
        rules,
        wait: Duration::from_secs(args.wait_seconds),
        learning: Mutex::new(Vec::new()),
    });
    tracing::info!("mcp server for {} on stdio", ctx.root.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("start the server's runtime: {e}")))?;
    let server = Server::new(Arc::clone(&ctx));
    let served = runtime.block_on(async move {
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| format!("start the MCP session: {e}"))?;
        running
            .waiting()
            .await
            .map_err(|e| format!("serve MCP: {e}"))
    });
    // The client has gone; reports still learning finish (each within teacher.timeout).
    let handles = std::mem::take(&mut *lock(&ctx.learning));
    let running = handles.iter().filter(|h| !h.is_finished()).count();
    if running > 0 {
        eprintln!("promptloop mcp: finishing {running} report(s) still learning");
    }
    for h in handles {
        let _ = h.join();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    match served {
        Ok(reason) => {
            tracing::info!("mcp session ended: {reason:?}");
            Ok(0)
        }
        Err(message) => Err(Failure {
            message,
            code: super::EXIT_FAILED,
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Tool arguments (their doc comments are the schema's descriptions)

/// The kinds of mistake a report can be (the teacher prompt each one routes to).
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum FailureType {
    /// Wrong approach, misunderstood requirements.
    PlanningError,
    /// Missed existing infrastructure, created a duplicate.
    IntegrationError,
    /// n8n / CI / pipeline design issues.
    WorkflowError,
    /// Wrong design patterns or layers.
    ArchitectureError,
    /// Over- or under-scoped solution.
    ScopeError,
    /// Configuration or credential issues.
    ConfigError,
    /// Anything else.
    Other,
}

impl FailureType {
    fn as_str(self) -> &'static str {
        match self {
            FailureType::PlanningError => "planning_error",
            FailureType::IntegrationError => "integration_error",
            FailureType::WorkflowError => "workflow_error",
            FailureType::ArchitectureError => "architecture_error",
            FailureType::ScopeError => "scope_error",
            FailureType::ConfigError => "config_error",
            FailureType::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportArgs {
    /// The kind of mistake: planning_error (wrong approach, misunderstood requirements),
    /// integration_error (missed existing infrastructure, created a duplicate),
    /// workflow_error (CI / pipeline / n8n design), architecture_error (wrong patterns or
    /// layers), scope_error (over- or under-scoped), config_error (configuration or
    /// credentials), other.
    failure_type: FailureType,
    /// What went wrong, concretely (what was done, and why it was wrong).
    description: String,
    /// What should have been done or known instead: the context a teacher needs.
    #[serde(default)]
    context: Option<String>,
    /// The task that was being worked on.
    #[serde(default)]
    task: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// The task or question, in words (e.g. "add retry logic to the HTTP client").
    #[serde(default)]
    query: Option<String>,
    /// Files being read or edited (relative to the project, or absolute inside it).
    #[serde(default)]
    paths: Option<Vec<String>>,
    /// Only rules of this category (as shown in the instruction file's `###` headings).
    #[serde(default)]
    category: Option<String>,
    /// How many rules at most (1 to 50, default 5).
    #[serde(default)]
    limit: Option<u32>,
}

/// Which rules `list_rules` shows.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ListStatus {
    /// Rules written into the instruction files.
    Active,
    /// Rules waiting for review (`promptloop rules approve ID`).
    Proposed,
    /// Rules retired or rejected, kept for their history.
    Retired,
    /// Every rule.
    All,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// active, proposed, retired or all (default: active and proposed).
    #[serde(default)]
    status: Option<ListStatus>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    /// The rule's id, e.g. r-7f3a2c (a unique prefix such as 7f3a works too).
    id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FeedbackArgs {
    /// The rule's id, e.g. r-7f3a2c.
    id: String,
    /// true: following the rule helped; false: it misled or did not apply.
    helped: bool,
    /// Why, in a sentence (kept with the rule's evidence).
    #[serde(default)]
    note: Option<String>,
}

// ---------------------------------------------------------------------------
// The server

#[derive(Clone)]
struct Server {
    ctx: Arc<Ctx>,
    tool_router: ToolRouter<Server>,
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn tool_ok(value: &Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Runs store work off the async threads; its error becomes the tool's error result.
async fn blocking(
    f: impl FnOnce() -> Result<Value, String> + Send + 'static,
) -> Result<CallToolResult, McpError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(tool_ok(&value)),
        Ok(Err(message)) => Ok(tool_error(message)),
        Err(e) => Err(McpError::internal_error(
            format!("the store call stopped: {e}"),
            None,
        )),
    }
}

/// Whether the project has a record (`.promptloop/`) yet.
fn project_has_store(root: &Path) -> bool {
    root.join(crate::store::DIR_NAME).exists()
}

/// The project's store (when it has one: reading creates none; a team store when one is
/// set), and the user's store of global rules when there is one.
fn open_stores(
    root: &Path,
    store_settings: &StoreSettings,
) -> Result<Vec<Box<dyn RuleStore>>, String> {
    let mut stores: Vec<Box<dyn RuleStore>> = Vec::new();
    let team = crate::store::team_store_set(store_settings, &crate::settings::process_env);
    if team || project_has_store(root) {
        stores.push(crate::store::open_for(root, store_settings).map_err(|e| e.to_string())?);
    }
    if let Some(user) = crate::store::user_db_path(&crate::settings::process_env)
        && user.exists()
        && user != crate::store::project_db_path(root)
    {
        match SqliteStore::open(&user) {
            Ok(store) => stores.push(Box::new(store)),
            Err(e) => tracing::warn!("the user's store is left out: {e}"),
        }
    }
    Ok(stores)
}

/// The store that holds the rule `id`, and its full id.
fn find_rule<'a>(
    stores: &'a [Box<dyn RuleStore>],
    id: &str,
) -> Result<(&'a dyn RuleStore, StoredRule), String> {
    let id = id.trim();
    if id.is_empty() {
        return Err("the id is empty; `list_rules` or `search_rules` show the ids".into());
    }
    for store in stores {
        match store.get(id) {
            Ok(rule) => return Ok((store.as_ref(), rule)),
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(StoreError::NotFound(id.to_string()).to_string())
}

fn rule_json(r: &StoredRule, fb: FeedbackCounts) -> Value {
    json!({
        "id": r.id,
        "status": r.status,
        "scope": r.scope,
        "category": r.rule.category,
        "rule": r.rule.rule,
        "when": r.rule.when,
        "why": r.rule.why,
        "evidence": {
            "times_learned": r.times_learned,
            "times_validated": r.times_validated,
            "recurrences": r.recurrences,
            "helped": fb.helped,
            "misled": fb.misled,
        },
        "learned_from": r.provenance.iter().take(3).map(|p| json!({
            "failure_type": p.failure_type,
            "source": p.source,
            "task": p.task,
            "learned_at": p.learned_at,
        })).collect::<Vec<_>>(),
    })
}

/// A path as the store knows it: relative to the project when it is inside it.
fn project_relative(root: &Path, path: &str) -> String {
    let p = Path::new(path.trim());
    match p.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.trim().to_string(),
    }
}

/// What the learning thread reports back to the call that started it.
enum Progress {
    /// The failure is in the store.
    Saved,
    /// Learning ended: the answer for the agent, or why it failed.
    Done(Result<Value, String>),
}

#[rmcp::tool_router]
impl Server {
    fn new(ctx: Arc<Ctx>) -> Server {
        Server {
            ctx,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Report a mistake that tests cannot catch (a wrong plan, a duplicated \
        integration, a wrong layer, an over-scoped change, a bad config), right when the user \
        points it out. promptloop stores it, asks its teacher for a rule (Rule / When / Why), \
        and writes the rule into the project's instruction file (CLAUDE.md, AGENTS.md, …) so \
        every later session knows it. Answers with the rule's id and text; when the teacher is \
        slow or down it answers with the stored failure's id instead (nothing is lost: \
        `promptloop learn` completes it). Secrets are redacted before anything is sent.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn report_failure(
        &self,
        Parameters(args): Parameters<ReportArgs>,
    ) -> Result<CallToolResult, McpError> {
        if !self.ctx.is_project && self.ctx.loaded.settings.rules.file.is_none() {
            return Ok(tool_error(format!(
                "{} is not a project (no git work tree), so there is no instruction file to \
                 learn into; start the server in the project (--project-dir) or set rules.file",
                self.ctx.root.display()
            )));
        }
        let description = args.description.trim().to_string();
        if description.is_empty() {
            return Ok(tool_error(
                "description is empty: say what went wrong (what was done, and why it was wrong)",
            ));
        }
        let kind = args.failure_type.as_str();
        let failure = FailureContext::manual(
            format!("{}-{kind}", record::new_id()),
            kind,
            args.task
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "(not stated)".to_string()),
            &self.ctx.root,
            description,
            args.context.filter(|c| !c.trim().is_empty()),
        );
        let failure_id = failure.id.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Arc::clone(&self.ctx);
        let spawned = std::thread::Builder::new()
            .name("promptloop-learn".into())
            .spawn(move || {
                let done = learn_one(&ctx, failure, &tx);
                let _ = tx.send(Progress::Done(done));
            });
        match spawned {
            Ok(handle) => {
                let mut running = lock(&self.ctx.learning);
                running.retain(|h| !h.is_finished());
                running.push(handle);
            }
            Err(e) => return Ok(tool_error(format!("start learning: {e}"))),
        }
        match tokio::time::timeout(SAVE_WAIT, rx.recv()).await {
            Ok(Some(Progress::Saved)) => {}
            Ok(Some(Progress::Done(done))) => return Ok(answer(done)),
            Ok(None) => return Ok(tool_error("learning stopped before the failure was stored")),
            Err(_) => {
                return Ok(tool_error(format!(
                    "the store did not take failure {failure_id} within {} s (other sessions \
                     are writing to it); it is still being stored in the background",
                    SAVE_WAIT.as_secs()
                )));
            }
        }
        match tokio::time::timeout(self.ctx.wait, rx.recv()).await {
            Ok(Some(Progress::Done(done))) => Ok(answer(done)),
            Ok(_) => Ok(tool_error(format!(
                "learning stopped unexpectedly; failure {failure_id} is kept as pending for \
                 `promptloop learn`"
            ))),
            Err(_) => Ok(tool_ok(&json!({
                "status": "pending",
                "failure_id": failure_id,
                "reason": format!(
                    "the teacher has not answered within {} s",
                    self.ctx.wait.as_secs()
                ),
                "note": "the failure is stored; learning goes on in the background while this \
                         server runs (its rule reaches the instruction file when the teacher \
                         answers); if the server stops first, the failure stays pending for \
                         `promptloop learn`",
            }))),
        }
    }

    #[tool(
        description = "Find the learned rules that fit what you are about to do: pass the task \
        in words (query) and/or the files you are reading or editing (paths). Rules are ranked \
        by the words they share with the query, by whether the failures they were learned from \
        touched those files, and by their evidence and feedback; each comes with its id, its \
        Rule / When / Why, and its evidence. The store may hold more rules than the \
        instruction file shows. Without query and paths, the most valuable rules come first.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_rules(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, McpError> {
        let limit = args.limit.unwrap_or(5);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Ok(tool_error(format!(
                "limit must be between 1 and {MAX_LIMIT} (got {limit})"
            )));
        }
        let root = self.ctx.root.clone();
        let store_settings = self.ctx.loaded.settings.store.clone();
        let paths: Vec<String> = args
            .paths
            .unwrap_or_default()
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| project_relative(&root, p))
            .collect();
        let query = Query {
            text: args.query.filter(|q| !q.trim().is_empty()),
            paths,
            category: args.category.filter(|c| !c.trim().is_empty()),
            limit: limit as usize,
        };
        blocking(move || {
            let stores = open_stores(&root, &store_settings)?;
            let mut rules = Vec::new();
            let mut failures = Vec::new();
            let mut feedback = HashMap::new();
            let filter = RuleFilter {
                statuses: vec![Status::Active],
                target: None,
            };
            for store in &stores {
                rules.extend(store.list(&filter).map_err(|e| e.to_string())?);
                failures.extend(store.failures().map_err(|e| e.to_string())?);
                feedback.extend(store.all_feedback_counts().map_err(|e| e.to_string())?);
            }
            let searched = rules.len();
            let files = search::files_by_rule(&rules, &failures);
            let hits = search::rank(rules, &files, &feedback, &query);
            let found: Vec<Value> = hits
                .iter()
                .map(|h| {
                    let mut v = rule_json(&h.rule, h.feedback);
                    v["score"] = json!((h.score * 1000.0).round() / 1000.0);
                    v["matched_terms"] = json!(h.matched_terms);
                    v["matched_files"] = json!(h.matched_files);
                    v["files"] = json!(h.files);
                    v
                })
                .collect();
            let mut out = json!({ "searched": searched, "rules": found });
            if hits.is_empty() {
                out["note"] = json!(if searched == 0 {
                    "the store holds no active rules yet"
                } else {
                    "no active rule fits; try other words or fewer filters"
                });
            }
            Ok(out)
        })
        .await
    }

    #[tool(
        description = "List the project's rules (and the user's global ones) with their ids and \
        evidence. status: active, proposed (waiting for review), retired, or all; default: \
        active and proposed.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_rules(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<CallToolResult, McpError> {
        let statuses = match args.status {
            None => vec![Status::Active, Status::Proposed],
            Some(ListStatus::Active) => vec![Status::Active],
            Some(ListStatus::Proposed) => vec![Status::Proposed],
            Some(ListStatus::Retired) => vec![Status::Retired],
            Some(ListStatus::All) => Vec::new(),
        };
        let root = self.ctx.root.clone();
        let store_settings = self.ctx.loaded.settings.store.clone();
        blocking(move || {
            let stores = open_stores(&root, &store_settings)?;
            let filter = RuleFilter {
                statuses,
                target: None,
            };
            let mut out = Vec::new();
            for store in &stores {
                let feedback = store.all_feedback_counts().map_err(|e| e.to_string())?;
                for r in store.list(&filter).map_err(|e| e.to_string())? {
                    let fb = feedback.get(&r.id).copied().unwrap_or_default();
                    out.push(rule_json(&r, fb));
                }
            }
            Ok(json!({ "count": out.len(), "rules": out }))
        })
        .await
    }

    #[tool(
        description = "Show one rule by its id (or a unique prefix): its Rule / When / Why, \
        status, the files it is written into, its evidence, where it was learned (every \
        arrival), and the feedback it got.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_rule(
        &self,
        Parameters(args): Parameters<IdArgs>,
    ) -> Result<CallToolResult, McpError> {
        let root = self.ctx.root.clone();
        let store_settings = self.ctx.loaded.settings.store.clone();
        blocking(move || {
            let stores = open_stores(&root, &store_settings)?;
            let (store, rule) = find_rule(&stores, &args.id)?;
            let counts = store.feedback_counts(&rule.id).map_err(|e| e.to_string())?;
            let log = store
                .feedback_log(&rule.id, 10)
                .map_err(|e| e.to_string())?;
            let mut v = rule_json(&rule, counts);
            v["targets"] = json!(rule.targets);
            v["note"] = json!(rule.note);
            v["created_at"] = json!(rule.created_at);
            v["last_learned_at"] = json!(rule.last_learned_at);
            v["learned_from"] = json!(
                rule.provenance
                    .iter()
                    .map(|p| json!({
                        "failure_id": p.failure_id,
                        "failure_type": p.failure_type,
                        "source": p.source,
                        "task": p.task,
                        "teacher": p.teacher,
                        "model": p.model,
                        "learned_at": p.learned_at,
                        "text": p.text,
                    }))
                    .collect::<Vec<_>>()
            );
            v["feedback"] = json!(log);
            Ok(v)
        })
        .await
    }

    #[tool(
        description = "Say whether a rule helped (helped: true) or misled / did not apply \
        (helped: false), with a short note. It is kept as evidence on the rule and ranks it \
        up or down in search_rules.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn rule_feedback(
        &self,
        Parameters(args): Parameters<FeedbackArgs>,
    ) -> Result<CallToolResult, McpError> {
        let root = self.ctx.root.clone();
        let store_settings = self.ctx.loaded.settings.store.clone();
        blocking(move || {
            let stores = open_stores(&root, &store_settings)?;
            let (store, rule) = find_rule(&stores, &args.id)?;
            let (id, counts) = store
                .add_feedback(&rule.id, args.helped, args.note.as_deref(), "mcp")
                .map_err(|e| e.to_string())?;
            tracing::info!(
                "feedback on {id}: {}",
                if args.helped { "helped" } else { "misled" }
            );
            Ok(json!({
                "rule_id": id,
                "helped": args.helped,
                "feedback": counts,
            }))
        })
        .await
    }
}

/// The agent's answer for a finished report.
fn answer(done: Result<Value, String>) -> CallToolResult {
    match done {
        Ok(value) => tool_ok(&value),
        Err(message) => tool_error(message),
    }
}

/// One report, on its own thread: store it, ask the teacher, learn the rule into the store
/// and the instruction files. Everything is built here, from the settings, so nothing of it
/// is shared with other calls.
fn learn_one(
    ctx: &Ctx,
    failure: FailureContext,
    tx: &tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<Value, String> {
    let failure_id = failure.id.clone();
    let teaching = Teaching::new(&ctx.loaded).map_err(|f| f.message)?;
    // A teacher that cannot work keeps the report pending, with the reason.
    let teacher = teachers::make_teacher(&ctx.loaded.settings).unwrap_or_else(|f| Err(f.message));
    // Like `run`, the record is kept out of git.
    if let Ok(repo) = Repo::open(&ctx.root) {
        repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
            .map_err(|e| e.to_string())?;
    }
    let record =
        Record::open_with(&ctx.root, &ctx.loaded.settings.store).map_err(|e| e.to_string())?;
    let learner = teaching.learner(teacher.as_deref().map_err(Clone::clone), ctx.rules.clone());
    let mut learned: Option<(String, String, Option<String>, Vec<String>)> = None;
    let mut emit = |e: Event| match e {
        Event::FailureCaptured { failure_id, .. } => {
            eprintln!("promptloop mcp: failure {failure_id} stored");
            let _ = tx.send(Progress::Saved);
        }
        Event::RuleLearned {
            rule_id,
            action,
            note,
            files,
            ..
        } => {
            eprintln!("promptloop mcp: rule {rule_id} {action}");
            learned = Some((rule_id, action, note, files));
        }
        Event::FailurePending { failure_id, reason } => {
            eprintln!("promptloop mcp: failure {failure_id} kept as pending: {reason}");
        }
        _ => {}
    };
    let cancel = CancelToken::new();
    let lesson = learner
        .analyse(failure, 0, &record, &mut emit, &cancel)
        .map_err(|e| format!("{e:#}"))?;
    match lesson {
        Lesson::Learned(boxed) => {
            let (lesson, stored) = *boxed;
            learner
                .write(&lesson, stored, &record, &mut emit)
                .map_err(|e| format!("{e:#}"))?;
            let Some((rule_id, action, note, files)) = learned else {
                return Err("the rule was stored but not reported".into());
            };
            // A merged lesson lives on in the rule it said the same as: show that one.
            let rule = record.store().get(&rule_id).map_err(|e| e.to_string())?;
            Ok(json!({
                "status": "learned",
                "failure_id": failure_id,
                "action": action,
                "note": note,
                "files": files,
                "rule": {
                    "id": rule.id,
                    "status": rule.status,
                    "category": rule.rule.category,
                    "rule": rule.rule.rule,
                    "when": rule.rule.when,
                    "why": rule.rule.why,
                },
            }))
        }
        Lesson::Pending(stored) => Ok(json!({
            "status": "pending",
            "failure_id": failure_id,
            "reason": stored.last_error,
            "note": "the failure is stored; `promptloop learn` completes it once a teacher \
                     answers",
        })),
    }
}

/// The active rules as one markdown document, most valuable first within their categories.
fn active_rules_markdown(root: &Path, store_settings: &StoreSettings) -> Result<String, String> {
    let stores = open_stores(root, store_settings)?;
    let mut rules = Vec::new();
    for store in &stores {
        rules.extend(
            store
                .list(&RuleFilter {
                    statuses: vec![Status::Active],
                    target: None,
                })
                .map_err(|e| e.to_string())?,
        );
    }
    rules.sort_by(|a, b| b.value().cmp(&a.value()).then_with(|| a.id.cmp(&b.id)));
    let budget = crate::store::render::Budget {
        lines: usize::MAX,
        chars: usize::MAX,
    };
    let section = crate::store::render::render_section(&rules, budget, 0, 0);
    Ok(format!(
        "# Learned rules ({} active)\n{}",
        rules.len(),
        section.body
    ))
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("promptloop", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "promptloop keeps the rules this project's coding agents learned from their \
             mistakes. Before a task, call search_rules with the task and the files you will \
             edit: the store may hold more rules than the instruction file shows. When the \
             user corrects a mistake the tests cannot catch, call report_failure so it becomes \
             a rule. When a rule helped or misled you, call rule_feedback.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(ACTIVE_RULES_URI, "active-rules")
                .with_title("Learned rules")
                .with_description(
                    "The project's active rules (and the user's global ones) as markdown, \
                     every one of them, not only those the instruction file's budget shows",
                )
                .with_mime_type("text/markdown"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != ACTIVE_RULES_URI {
            return Err(McpError::resource_not_found(
                format!(
                    "no resource {}; this server has {ACTIVE_RULES_URI}",
                    request.uri
                ),
                None,
            ));
        }
        let root = self.ctx.root.clone();
        let store_settings = self.ctx.loaded.settings.store.clone();
        let text =
            tokio::task::spawn_blocking(move || active_rules_markdown(&root, &store_settings))
                .await
                .map_err(|e| McpError::internal_error(format!("read the rules: {e}"), None))?
                .map_err(|e| McpError::internal_error(e, None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, ACTIVE_RULES_URI).with_mime_type("text/markdown"),
        ])
        .into())
    }
}
