//! `promptloop capture`: run any test command (or read a CI job's JUnit report) and print
//! the structured failures; `--learn` sends them through the teacher.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::render::Output;
use super::{
    CommonArgs, EXIT_FAILED, EXIT_INTERRUPTED, Failure, agents, finish, framework,
    install_interrupt, overrides, project_dir, teachers,
};
use crate::events::{Event, Reporter};
use crate::failure::FailureContext;
use crate::learn::Lesson;
use crate::process::CancelToken;
use crate::record::{self, Record};
use crate::settings::{self, Loaded};
use crate::testing::{self, Framework, TestOutcome, TestReport, TestRun, TestSpec, junit};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  promptloop capture -- pytest -q                 # run, print the failing tests
  promptloop capture --json -- npm test           # the same as one JSON object
  promptloop capture --framework go -- make check # say which runner `make` starts
  promptloop capture --junit 'target/surefire-reports/*.xml' --learn
                                                  # learn from a CI job's report

The runner is detected from the command, the package.json script it runs and the project's
files; --framework pytest|jest|vitest|go|cargo|nextest|junit|none overrides. The report is
asked for through environment variables (PYTEST_ADDOPTS, GOFLAGS) or flags appended to a plain
jest/vitest invocation, written to a private temporary folder; what the command tests is not
changed. A single argument after -- is run as a shell command line.

Exit codes: 0 no failures, 1 failures found (learned or not), 2 bad usage or config,
130 interrupted.";

/// Arguments of `promptloop capture`.
#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// The test command, after `--` (one argument is run as a shell command line).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Read JUnit XML written by another job instead of running a command (a path or a
    /// glob like 'build/test-results/**/*.xml'; repeatable).
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    junit: Vec<String>,
    /// The runner: pytest, jest, vitest, go, cargo, nextest, junit, none (default: detected).
    #[arg(long, value_name = "NAME")]
    framework: Option<String>,
    /// JUnit XML the command writes, for --framework junit (default: the usual places).
    #[arg(long, value_name = "GLOB")]
    report: Option<String>,
    /// Send the failures to the teacher and write the rule (kept pending if it cannot answer).
    #[arg(long)]
    learn: bool,
    /// What was being worked on, for the teacher (default: "the change in the work tree").
    #[arg(long, value_name = "TEXT")]
    task: Option<String>,
    /// Time limit for the command in seconds (default: tests.timeout).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Runs `promptloop capture`.
pub(crate) fn capture(args: CaptureArgs) -> std::process::ExitCode {
    finish(capture_inner(args))
}

