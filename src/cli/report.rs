//! `promptloop report-failure`: a person reports a mistake the tests cannot catch (a wrong
//! plan, a duplicated workflow, a leaked credential); the teacher for its type turns it into a
//! rule, written into the project's instruction file or the global `~/.claude/CLAUDE.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::render::Output;
use super::teachers::{self, MaybeTeacher};
use super::{EXIT_FAILED, EXIT_INTERRUPTED, Failure, finish, install_interrupt, project_dir};
use crate::events::{Event, Reporter};
use crate::failure::FailureContext;
use crate::git::Repo;
use crate::learn::Lesson;
use crate::process::CancelToken;
use crate::record::{self, Record};
use crate::rules::RulesTargets;
use crate::settings::{KNOWN_FAILURE_TYPES, Overrides};

/// The failure types a person can report (`--help` below says what each means).
pub(super) const MANUAL_TYPES: &[&str] = &[
    "planning_error",
    "integration_error",
    "workflow_error",
    "architecture_error",
    "scope_error",
    "config_error",
    "other",
];

/// What each manual type means, as the list in `--help` says it.
pub(super) const TYPE_HELP: &[(&str, &str)] = &[
    (
        "planning_error",
        "wrong approach, misunderstood requirements",
    ),
    (
        "integration_error",
        "missed existing infrastructure, created duplicates",
    ),
    ("workflow_error", "n8n / CI / pipeline design issues"),
    ("architecture_error", "wrong design patterns or layers"),
    ("scope_error", "over- or under-scoped solution"),
    ("config_error", "configuration or credential issues"),
    ("other", "anything else"),
];

const AFTER_HELP: &str = "\
Failure types:
  planning_error      wrong approach, misunderstood requirements
  integration_error   missed existing infrastructure, created duplicates
  workflow_error      n8n / CI / pipeline design issues
  architecture_error  wrong design patterns or layers
  scope_error         over- or under-scoped solution
  config_error        configuration or credential issues
  other               anything else

Examples:
  promptloop report-failure -f planning_error \\
    -D \"Created new infrastructure instead of extending existing\" \\
    -C \"Should have checked for existing systems first\" \\
    -T \"Integrate new feature into codebase\"
  git log -p -1 | promptloop report-failure -f scope_error -D \"Reformatted 40 files\" --context-file -
  promptloop report-failure -f config_error --description-file notes.md --scope global

The description and context are redacted before they are sent (see `promptloop redact`).
The rule goes to the project's CLAUDE.md (--project-dir, default: the current directory),
or with --scope global to ~/.claude/CLAUDE.md. If the teacher cannot be reached the report
is kept and `promptloop learn` completes it later.

Exit codes: 0 rule written (or already known), 1 kept as pending, 2 bad usage or config,
130 interrupted.";

/// Where the rule goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Scope {
    /// The project's instruction file (CLAUDE.md in --project-dir).
    Project,
    /// Your global ~/.claude/CLAUDE.md, read in every project.
    Global,
    /// Every project of the team (needs a team store: store.url); the project's file.
    Team,
}

/// Report a mistake the tests did not catch, and learn a rule from it.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct ReportArgs {
    /// The kind of mistake (see the list below).
    #[arg(short = 'f', long, value_name = "TYPE")]
    failure_type: String,
    /// What went wrong, in your words.
    #[arg(
        short = 'D',
        long,
        value_name = "TEXT",
        required_unless_present = "description_file",
        conflicts_with = "description_file"
    )]
    description: Option<String>,
    /// Read the description from a file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    description_file: Option<PathBuf>,
    /// What the agent should have done or known: the context a teacher needs.
    #[arg(
        short = 'C',
        long,
        value_name = "TEXT",
        conflicts_with = "context_file"
    )]
    context: Option<String>,
    /// Read the context from a file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    context_file: Option<PathBuf>,
    /// The task the agent was working on.
    #[arg(short = 'T', long, value_name = "TEXT")]
    task: Option<String>,
    /// The teacher: auto, anthropic (alias local), openai, webhook, claude-cli, offline
    /// (overrides teacher.mode).
    #[arg(short = 't', long, value_name = "MODE")]
    teacher: Option<String>,
    /// The config file (default: ./promptloop.yaml, then ~/.config/promptloop/config.yaml).
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The project the mistake happened in.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The instruction file the rule goes to (overrides --scope and rules.file).
    #[arg(long, value_name = "FILE")]
    rules_file: Option<PathBuf>,
    /// project: the project's CLAUDE.md; global: ~/.claude/CLAUDE.md; team: the project's
    /// CLAUDE.md, and every project's that uses the team store.
    #[arg(long, value_enum, default_value = "project")]
    scope: Scope,
    /// Print one JSON object per line for each event, for scripts.
    #[arg(long)]
    json: bool,
}

