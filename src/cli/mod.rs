//! The command line: arguments, set-up of the run from settings, rendering, exit codes.
//! The only layer that talks to the user.

mod agents;
mod bench;
mod capture;
mod gc;
mod history;
mod hook;
mod log;
mod mcp;
mod mcp_install;
mod redact;
mod render;
mod report;
mod rules;
mod serve;
mod stats;
mod store;
mod teachers;
mod validate;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::events::RunOutcome;
use crate::git::Repo;
use crate::learn::Lesson;
use crate::learning_loop::{self, RunPlan};
use crate::process::CancelToken;
use crate::record::Record;
use crate::settings::{self, ConfigError, Loaded, Overrides, Settings, TestFramework};
use crate::store::FailureStatus;
use crate::testing::{self, Framework};
use render::Output;

/// Exit code: the loop ended without success.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or bad configuration.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

const AFTER_HELP: &str = "\
Examples:
  promptloop run \"Fix safe_divide to return None on division by zero\" -d examples/calculator
  promptloop run \"Add input validation\" --max-retries 5 --config promptloop.yaml --json
  promptloop run \"Fix the parser\" --agent codex   # Codex CLI; rules go to AGENTS.md
  promptloop learn                 # analyse failures a teacher could not analyse before
  promptloop report-failure -f planning_error -D \"Built a new service instead of extending one\"
  promptloop redact .env.example   # see what a teacher would be sent
  promptloop serve                 # the rules, failures and runs on a local web page
  promptloop config check          # validate the config and print the effective settings

Configuration is read from --config FILE, else ./promptloop.yaml, else
$XDG_CONFIG_HOME/promptloop/config.yaml (~/.config/promptloop/config.yaml), else built-in
defaults. The prototype's config.yaml loads unchanged. Agents: agent.kind (claude, codex,
gemini, command) with the sections claude:, codex:, gemini: and agent: (agent.command, a
shell command with {task} and {project_dir}, e.g. `aider --yes --message {task}`).

Exit codes: 0 tests pass, 1 the loop ended without success, 2 bad usage or config,
130 interrupted.";

