//! The command line: arguments, set-up of the run from settings, rendering, exit codes.
//! The only layer that talks to the user.

mod history;
mod render;
mod rules;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::agent::Agent;
use crate::agent::claude::{ClaudeCode, ClaudeConfig};
use crate::events::RunOutcome;
use crate::failure::DEFAULT_PRIVATE_FILES;
use crate::git::Repo;
use crate::learning_loop::{self, Learner, Lesson, RunPlan};
use crate::process::CancelToken;
use crate::record::{self, FailureStatus, Record};
use crate::settings::{self, ConfigError, Loaded, Overrides, Settings, TeacherMode, TestFramework};
use crate::teacher::Teacher;
use crate::teacher::anthropic::{AnthropicConfig, AnthropicTeacher, DEFAULT_BASE_URL};
use crate::teacher::offline::OfflineTeacher;
use crate::testing::{self, Framework};
use render::{HumanRenderer, JsonRenderer};

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
  promptloop learn                 # analyse failures a teacher could not analyse before
  promptloop config check          # validate the config and print the effective settings

Configuration is read from --config FILE, else ./promptloop.yaml, else
$XDG_CONFIG_HOME/promptloop/config.yaml (~/.config/promptloop/config.yaml), else built-in
defaults. The prototype's config.yaml loads unchanged.

Exit codes: 0 tests pass, 1 the loop ended without success, 2 bad usage or config,
130 interrupted.";

/// promptloop makes coding agents learn from their mistakes.
///
/// It runs an agent CLI (Claude Code) headless on a task, runs the project's tests, and when
/// they fail asks a teacher LLM for a rule (Rule / When / Why), writes it into the agent's
/// instruction file (CLAUDE.md) and retries with the new knowledge. Your branch, index,
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
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The rule store: list, review, edit, retire, export/import, render, log, undo.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Runs, attempts and outcomes recorded in the project's store.
    History(history::HistoryArgs),
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
    /// The teacher: auto, anthropic (alias local), offline (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
    /// The instruction file rules are written to (default: the project's CLAUDE.md).
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
        Command::Config(ConfigCommand::Check(args)) => config_check(args),
        Command::Rules(command) => rules::main(command),
        Command::History(args) => history::main(args),
    }
}

