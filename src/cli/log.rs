//! The log file (`logging.file`, the prototype's `logging.log_file`): a human-readable line
//! for everything a command does — what ran, each attempt, each teacher call with its
//! timing, warnings and errors — through `tracing`, at `logging.level`. Every line passes the
//! same redaction as what is sent to a teacher before it is written. The file is capped: one
//! that has grown past [`MAX_BYTES`] is rotated (`FILE.1` … `FILE.3`) when a command starts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::Level;

use crate::events::Event;
use crate::redact::Redactor;
use crate::settings::{LogLevel, LoggingSettings};

/// A log file past this size is rotated when a command starts.
pub(crate) const MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Rotated files kept beside the log (`FILE.1` is the newest).
pub(crate) const KEPT: u32 = 3;

/// Where the log goes for `project_dir`: `logging.file`, relative paths taken from the
/// project; `None` when no file is set.
pub(super) fn path_of(logging: &LoggingSettings, project_dir: &Path) -> Option<PathBuf> {
    let file = logging.file.as_ref()?;
    Some(if file.is_absolute() {
        file.clone()
    } else {
        project_dir.join(file)
    })
}

/// Opens the log (rotating a full one) and sends `tracing` to it at `level`, every line
/// redacted. Returns the path; a log that cannot be opened is an error for the caller to
/// report, and nothing is installed.
pub(super) fn init(path: &Path, level: LogLevel, redactor: Redactor) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    rotate(path)?;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let writer = RedactingWriter {
        file: Arc::new(Mutex::new(file)),
        redactor: Arc::new(redactor),
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(level_of(level))
        .with_ansi(false)
        .with_target(false)
        .finish();
    // A second command in one process (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// `logging.level` as a `tracing` level (`critical` logs errors, as Python's would).
fn level_of(level: LogLevel) -> Level {
    match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    }
}

/// Moves a full log aside: `FILE.2` → `FILE.3`, `FILE.1` → `FILE.2`, `FILE` → `FILE.1`.
pub(crate) fn rotate(path: &Path) -> io::Result<()> {
    let full = fs::metadata(path).is_ok_and(|m| m.len() >= MAX_BYTES);
    if !full {
        return Ok(());
    }
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..KEPT).rev() {
        let from = numbered(n);
        if from.exists() {
            fs::rename(&from, numbered(n + 1))?;
        }
    }
    fs::rename(path, numbered(1))
}

/// Writes each formatted line to the file after redaction.
#[derive(Clone)]
struct RedactingWriter {
    file: Arc<Mutex<File>>,
    redactor: Arc<Redactor>,
}

/// One record being formatted; written, redacted, when it is complete.
struct Line {
    buffer: Vec<u8>,
    target: RedactingWriter,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let clean = self.target.redactor.redact(&text).text;
        if let Ok(mut file) = self.target.file.lock() {
            // A log that cannot be written must not stop the command.
            let _ = file.write_all(clean.as_bytes());
            let _ = file.flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            buffer: Vec::new(),
            target: self.clone(),
        }
    }
}

/// Logs `event` as one line (a no-op without a log file).
pub(super) fn log_event(event: &Event) {
    match event {
        Event::RunStarted {
            run_id,
            task,
            project_dir,
            agent,
            teacher,
            rules_files,
            max_attempts,
            base_ref,
            ..
        } => tracing::info!(
            "run {run_id} started in {project_dir}: agent {agent}, teacher {teacher}, up to {max_attempts} attempts, rules to {}; work tree kept at {base_ref}; task: {task}",
            rules_files.join(", ")
        ),
        Event::AttemptStarted {
            attempt,
            max_attempts,
        } => tracing::info!("attempt {attempt}/{max_attempts} started"),
        Event::AgentStarted { attempt } => tracing::info!("attempt {attempt}: agent started"),
        Event::AgentFinished {
            attempt,
            outcome,
            changed_files,
        } => {
            tracing::info!(
                "attempt {attempt}: agent {} in {:.1}s{}{}; changed {} file(s): {}",
                outcome.status.describe(),
                outcome.duration.as_secs_f64(),
                outcome
                    .turns
                    .map(|t| format!(", {t} turns"))
                    .unwrap_or_default(),
                outcome
                    .cost_usd
                    .map(|c| format!(", ${c:.4}"))
                    .unwrap_or_default(),
                changed_files.len(),
                changed_files.join(", ")
            );
            if !outcome.stderr_tail.is_empty() {
                tracing::debug!("attempt {attempt}: agent stderr:\n{}", outcome.stderr_tail);
            }
        }
        Event::TestsStarted { attempt, command } => {
            tracing::info!("attempt {attempt}: tests started: {command}")
        }
        Event::TestsFinished {
            attempt,
            tests,
            failing,
        } => tracing::info!(
            "attempt {attempt}: tests {:?} ({}) in {:.1}s{}",
            tests.outcome,
            tests.exit,
            tests.duration.as_secs_f64(),
            if failing.is_empty() {
                String::new()
            } else {
                format!("; failing: {}", failing.join(", "))
            }
        ),
        Event::FailureCaptured {
            failure_id,
            failure_type,
            payload_chars,
            redactions,
            ..
        } => tracing::info!(
            "failure {failure_id} ({failure_type}) kept; {payload_chars} characters for the teacher, {redactions} secret(s) redacted"
        ),
        Event::TeacherStarted {
            failure_id,
            teacher,
        } => tracing::info!("teacher {teacher} asked about failure {failure_id}"),
        Event::RuleLearned {
            failure_id,
            rule,
            files,
            rule_id,
            action,
            note,
            ..
        } => tracing::info!(
            "rule {rule_id} {action} from failure {failure_id} ({}){}: {}",
            files.join(", "),
            note.as_ref().map(|n| format!("; {n}")).unwrap_or_default(),
            rule.rule
        ),
        Event::FailureRecurred {
            failure_id,
            original_failure_id,
            count,
            ..
        } => tracing::warn!(
            "failure {failure_id} repeats {original_failure_id}, which a rule was learned from ({count} time(s) now)"
        ),
        Event::ReviewFinished {
            attempt,
            findings,
            accepted,
            ..
        } => tracing::info!(
            "attempt {attempt}: semantic review found {} problem(s), {accepted} confident enough to learn from",
            findings.len()
        ),
        Event::ReviewFailed { attempt, reason } => {
            tracing::warn!("attempt {attempt}: semantic review failed: {reason}")
        }
        Event::FailurePending { failure_id, reason } => {
            tracing::warn!("failure {failure_id} kept as pending: {reason}")
        }
        Event::AttemptReverted {
            attempt, kept_ref, ..
        } => tracing::info!("attempt {attempt}: changes undone, kept at {kept_ref}"),
        Event::Warning { message } => tracing::warn!("{message}"),
        Event::RunFinished {
            outcome,
            attempts,
            rules_learned,
            pending,
            cost_usd,
            duration,
            message,
            ..
        } => {
            let line = format!(
                "run finished: {outcome:?} after {attempts} attempt(s) in {:.1}s, {rules_learned} rule(s) learned, {pending} pending, agent cost ${cost_usd:.4}: {message}",
                duration.as_secs_f64()
            );
            if *outcome == crate::events::RunOutcome::Error {
                tracing::error!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
    }
}