/// promptloop makes coding agents learn from their mistakes.
///
/// It runs an agent CLI (Claude Code, Codex CLI, Gemini CLI or any command) headless on a
/// task, runs the project's tests, and when they fail asks a teacher LLM for a rule (Rule /
/// When / Why), writes it into the agent's instruction file (CLAUDE.md, AGENTS.md, GEMINI.md,
/// or every file in rules.targets) and retries with the new knowledge. Your branch, index,
/// commits and uncommitted files are never touched: each attempt is snapshotted under
/// refs/promptloop/ and undone before a retry.
#[derive(Debug, Parser)]
#[command(name = "promptloop", version, after_help = AFTER_HELP, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent on a task; on test failures learn a rule and retry.
    ///
    /// The legacy form without the subcommand (`promptloop "TASK" --project-dir DIR`) works too.
    Run(RunArgs),
    /// Analyse the failures kept as pending (teacher was down or unset) and write their rules.
    Learn(LearnArgs),
    /// Run a test command (or read a CI job's JUnit report) and print the failures it
    /// found; --learn turns them into rules.
    #[command(after_help = capture::AFTER_HELP)]
    Capture(capture::CaptureArgs),
    /// Claude Code hooks: learn from failing tests when an interactive session stops.
    #[command(subcommand, after_help = hook::AFTER_HELP)]
    Hook(hook::HookCommand),
    /// Report a mistake the tests did not catch (a wrong plan, a duplicate, a bad config)
    /// and learn a rule from it.
    ReportFailure(report::ReportArgs),
    /// Show what would be sent to a teacher: a file, stdin or a stored failure, redacted.
    Redact(redact::RedactArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The rule store: list, review, edit, retire, export/import, render, log, undo.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Runs, attempts and outcomes recorded in the project's store.
    History(history::HistoryArgs),
    /// Run a suite of tasks with and without the learned rules and compare pass rates.
    #[command(after_help = bench::AFTER_HELP)]
    Bench(bench::BenchArgs),
    /// What the record says about learning: per rule (learned, recurred, validated,
    /// helped) and per day (first-attempt pass rate, attempts to green, failures,
    /// recurrences); --plot DIR writes SVG charts.
    Stats(stats::StatsArgs),
    /// Serve the rule store and the teacher over MCP (stdio) to an agent session; `mcp
    /// install` registers it with Claude Code, Codex CLI or Gemini CLI.
    Mcp(mcp::McpArgs),
    /// A local web page: review proposed rules, read where rules came from, report a
    /// failure, follow runs, see charts of what was learned.
    Serve(serve::ServeArgs),
    /// Prune old runs' snapshot refs and record folders (never `git gc`).
    #[command(after_help = gc::AFTER_HELP)]
    Gc(gc::GcArgs),
    /// The store's file: check it; repair or reset a damaged one (moved aside, never deleted).
    #[command(subcommand, after_help = store::AFTER_HELP)]
    Store(store::StoreCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config and print the effective settings (exit 0 when valid).
    Check(ConfigArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The config file (default: ./promptloop.yaml, then ~/.config/promptloop/config.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print {source, warnings, settings} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The project: a directory inside a git work tree.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (default: ./promptloop.yaml, then ~/.config/promptloop/config.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The teacher: auto, anthropic (alias local), openai, webhook, claude-cli, offline
    /// (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
    /// The agent: claude (Claude Code), codex (Codex CLI), gemini (Gemini CLI) or command
    /// (agent.command in the config). Overrides agent.kind; it also picks the default rules
    /// file: CLAUDE.md, AGENTS.md, GEMINI.md, or agent.rules_file.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// The one instruction file rules are written to (overrides rules.file and
    /// rules.targets; default: the agent's own file in the project).
    #[arg(long, value_name = "FILE")]
    rules_file: Option<PathBuf>,
    /// Print one JSON object per line for each event, for scripts.
    #[arg(long)]
    json: bool,
    /// Review mode: store learned rules as proposed and write them to no file until
    /// `promptloop rules approve ID` (overrides rules.review).
    #[arg(long)]
    review: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// What the agent should do.
    task: String,
    #[command(flatten)]
    common: CommonArgs,
    /// Retries after the first attempt (overrides learning.max_retries).
    #[arg(short = 'r', long, value_name = "N")]
    max_retries: Option<u32>,
    /// Stop after the first failure and leave the attempt's changes for review.
    #[arg(long)]
    no_auto_retry: bool,
    /// The test command, run through the shell (overrides tests.command).
    #[arg(long, value_name = "CMD")]
    test_command: Option<String>,
    /// After the run, validate each rule it learned: rerun its failure with and without
    /// the rule, within RERUNS reruns in all (default: learning.validate_budget, 6); a
    /// harmful rule is retired. `learning.validate: true` does this on every run.
    #[arg(long, value_name = "RERUNS", num_args = 0..=1, default_missing_value = "6")]
    validate: Option<u32>,
}

#[derive(Debug, Args)]
struct LearnArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(with_legacy_run(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => run(args),
        Command::Learn(args) => learn(args),
        Command::Capture(args) => capture::capture(args),
        Command::Hook(command) => hook::hook(command),
        Command::ReportFailure(args) => report::report_failure(args),
        Command::Redact(args) => redact::redact(args),
        Command::Config(ConfigCommand::Check(args)) => config_check(args),
        Command::Rules(command) => rules::main(command),
        Command::History(args) => history::main(args),
        Command::Bench(args) => bench::bench(args),
        Command::Stats(args) => stats::main(args),
        Command::Mcp(args) => mcp::main(args),
        Command::Serve(args) => serve::serve(args),
        Command::Gc(args) => gc::main(args),
        Command::Store(command) => store::main(command),
    }
}

/// The prototype's form `promptloop "TASK" --project-dir DIR` means `run`.
fn with_legacy_run(mut args: Vec<OsString>) -> Vec<OsString> {
    const KNOWN: &[&str] = &[
        "run",
        "learn",
        "capture",
        "hook",
        "report-failure",
        "redact",
        "config",
        "rules",
        "history",
        "bench",
        "stats",
        "mcp",
        "serve",
        "gc",
        "store",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    if let Some(first) = args.get(1).and_then(|a| a.to_str())
        && !KNOWN.contains(&first)
    {
        args.insert(1, "run".into());
    }
    args
}

/// A message for the user and the exit code that goes with it.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e.to_string())
    }
}

fn finish(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn load_settings(config: Option<&Path>) -> Result<Loaded, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("read the current directory: {e}")))?;
    let loaded = settings::load(config, &cwd, &settings::process_env)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded)
}

/// With a team store, renders its rules into the run's instruction files before the first
/// attempt, so a clone or CI runner that never learned a lesson starts with what the team
/// learned. A render that fails is a warning: the run goes on with the files as they are.
fn refresh_from_team_store(
    record: &Record,
    project_dir: &Path,
    settings: &Settings,
    rules: &crate::rules::RulesTargets,
) {
    if !crate::store::team_store_set(&settings.store, &settings::process_env) {
        return;
    }
    let curator = crate::learn::curate::Curator::for_settings(
        record.store(),
        project_dir.to_path_buf(),
        &settings.rules,
    );
    for path in rules.paths() {
        let target = curator.target(&path);
        match curator.sync(&target, "rendered from the team store as a run starts", &[]) {
            Ok(report) if report.written => {
                tracing::info!("{} rendered from the team store", target.key);
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "warning: {} was not rendered from the team store: {e}",
                target.key
            ),
        }
    }
}