/// The prototype's form `promptloop "TASK" --project-dir DIR` means `run`.
fn with_legacy_run(mut args: Vec<OsString>) -> Vec<OsString> {
    const KNOWN: &[&str] = &[
        "run",
        "learn",
        "config",
        "rules",
        "history",
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

fn open_repo(project_dir: &Path) -> Result<Repo, Failure> {
    Repo::open(project_dir).map_err(|e| Failure::usage(format!("{e}")))
}

/// Where rules go: --rules-file, rules.file, else the agent's file in the project (for
/// `rules.scope: global`, the agent's file in the user's home, `~/.claude/CLAUDE.md`, so the
/// user's store never renders into a file the project's store owns).
fn rules_file(settings: &Settings, project_dir: &Path, agent: &dyn Agent) -> PathBuf {
    match &settings.rules.file {
        Some(file) if file.is_absolute() => file.clone(),
        Some(file) => project_dir.join(file),
        None => match (settings.rules.scope, settings::process_env("HOME")) {
            (settings::RuleScope::Global, Some(home)) if !home.is_empty() => Path::new(&home)
                .join(".claude")
                .join(agent.instruction_file()),
            _ => project_dir.join(agent.instruction_file()),
        },
    }
}

fn claude_agent(settings: &Settings) -> ClaudeCode {
    let c = &settings.claude;
    ClaudeCode::new(ClaudeConfig {
        command: c.command.clone(),
        max_turns: c.max_turns,
        permission_mode: c.permission_mode.as_str().to_string(),
        allowed_tools: c.allowed_tools.clone(),
        model: c.model.clone(),
        output_format: c.output_format.as_str().to_string(),
        extra_args: c.extra_args.clone(),
        timeout: c.timeout,
        env: Vec::new(),
    })
}

/// The teacher the settings ask for, or why there is none. A teacher that was asked for
/// by name but cannot work (no key) is a configuration error; `auto` without any teacher
/// keeps failures pending.
fn make_teacher(settings: &Settings) -> Result<Result<Box<dyn Teacher>, String>, Failure> {
    let t = &settings.teacher;
    let key_env = t
        .api_key_env_name()
        .unwrap_or("ANTHROPIC_API_KEY")
        .to_string();
    let key = std::env::var(&key_env)
        .ok()
        .filter(|k| !k.trim().is_empty());
    let anthropic = |api_key: String| -> Result<Box<dyn Teacher>, Failure> {
        let base_url = t
            .base_url
            .clone()
            .or_else(|| {
                std::env::var("ANTHROPIC_BASE_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let teacher = AnthropicTeacher::new(AnthropicConfig {
            base_url,
            api_key,
            model: t.model.clone(),
            max_tokens: t.max_tokens,
            deadline: t.timeout,
        })
        .map_err(|e| Failure::usage(e.to_string()))?;
        Ok(Box::new(teacher))
    };
    match t.mode {
        TeacherMode::Offline => Ok(Ok(Box::new(OfflineTeacher))),
        TeacherMode::Anthropic => match key {
            Some(key) => Ok(Ok(anthropic(key)?)),
            None => Err(Failure::usage(format!(
                "teacher.mode anthropic needs an API key in ${key_env}; set it, or choose \
                 another teacher with --teacher offline"
            ))),
        },
        TeacherMode::Auto => match key {
            Some(key) => Ok(Ok(anthropic(key)?)),
            None => Ok(Err(format!(
                "no teacher available: set ${key_env} for the Anthropic teacher, or \
                 teacher.mode: offline; then run `promptloop learn`"
            ))),
        },
        other => Err(Failure::usage(format!(
            "teacher.mode {other} is not available in this version; valid now: auto, \
             anthropic (alias local), offline"
        ))),
    }
}

/// How learned rules are kept, from `rules:`.
fn curation(settings: &Settings) -> crate::store::curate::Curation {
    let r = &settings.rules;
    crate::store::curate::Curation {
        review: r.review,
        scope: match r.scope {
            settings::RuleScope::Project => crate::store::Scope::Project,
            settings::RuleScope::Global => crate::store::Scope::Global,
        },
        budget: crate::store::render::Budget {
            lines: r.budget.lines,
            chars: r.budget.chars,
        },
        judge: r.dedup_judge,
        user_db: crate::store::user_db_path(&settings::process_env),
    }
}

fn framework(settings: &Settings) -> Framework {
    match settings.tests.framework {
        TestFramework::Pytest => Framework::Pytest,
        TestFramework::Auto => testing::detect(&settings.tests.command),
        TestFramework::None | TestFramework::Junit => Framework::Plain,
    }
}

fn private_files() -> Vec<String> {
    DEFAULT_PRIVATE_FILES
        .iter()
        .map(|s| s.to_string())
        .collect()
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
    let mut settings = load_settings(args.common.config.as_deref())?.settings;
    let mut over = overrides(&args.common);
    over.max_retries = args.max_retries;
    over.auto_retry = args.no_auto_retry.then_some(false);
    over.test_command = args.test_command.clone();
    settings.apply(&over)?;
    let repo = open_repo(&project_dir)?;
    let agent = claude_agent(&settings);
    agent.check().map_err(|e| Failure::usage(e.to_string()))?;
    let teacher = make_teacher(&settings)?;
    let rules_file = rules_file(&settings, &project_dir, &agent);
    repo.ensure_excluded(&format!("{}/", record::DIR_NAME))
        .map_err(|e| Failure::usage(e.to_string()))?;
    let record = Record::open(&project_dir).map_err(|e| Failure::usage(e.to_string()))?;
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
        framework: framework(&settings),
        tests_timeout: settings.tests.timeout,
    };
    let learner = Learner {
        teacher: teacher.as_deref().map_err(Clone::clone),
        rules_file,
        context_budget: settings.learning.context_budget,
        private_files: private_files(),
        prompt_name: settings
            .failure_prompts
            .get("test_failure")
            .cloned()
            .unwrap_or_else(|| "default".into()),
        curation: curation(&settings),
    };
    let mut human = HumanRenderer::new();
    let mut machine = JsonRenderer;
    let reporter: &mut dyn crate::events::Reporter = if json { &mut machine } else { &mut human };
    let summary = learning_loop::run(&plan, &agent, &learner, &repo, &record, reporter, &cancel)
        .map_err(|e| Failure {
            message: format!(
                "{e:#}\nyour work tree before the run is kept under refs/promptloop/runs/ \
                 (`git for-each-ref refs/promptloop/` lists the snapshots)"
            ),
            code: EXIT_FAILED,
        })?;
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
    let mut settings = load_settings(args.common.config.as_deref())?.settings;
    settings.apply(&overrides(&args.common))?;
    let agent = claude_agent(&settings);
    let record = Record::open(&project_dir).map_err(|e| Failure::usage(e.to_string()))?;
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
    let teacher = match make_teacher(&settings)? {
        Ok(t) => t,
        Err(why) => return Err(Failure::usage(why)),
    };
    let cancel = CancelToken::new();
    install_interrupt(&cancel);
    let learner = Learner {
        teacher: Ok(teacher.as_ref()),
        rules_file: rules_file(&settings, &project_dir, &agent),
        context_budget: settings.learning.context_budget,
        private_files: private_files(),
        prompt_name: settings
            .failure_prompts
            .get("test_failure")
            .cloned()
            .unwrap_or_else(|| "default".into()),
        curation: curation(&settings),
    };
    let mut human = HumanRenderer::new();
    let mut machine = JsonRenderer;
    let reporter: &mut dyn crate::events::Reporter = if json { &mut machine } else { &mut human };
    let mut still_pending = 0;
    for stored in pending {
        let mut emit = |e: crate::events::Event| reporter.report(&e);
        let lesson = learner
            .analyse(stored.context, stored.tries, &record, &mut emit, &cancel)
            .map_err(|e| Failure {
                message: format!("{e:#}"),
                code: EXIT_FAILED,
            })?;
        match lesson {
            Lesson::Learned(boxed) => {
                let (learned, stored) = *boxed;
                learner
                    .write(&learned, stored, &record, &mut emit)
                    .map_err(|e| Failure {
                        message: format!("{e:#}"),
                        code: EXIT_FAILED,
                    })?;
            }
            Lesson::Pending(_) => still_pending += 1,
        }
        if cancel.is_cancelled() {
            return Ok(EXIT_INTERRUPTED);
        }
    }
    Ok(if still_pending == 0 { 0 } else { EXIT_FAILED })
}

fn config_check(args: ConfigArgs) -> ExitCode {
    finish(config_check_inner(args))
}

fn config_check_inner(args: ConfigArgs) -> Result<u8, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("read the current directory: {e}")))?;
    let loaded = settings::load(args.config.as_deref(), &cwd, &settings::process_env)?;
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
