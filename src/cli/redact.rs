//! `promptloop redact`: shows exactly what would leave the machine, so a user can check the
//! redactor on their own files, logs and stored failures before trusting it.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;

use super::teachers;
use super::{Failure, finish, project_dir};
use crate::pattern::matches_any;
use crate::record::Record;
use crate::rules::RulesTargets;

const AFTER_HELP: &str = "\
Examples:
  promptloop redact .env.example            # a file (private files show as not sent)
  git diff | promptloop redact               # standard input
  promptloop redact --failure 20261124-2140  # the whole lesson a teacher would get
  promptloop redact config/settings.py --json

The redacted text goes to stdout, the count of what was removed to stderr. Secrets become
markers such as [REDACTED openai-key]. Add your own patterns under redaction.patterns and
private files under redaction.private_files in the config.";

/// Show what would be sent to a teacher: a file, stdin, or a stored failure, redacted.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct RedactArgs {
    /// The file to redact; `-` or nothing reads standard input.
    #[arg(value_name = "FILE", conflicts_with = "failure")]
    file: Option<PathBuf>,
    /// Show the lesson for a failure under .promptloop/failures/ (its id, or the start of it).
    #[arg(long, value_name = "ID")]
    failure: Option<String>,
    /// The project whose failures --failure reads.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (redaction.patterns, redaction.private_files, failure_prompts).
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print {text, removed, count} (or the lesson) as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `redact`.
pub(super) fn redact(args: RedactArgs) -> std::process::ExitCode {
    finish(redact_inner(args))
}

fn redact_inner(args: RedactArgs) -> Result<u8, Failure> {
    let loaded = super::load_settings(args.config.as_deref())?;
    let redactor = teachers::redactor(&loaded.settings)?;
    let private = teachers::private_files(&loaded.settings);
    let mut out = std::io::stdout().lock();
    if let Some(id) = &args.failure {
        return show_failure(&args, id, &loaded);
    }
    let path = args.file.as_ref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = path
        && matches_any(&path.to_string_lossy(), private.iter().map(String::as_str))
    {
        // Exactly what a diff of it would carry.
        let text = "[content not sent: private file]\n";
        if args.json {
            let value =
                serde_json::json!({"text": text, "private_file": true, "removed": {}, "count": 0});
            let _ = writeln!(out, "{value}");
        } else {
            let _ = write!(out, "{text}");
            eprintln!(
                "{} matches a private-file pattern: its content is never sent",
                path.display()
            );
        }
        return Ok(0);
    }
    let text = match path {
        Some(path) => std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| Failure::usage(format!("read {}: {e}", path.display())))?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::usage(format!("read standard input: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    let redacted = redactor.redact(&text);
    if args.json {
        let value = serde_json::json!({
            "text": redacted.text,
            "private_file": false,
            "removed": redacted.removed,
            "count": redacted.count(),
        });
        let _ = writeln!(out, "{value}");
    } else {
        let _ = write!(out, "{}", redacted.text);
        let _ = out.flush();
        eprintln!("promptloop redact: removed {}", redacted.summary());
    }
    Ok(0)
}

fn show_failure(
    args: &RedactArgs,
    id: &str,
    loaded: &crate::settings::Loaded,
) -> Result<u8, Failure> {
    let dir = project_dir(&args.project_dir)?;
    let record = Record::open_with(&dir, &loaded.settings.store)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let failures = record
        .failures()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let matching: Vec<_> = failures
        .iter()
        .filter(|f| f.context.id.starts_with(id))
        .collect();
    let stored = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(Failure::usage(format!(
                "no failure {id} in {}",
                record.dir().join("failures").display()
            )));
        }
        many => {
            return Err(Failure::usage(format!(
                "{id} matches {} failures; give more of the id",
                many.len()
            )));
        }
    };
    let agent = super::agents::make_agent(&loaded.settings);
    let default = super::agents::rules_targets(&loaded.settings, &dir, agent.as_ref());
    let rules = match &stored.rules_file {
        Some(file) => RulesTargets::new(&[PathBuf::from(file)], default.primary(), &dir),
        None => default,
    };
    let teaching = teachers::Teaching::new(loaded)?;
    let learner = teaching.learner(Err(String::new()), rules);
    let (lesson, redactions) = learner.lesson(&stored.context);
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "failure_id": stored.context.id,
            "failure_type": lesson.failure_type,
            "prompt": lesson.prompt_name,
            "system": lesson.system,
            "user": lesson.user,
            "redactions": redactions,
        });
        let _ = writeln!(out, "{value}");
    } else {
        let _ = writeln!(
            out,
            "# system prompt ({})\n\n{}\n\n# message\n\n{}",
            lesson.prompt_name, lesson.system, lesson.user
        );
        eprintln!("promptloop redact: {redactions} secret(s) removed from this failure");
    }
    Ok(0)
}