fn capture_inner(args: CaptureArgs) -> Result<u8, Failure> {
    let project_dir = project_dir(&args.common.project_dir)?;
    let mut loaded = super::load_settings(args.common.config.as_deref())?;
    loaded.settings.apply(&overrides(&args.common))?;
    let settings = &loaded.settings;
    super::start_log(settings, &project_dir, "capture")?;
    let cancel = CancelToken::new();
    install_interrupt(&cancel);
    let run = if !args.junit.is_empty() {
        let report = junit::collect(&project_dir, &args.junit, None).ok_or_else(|| {
            Failure::usage(format!(
                "no readable JUnit report matches {} in {}",
                args.junit.join(", "),
                project_dir.display()
            ))
        })?;
        Captured::from_report(report, args.junit.join(" "))
    } else {
        if args.command.is_empty() {
            return Err(Failure::usage(
                "give the test command after `--` (promptloop capture -- pytest -q), or a \
                 report with --junit FILE",
            ));
        }
        let command = command_line(&args.command);
        let chosen = match &args.framework {
            Some(name) if name == "auto" => testing::detect_in(&command, &project_dir),
            Some(name) => Framework::from_name(name).ok_or_else(|| {
                Failure::usage(format!(
                    "--framework: unknown value {name:?}, expected one of: auto, {}",
                    Framework::ALL
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
            None => match testing::detect_in(&command, &project_dir) {
                Framework::Plain => framework(settings, &command, &project_dir),
                found => found,
            },
        };
        let spec = TestSpec {
            command,
            framework: chosen,
            timeout: args
                .timeout
                .map_or(settings.tests.timeout, Duration::from_secs),
            junit_report: args.report.clone().or(settings.tests.report.clone()),
        };
        let run = testing::run_tests(&spec, &project_dir, &cancel).map_err(|e| Failure {
            message: format!("{e:#}"),
            code: EXIT_FAILED,
        })?;
        Captured::from_run(run)
    };
    if run.outcome == TestOutcome::Interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    print_capture(&run, args.common.json);
    let failed = run.outcome != TestOutcome::Passed;
    if !(args.learn && failed) {
        return Ok(if failed { EXIT_FAILED } else { 0 });
    }
    let failure = failure_context(
        &run,
        args.task.as_deref(),
        &project_dir,
        None,
        &format!("{}-capture", record::new_id()),
    );
    let mut output = Output::new(args.common.json);
    let reporter: &mut dyn Reporter = &mut output;
    learn_one(&loaded, &project_dir, failure, reporter, &cancel)?;
    Ok(if cancel.is_cancelled() {
        EXIT_INTERRUPTED
    } else {
        EXIT_FAILED
    })
}

/// What a capture found, from a command or from report files.
pub(crate) struct Captured {
    /// The command (or the report paths).
    pub command: String,
    /// The runner.
    pub framework: Framework,
    /// Passed, failed, …
    pub outcome: TestOutcome,
    /// Exit code, for commands.
    pub exit: Option<String>,
    /// The parsed report.
    pub report: Option<TestReport>,
    /// The closing lines of the output, for the teacher.
    pub summary: String,
    /// Failing ids (from the report, or from pytest's summary lines).
    pub failing: Vec<String>,
}

impl Captured {
    pub(crate) fn from_run(run: TestRun) -> Captured {
        Captured {
            failing: run.failing_ids(),
            summary: run.summary(),
            command: run.command,
            framework: run.framework,
            outcome: run.outcome,
            exit: Some(run.exit.to_string()),
            report: run.report,
        }
    }

    fn from_report(report: TestReport, paths: String) -> Captured {
        let failed = report.failed + report.errors > 0 || !report.failures.is_empty();
        Captured {
            failing: report.failures.iter().map(|f| f.id.clone()).collect(),
            summary: format!(
                "{} tests: {} passed, {} failed, {} errors, {} skipped",
                report.total, report.passed, report.failed, report.errors, report.skipped
            ),
            command: paths,
            framework: Framework::Junit,
            outcome: if failed {
                TestOutcome::Failed
            } else {
                TestOutcome::Passed
            },
            exit: None,
            report: Some(report),
        }
    }
}

/// Arguments as one shell command line: a single argument is taken as written.
fn command_line(args: &[String]) -> String {
    if args.len() == 1 {
        return args[0].clone();
    }
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_capture(run: &Captured, json: bool) {
    let mut out = std::io::stdout().lock();
    let fingerprints = |report: &TestReport| -> Vec<String> {
        report
            .failures
            .iter()
            .map(|f| crate::fingerprint::of_test("test_failure", f))
            .collect()
    };
    if json {
        let failures: Vec<serde_json::Value> = run
            .report
            .as_ref()
            .map(|r| {
                r.failures
                    .iter()
                    .zip(fingerprints(r))
                    .map(|(f, fp)| {
                        let mut v = serde_json::to_value(f).unwrap_or_default();
                        v["fingerprint"] = json!(fp);
                        v
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value = json!({
            "type": "capture.finished",
            "command": run.command,
            "framework": run.framework.name(),
            "outcome": run.outcome,
            "exit": run.exit,
            "counts": run.report.as_ref().map(|r| json!({
                "total": r.total, "passed": r.passed, "failed": r.failed,
                "errors": r.errors, "skipped": r.skipped,
            })),
            "failures": failures,
            "failing": run.failing,
        });
        let _ = writeln!(out, "{value}");
        return;
    }
    let counts = run
        .report
        .as_ref()
        .map(|r| {
            format!(
                " — {} tests: {} passed, {} failed, {} errors, {} skipped",
                r.total, r.passed, r.failed, r.errors, r.skipped
            )
        })
        .unwrap_or_else(|| " — no structured report; judged by the exit code".into());
    let what = match run.outcome {
        TestOutcome::Passed => "passed",
        TestOutcome::Failed => "failed",
        TestOutcome::NoTests => "found no tests",
        TestOutcome::TimedOut => "timed out",
        TestOutcome::Interrupted => "interrupted",
    };
    let _ = writeln!(
        out,
        "{} {what} ({}){counts}",
        run.command,
        run.framework.name()
    );
    match &run.report {
        Some(report) => {
            for (f, fp) in report.failures.iter().zip(fingerprints(report)) {
                let place = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!(" ({file}:{line})"),
                    (Some(file), None) => format!(" ({file})"),
                    _ => String::new(),
                };
                let _ = writeln!(out, "\n✗ {}{place}  [{fp}]", f.id);
                let _ = writeln!(out, "  {}", f.message.lines().next().unwrap_or(""));
                for line in f.evidence.lines().take(12) {
                    let _ = writeln!(out, "    {line}");
                }
                if let Some(captured) = &f.captured_output {
                    let _ = writeln!(out, "  captured output:");
                    for line in captured.lines().take(6) {
                        let _ = writeln!(out, "    | {line}");
                    }
                }
            }
        }
        None if run.outcome != TestOutcome::Passed => {
            for id in &run.failing {
                let _ = writeln!(out, "✗ {id}");
            }
            let _ = writeln!(out, "\n{}", run.summary);
        }
        None => {}
    }
}

/// The failure for the teacher from a capture outside `promptloop run`: the work tree's
/// change against HEAD stands in for the agent's diff.
pub(crate) fn failure_context(
    run: &Captured,
    task: Option<&str>,
    project_dir: &Path,
    agent_message: Option<String>,
    id: &str,
) -> FailureContext {
    FailureContext {
        id: id.to_string(),
        failure_type: "test_failure".into(),
        source: match run.framework {
            Framework::Plain => "tests".into(),
            other => other.name().into(),
        },
        task: task
            .map(str::to_string)
            .unwrap_or_else(|| "the change in the work tree (captured outside a run)".into()),
        project_dir: project_dir.display().to_string(),
        run_id: None,
        attempt: None,
        captured_at: chrono::Local::now().to_rfc3339(),
        test_command: Some(run.command.clone()),
        tests: run
            .report
            .as_ref()
            .map(|r| r.failures.clone())
            .unwrap_or_default(),
        failing_ids: run.failing.clone(),
        test_summary: match run.outcome {
            TestOutcome::TimedOut => {
                format!("The tests were killed at their timeout.\n{}", run.summary)
            }
            _ => run.summary.clone(),
        },
        diff: working_diff(project_dir, id).unwrap_or_default(),
        agent_status: None,
        agent_message,
        description: None,
        context: None,
    }
}

/// The uncommitted change (tracked and untracked files) against HEAD, or `None` outside
/// git. The snapshot ref is removed again.
pub(crate) fn working_diff(project_dir: &Path, id: &str) -> Option<String> {
    let repo = crate::git::Repo::open(project_dir).ok()?;
    let head = repo.resolve_snapshot("HEAD").ok()??;
    let name = format!("refs/promptloop/capture/{id}");
    let now = repo
        .snapshot(&name, "promptloop: work tree at capture")
        .ok()?;
    let diff = repo.diff(&head, &now).ok();
    let _ = repo.delete_ref(&name);
    diff
}

/// Sends one failure through the teacher (or keeps it pending), printing events.
pub(crate) fn learn_one(
    loaded: &Loaded,
    project_dir: &Path,
    failure: FailureContext,
    reporter: &mut dyn Reporter,
    cancel: &CancelToken,
) -> Result<bool, Failure> {
    let settings = &loaded.settings;
    let teaching = teachers::Teaching::new(loaded)?;
    let teacher = teachers::make_teacher(settings)?;
    let agent = agents::make_agent(settings);
    if let Ok(repo) = crate::git::Repo::open(project_dir) {
        let _ = repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME));
    }
    let record = Record::open_with(project_dir, &settings.store)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let learner = teaching.learner(
        teacher.as_deref().map_err(Clone::clone),
        agents::rules_targets(settings, project_dir, agent.as_ref()),
    );
    let mut emit = |e: Event| reporter.report(&e);
    let fail = |e: crate::learn::LearnError| Failure {
        message: format!("{e:#}"),
        code: EXIT_FAILED,
    };
    match learner
        .analyse(failure, 0, &record, &mut emit, cancel)
        .map_err(fail)?
    {
        Lesson::Learned(boxed) => {
            let (learned, stored) = *boxed;
            learner
                .write(&learned, stored, &record, &mut emit)
                .map_err(fail)?;
            Ok(true)
        }
        Lesson::Pending(_) => Ok(false),
    }
}

/// Settings discovered from the project directory rather than the current one (hooks run
/// wherever the agent runs them).
pub(crate) fn settings_for(config: Option<&Path>, project_dir: &Path) -> Result<Loaded, Failure> {
    let loaded = settings::load(config, project_dir, &settings::process_env)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded)
}

/// A path made absolute against the current directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_only_what_needs_it() {
        assert_eq!(command_line(&["npm test && x".into()]), "npm test && x");
        assert_eq!(
            command_line(&["pytest".into(), "-k".into(), "a or b".into()]),
            "pytest -k 'a or b'"
        );
    }
}