/// Runs `report-failure`.
pub(super) fn report_failure(args: ReportArgs) -> std::process::ExitCode {
    let json = args.json;
    finish(report_inner(args, json))
}

/// `planning_error`, also written `planning-error`, `Planning_Error` or `planning`.
pub(super) fn failure_type(given: &str) -> Result<&'static str, Failure> {
    let norm = given.trim().to_ascii_lowercase().replace('-', "_");
    if norm == "test_failure" {
        return Err(Failure::usage(
            "test failures are captured by `promptloop run`; report-failure takes the other \
             types: planning_error, integration_error, workflow_error, architecture_error, \
             scope_error, config_error, other",
        ));
    }
    MANUAL_TYPES
        .iter()
        .copied()
        .find(|name| *name == norm || name.strip_suffix("_error") == Some(norm.as_str()))
        .ok_or_else(|| {
            Failure::usage(format!(
                "unknown failure type `{given}`; valid types: {}",
                MANUAL_TYPES.join(", ")
            ))
        })
}

/// Text from a flag, or a file, or standard input for `-`.
fn text_of(flag: Option<&str>, file: Option<&Path>, what: &str) -> Result<Option<String>, Failure> {
    let text = match (flag, file) {
        (Some(text), _) => text.to_string(),
        (None, Some(path)) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("read the {what} from standard input: {e}")))?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("read the {what} from {}: {e}", path.display())))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(text))
}

fn home() -> Result<PathBuf, Failure> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Failure::usage("HOME is not set, so ~/.claude/CLAUDE.md cannot be found"))
}