/// The store the settings choose for `project_dir`: its SQLite file, or the team store
/// (working offline when the server cannot be reached; see `store::open_for`).
fn open_store(
    project_dir: &Path,
    settings: &Settings,
) -> Result<Box<dyn crate::store::RuleStore>, Failure> {
    crate::store::open_for(project_dir, &settings.store).map_err(|e| Failure {
        message: e.to_string(),
        code: EXIT_FAILED,
    })
}

/// Whether `project_dir` has a store to read: a team store is set, or its SQLite file is
/// there.
fn has_store(project_dir: &Path, settings: &Settings) -> bool {
    crate::store::project_db_path(project_dir).exists()
        || crate::store::team_store_set(&settings.store, &settings::process_env)
}

/// The project directory, checked to exist, made absolute.
fn project_dir(dir: &Path) -> Result<PathBuf, Failure> {
    if !dir.exists() {
        return Err(Failure::usage(format!(
            "project directory {} does not exist",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    dir.canonicalize()
        .map_err(|e| Failure::usage(format!("resolve {}: {e}", dir.display())))
}

/// Starts the log file when `logging.file` is set; one that cannot be opened is a
/// configuration error. Inside the work tree the log is excluded from git like
/// `.promptloop/`, so snapshots and restores never carry it.
fn start_log(settings: &Settings, project_dir: &Path, command: &str) -> Result<(), Failure> {
    let Some(path) = log::path_of(&settings.logging, project_dir) else {
        return Ok(());
    };
    let cannot = |e: &dyn std::fmt::Display| {
        Failure::usage(format!(
            "open the log file {} (logging.file): {e}",
            path.display()
        ))
    };
    if let Ok(repo) = Repo::open(project_dir) {
        let parent = path
            .parent()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
        let inside = parent.as_deref().and_then(|dir| {
            let name = path.file_name()?;
            dir.join(name)
                .strip_prefix(repo.root())
                .ok()
                .map(Path::to_path_buf)
        });
        if let Some(rel) = inside {
            repo.ensure_excluded(&format!("/{}", rel.display()))
                .map_err(|e| cannot(&e))?;
        }
    }
    log::init(&path, settings.logging.level, teachers::redactor(settings)?)
        .map_err(|e| cannot(&e))?;
    tracing::info!(
        "promptloop {} {command} in {}",
        env!("CARGO_PKG_VERSION"),
        project_dir.display()
    );
    Ok(())
}

fn open_repo(project_dir: &Path) -> Result<Repo, Failure> {
    Repo::open(project_dir).map_err(|e| Failure::usage(format!("{e}")))
}

/// The runner whose report is read: as configured, or detected from the command and the
/// project for `auto`.
pub(crate) fn framework(settings: &Settings, command: &str, project_dir: &Path) -> Framework {
    match settings.tests.framework {
        TestFramework::Pytest => Framework::Pytest,
        TestFramework::Jest => Framework::Jest,
        TestFramework::Vitest => Framework::Vitest,
        TestFramework::Go => Framework::Go,
        TestFramework::Cargo => Framework::Cargo,
        TestFramework::Nextest => Framework::Nextest,
        TestFramework::Junit => Framework::Junit,
        TestFramework::Auto => testing::detect_in(command, project_dir),
        TestFramework::None => Framework::Plain,
    }
}

/// The semantic review's settings, when `failure_sources` enables `semantic`.
fn semantic_plan(settings: &Settings) -> Option<crate::review::SemanticPlan> {
    settings
        .failure_sources
        .iter()
        .any(|s| s.name == "semantic" && s.enabled)
        .then_some(crate::review::SemanticPlan {
            min_confidence: settings.semantic.min_confidence,
            max_findings: settings.semantic.max_findings,
        })
}

/// Ctrl-C once: stop the children and undo the attempt. Twice: leave at once.
fn install_interrupt(cancel: &CancelToken) {
    let cancel = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        cancel.cancel();
    });
}

fn overrides(common: &CommonArgs) -> Overrides {
    Overrides {
        teacher_mode: common.teacher.clone(),
        rules_file: common.rules_file.clone(),
        agent_kind: common.agent.clone(),
        review: common.review.then_some(true),
        ..Overrides::default()
    }
}

fn run(args: RunArgs) -> ExitCode {
    let json = args.common.json;
    finish(run_inner(args, json))
}

fn run_inner(args: RunArgs, json: bool) -> Result<u8, Failure> {
    if args.task.trim().is_empty() {
        return Err(Failure::usage(
            "the task is empty; say what the agent should do",
        ));
    }
    let project_dir = project_dir(&args.common.project_dir)?;
    let mut loaded = load_settings(args.common.config.as_deref())?;
    let mut over = overrides(&args.common);
    over.max_retries = args.max_retries;
    over.auto_retry = args.no_auto_retry.then_some(false);
    over.test_command = args.test_command.clone();
    loaded.settings.apply(&over)?;
    let teaching = teachers::Teaching::new(&loaded)?;
    let learning = &loaded.settings.learning;
    let for_validation = args
        .validate
        .or(learning.validate.then_some(learning.validate_budget))
        .map(|budget| (budget, loaded.clone()));
    let settings = loaded.settings;
    let repo = open_repo(&project_dir)?;
    start_log(&settings, &project_dir, "run")?;
    let agent = agents::make_agent(&settings);
    agent.check().map_err(|e| Failure::usage(e.to_string()))?;
    let teacher = teachers::make_teacher(&settings)?;
    let rules = agents::rules_targets(&settings, &project_dir, agent.as_ref());
    repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
        .map_err(|e| Failure::usage(e.to_string()))?;
    let record = Record::open_with(&project_dir, &settings.store)
        .map_err(|e| Failure::usage(e.to_string()))?;
    refresh_from_team_store(&record, &project_dir, &settings, &rules);
    let cancel = CancelToken::new();
    install_interrupt(&cancel);
    let plan = RunPlan {
        task: args.task.clone(),
        project_dir: project_dir.clone(),
        max_attempts: 1 + if settings.learning.auto_retry {
            settings.learning.max_retries
        } else {
            0
        },
        auto_retry: settings.learning.auto_retry,
        test_command: settings.tests.command.clone(),
        framework: framework(&settings, &settings.tests.command, &project_dir),
        tests_timeout: settings.tests.timeout,
        test_report: settings.tests.report.clone(),
        semantic: semantic_plan(&settings),
    };
    let learner = teaching.learner(teacher.as_deref().map_err(Clone::clone), rules);
    store_notices(json);
    let mut output = Output::new(json);
    let reporter: &mut dyn crate::events::Reporter = &mut output;
    let context = learning_loop::RunContext {
        plan: &plan,
        agent: agent.as_ref(),
        learner: &learner,
        repo: &repo,
        record: &record,
        cancel: &cancel,
    };
    let summary = learning_loop::run(context, reporter).map_err(|e| Failure {
        message: format!(
            "{e:#}\nyour work tree before the run is kept under refs/promptloop/runs/ \
                 (`git for-each-ref refs/promptloop/` lists the snapshots)"
        ),
        code: EXIT_FAILED,
    })?;
    if let Some((budget, loaded)) = for_validation
        && summary.outcome != RunOutcome::Interrupted
    {
        validate::after_run(&project_dir, loaded, &summary.run_id, budget, json);
    }
    if summary.outcome != RunOutcome::Interrupted {
        gc::after_run(
            &project_dir,
            &repo,
            record.store(),
            &settings.retention,
            json,
        );
    }
    Ok(match summary.outcome {
        RunOutcome::Passed => 0,
        RunOutcome::Failed | RunOutcome::Error => EXIT_FAILED,
        RunOutcome::Interrupted => EXIT_INTERRUPTED,
    })
}

fn learn(args: LearnArgs) -> ExitCode {
    let json = args.common.json;
    finish(learn_inner(args, json))
}

fn learn_inner(args: LearnArgs, json: bool) -> Result<u8, Failure> {
    let project_dir = project_dir(&args.common.project_dir)?;
    let mut loaded = load_settings(args.common.config.as_deref())?;
    loaded.settings.apply(&overrides(&args.common))?;
    let teaching = teachers::Teaching::new(&loaded)?;
    let settings = loaded.settings;
    start_log(&settings, &project_dir, "learn")?;
    // Only for its instruction file: `learn` does not run the agent.
    let agent = agents::make_agent(&settings);
    let record = Record::open_with(&project_dir, &settings.store)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let pending: Vec<_> = record
        .failures()
        .map_err(|e| Failure::usage(e.to_string()))?
        .into_iter()
        .filter(|f| f.status == FailureStatus::Pending)
        .collect();
    if pending.is_empty() {
        if !json {
            println!("no pending failures in {}", record.dir().display());
        }
        return Ok(0);
    }
    let teacher = match teachers::make_teacher(&settings)? {
        Ok(t) => t,
        Err(why) => return Err(Failure::usage(why)),
    };
    let cancel = CancelToken::new();
    install_interrupt(&cancel);
    let default_rules = agents::rules_targets(&settings, &project_dir, agent.as_ref());
    let mut learner = teaching.learner(Ok(teacher.as_ref()), default_rules.clone());
    store_notices(json);
    let mut output = Output::new(json);
    let reporter: &mut dyn crate::events::Reporter = &mut output;
    let mut emit = |e: crate::events::Event| reporter.report(&e);
    // The file its run or report chose (`--scope global`, `--rules-file`), unless this
    // command names one itself (`--rules-file`, or `--agent` whose file it is).
    let named_here = args.common.rules_file.is_some() || args.common.agent.is_some();
    let done = learn_pending(
        &mut learner,
        &record,
        pending,
        &default_rules,
        named_here,
        &mut emit,
        &cancel,
    )?;
    Ok(if done.interrupted {
        EXIT_INTERRUPTED
    } else if done.still_pending == 0 {
        0
    } else {
        EXIT_FAILED
    })
}

/// What [`learn_pending`] did.
struct PendingLearned {
    /// Failures still pending (the teacher failed again).
    still_pending: u32,
    /// Ctrl-C stopped it.
    interrupted: bool,
}

/// Analyses each of the `pending` failures with `learner` and writes the rules it gets. A
/// failure's rule goes to the file its run or report chose, unless `named_here` (the
/// command named a file) or that file is `default_rules`' own.
fn learn_pending(
    learner: &mut crate::learn::Learner<'_>,
    record: &Record,
    pending: Vec<crate::store::StoredFailure>,
    default_rules: &crate::rules::RulesTargets,
    named_here: bool,
    emit: &mut dyn FnMut(crate::events::Event),
    cancel: &CancelToken,
) -> Result<PendingLearned, Failure> {
    let project_dir = record.dir().parent().unwrap_or(record.dir()).to_path_buf();
    let mut done = PendingLearned {
        still_pending: 0,
        interrupted: false,
    };
    for stored in pending {
        learner.rules = match (named_here, &stored.rules_file) {
            (false, Some(file)) if Path::new(file) != default_rules.primary() => {
                crate::rules::RulesTargets::new(
                    &[PathBuf::from(file)],
                    default_rules.primary(),
                    &project_dir,
                )
            }
            _ => default_rules.clone(),
        };
        let lesson = learner
            .analyse(stored.context, stored.tries, record, emit, cancel)
            .map_err(|e| Failure {
                message: format!("{e:#}"),
                code: EXIT_FAILED,
            })?;
        match lesson {
            Lesson::Learned(boxed) => {
                let (learned, stored) = *boxed;
                learner
                    .write(&learned, stored, record, emit)
                    .map_err(|e| Failure {
                        message: format!("{e:#}"),
                        code: EXIT_FAILED,
                    })?;
            }
            Lesson::Pending(_) => done.still_pending += 1,
        }
        if cancel.is_cancelled() {
            done.interrupted = true;
            return Ok(done);
        }
    }
    Ok(done)
}

fn config_check(args: ConfigArgs) -> ExitCode {
    finish(config_check_inner(args))
}

fn config_check_inner(args: ConfigArgs) -> Result<u8, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("read the current directory: {e}")))?;
    let loaded = settings::load(args.config.as_deref(), &cwd, &settings::process_env)?;
    // Prompt files and patterns are checked here too, so a typo shows before a run.
    teachers::router(&loaded)?;
    teachers::redactor(&loaded.settings)?;
    let source = match loaded.source.path() {
        Some(p) => p.display().to_string(),
        None => "built-in defaults".to_string(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "valid": true,
            "source": source,
            "warnings": loaded.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            "settings": serde_json::to_value(&loaded.settings).unwrap_or_default(),
        });
        let _ = writeln!(out, "{value}");
    } else {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        let _ = writeln!(out, "# config: {source} (valid)");
        let _ = write!(out, "{}", loaded.settings.to_yaml());
    }
    Ok(0)
}

/// Keeps `Duration` in this module's vocabulary for the renderer.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 600.0 {
        format!("{s:.0}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// With `--json`, the `store_offline` events of a team store that could not be reached, as
/// JSON lines (the same notice went to stderr).
pub(crate) fn store_notices(json: bool) {
    for event in crate::store::offline::take_notices() {
        if json {
            println!("{event}");
        }
    }
}