fn report_inner(args: ReportArgs, json: bool) -> Result<u8, Failure> {
    let kind = failure_type(&args.failure_type)?;
    debug_assert!(KNOWN_FAILURE_TYPES.contains(&kind));
    if args.description_file.as_deref() == Some(Path::new("-"))
        && args.context_file.as_deref() == Some(Path::new("-"))
    {
        return Err(Failure::usage(
            "only one of --description-file and --context-file can read standard input",
        ));
    }
    let description = text_of(
        args.description.as_deref(),
        args.description_file.as_deref(),
        "description",
    )?
    .unwrap_or_default();
    if description.trim().is_empty() {
        return Err(Failure::usage(
            "the description is empty; say what went wrong (-D TEXT or --description-file FILE)",
        ));
    }
    let context = text_of(
        args.context.as_deref(),
        args.context_file.as_deref(),
        "context",
    )?
    .filter(|c| !c.trim().is_empty());
    let task = args
        .task
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "(not stated)".to_string());

    let project_dir = project_dir(&args.project_dir)?;
    let mut loaded = super::load_settings(args.config.as_deref())?;
    loaded.settings.apply(&Overrides {
        teacher_mode: args.teacher.clone(),
        rules_file: args.rules_file.clone(),
        ..Overrides::default()
    })?;
    let teaching = teachers::Teaching::new(&loaded)?;
    let settings = &loaded.settings;
    super::start_log(settings, &project_dir, "report-failure")?;

    // A project is a git work tree; its record and its instruction file live there.
    let repo = Repo::open(&project_dir).ok();
    let agent = super::agents::make_agent(settings);
    let rules = if args.rules_file.is_some() {
        super::agents::rules_targets(settings, &project_dir, agent.as_ref())
    } else if args.scope == Scope::Global {
        let global = home()?.join(".claude").join("CLAUDE.md");
        RulesTargets::new(std::slice::from_ref(&global), &global, &project_dir)
    } else if repo.is_some() || settings.rules.file.is_some() {
        super::agents::rules_targets(settings, &project_dir, agent.as_ref())
    } else {
        return Err(Failure::usage(format!(
            "{} is not a project (no git work tree): pass --project-dir DIR, or --scope global \
             to write the rule into ~/.claude/CLAUDE.md",
            project_dir.display()
        )));
    };
    let record_dir = match &repo {
        Some(repo) => {
            repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
                .map_err(|e| Failure::usage(e.to_string()))?;
            project_dir.clone()
        }
        // Reports outside a project are kept in ~/.promptloop/.
        None => home()?,
    };
    let record = Record::open_with(&record_dir, &settings.store)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let teacher: MaybeTeacher = teachers::make_teacher(settings)?;

    let failure = manual_failure(kind, description, context, task, &project_dir);
    let mut learner = teaching.learner(teacher.as_deref().map_err(Clone::clone), rules);
    if args.scope == Scope::Team {
        if !crate::store::team_store_set(&settings.store, &crate::settings::process_env) {
            return Err(Failure::usage(
                "--scope team needs a team store: set store.url (or PROMPTLOOP_STORE_URL) to a \
                 postgres:// URL",
            ));
        }
        learner.curation.scope = crate::store::Scope::Team;
    }
    let cancel = CancelToken::new();
    install_interrupt(&cancel);
    super::store_notices(json);
    let mut output = Output::new(json);
    let reporter: &mut dyn Reporter = &mut output;
    let mut emit = |e: Event| reporter.report(&e);
    let failed = |e: crate::learn::LearnError| Failure {
        message: format!("{e:#}"),
        code: EXIT_FAILED,
    };
    match learner
        .analyse(failure, 0, &record, &mut emit, &cancel)
        .map_err(failed)?
    {
        Lesson::Learned(boxed) => {
            let (learned, stored) = *boxed;
            learner
                .write(&learned, stored, &record, &mut emit)
                .map_err(failed)?;
            Ok(0)
        }
        Lesson::Pending(stored) => {
            if cancel.is_cancelled() {
                return Ok(EXIT_INTERRUPTED);
            }
            if !json {
                let dir = if repo.is_some() {
                    String::new()
                } else {
                    format!(" -d {}", record_dir.display())
                };
                eprintln!(
                    "the report is kept as {} in {}; `promptloop learn{dir}` completes it once a \
                     teacher answers",
                    stored.context.id,
                    record.dir().join("failures").display()
                );
            }
            Ok(EXIT_FAILED)
        }
    }
}

/// A mistake a person reports, as a failure for the teacher (the `task` is "(not stated)"
/// when they gave none).
pub(super) fn manual_failure(
    kind: &str,
    description: String,
    context: Option<String>,
    task: String,
    project_dir: &Path,
) -> FailureContext {
    FailureContext::manual(
        format!("{}-{kind}", record::new_id()),
        kind,
        task,
        project_dir,
        description,
        context,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_normalised_and_unknown_ones_list_the_valid() {
        assert_eq!(failure_type("planning_error").ok(), Some("planning_error"));
        assert_eq!(failure_type("Planning-Error").ok(), Some("planning_error"));
        assert_eq!(failure_type("scope").ok(), Some("scope_error"));
        assert_eq!(failure_type("other").ok(), Some("other"));
        let e = failure_type("style_error").err().unwrap();
        assert!(e.message.contains("unknown failure type `style_error`"));
        for name in MANUAL_TYPES {
            assert!(e.message.contains(name), "{}", e.message);
            assert!(KNOWN_FAILURE_TYPES.contains(name));
        }
        assert!(failure_type("test_failure").is_err());
    }

    #[test]
    fn every_type_has_the_help_line_of_the_list() {
        for name in MANUAL_TYPES {
            let (_, help) = TYPE_HELP.iter().find(|(n, _)| n == name).unwrap();
            assert!(
                AFTER_HELP.contains(&format!("{name:<20}{help}")),
                "{name}: {help}"
            );
        }
    }
}
