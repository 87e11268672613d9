//! Running the project's tests and reading what failed into one [`TestReport`].

pub mod junit;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{self, CancelToken, Exit, ProcessSpec, SpawnError, Stop};

/// Which runner's report to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    /// pytest: a JUnit XML report is requested through `PYTEST_ADDOPTS`.
    Pytest,
    /// Judge by exit code and raw output only.
    Plain,
}

/// How the tests ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// Everything passed.
    Passed,
    /// Some tests failed or errored.
    Failed,
    /// The runner found no tests: the set-up is wrong, not the code.
    NoTests,
    /// Killed at `tests.timeout`.
    TimedOut,
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// One failing or erroring test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestFailure {
    /// The runner's id, e.g. `tests/test_calc.py::TestX::test_y`.
    pub id: String,
    /// `failure` (an assertion) or `error` (set-up, crash).
    pub kind: String,
    /// Source file, where known.
    pub file: Option<String>,
    /// Line, where known.
    pub line: Option<u64>,
    /// The runner's one-line message.
    pub message: String,
    /// The assertion, error and location lines, trimmed of framework noise.
    pub evidence: String,
    /// Output captured for this test, where the runner kept it.
    pub captured_output: Option<String>,
}

/// Structured results, where the runner wrote a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestReport {
    /// Tests run.
    pub total: u64,
    /// Tests passed.
    pub passed: u64,
    /// Tests failed (assertions).
    pub failed: u64,
    /// Tests errored (set-up, crashes).
    pub errors: u64,
    /// Tests skipped.
    pub skipped: u64,
    /// Every failing or erroring test.
    pub failures: Vec<TestFailure>,
}

/// One run of the test command.
#[derive(Clone, Debug, Serialize)]
pub struct TestRun {
    /// The command as configured.
    pub command: String,
    /// How it ended.
    pub outcome: TestOutcome,
    /// Exit code or signal.
    #[serde(serialize_with = "ser_exit")]
    pub exit: Exit,
    /// Wall-clock time.
    #[serde(serialize_with = "crate::events::ser_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// The parsed report, where there was one.
    pub report: Option<TestReport>,
    /// Standard output then standard error (head and tail kept when huge).
    #[serde(skip)]
    pub output: String,
}

fn ser_exit<S: serde::Serializer>(exit: &Exit, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&exit.to_string())
}

impl TestRun {
    /// The failing test ids, from the report, or from pytest's summary lines.
    pub fn failing_ids(&self) -> Vec<String> {
        match &self.report {
            Some(r) if !r.failures.is_empty() => r.failures.iter().map(|f| f.id.clone()).collect(),
            _ => summary_ids(&self.output),
        }
    }

    /// The closing part of the raw output: pytest's short summary, or the last lines.
    pub fn summary(&self) -> String {
        summary_of(&self.output)
    }
}

/// The test command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("run the tests: {0}")]
pub struct TestError(#[from] SpawnError);

/// Runs `command` through the shell in `project_dir`.
pub fn run_tests(
    command: &str,
    framework: Framework,
    project_dir: &Path,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<TestRun, TestError> {
    // A private place for the report, outside the project, removed afterwards.
    let report_dir = tempfile::Builder::new()
        .prefix("promptloop-tests-")
        .tempdir()
        .map_err(|source| SpawnError::Other {
            program: "sh".into(),
            source,
        })?;
    let report_path = report_dir.path().join("report.xml");
    let mut spec = ProcessSpec::shell(command, project_dir, timeout);
    if framework == Framework::Pytest {
        // PYTEST_ADDOPTS reaches pytest however the command wraps it (make, tox, `cd x &&`),
        // without changing what the user's command tests. xunit1 keeps file and line.
        let ours = format!(
            "--junitxml={} -o junit_family=xunit1 -o junit_logging=all",
            shell_quote(&report_path.display().to_string())
        );
        let addopts = match std::env::var("PYTEST_ADDOPTS") {
            Ok(user) if !user.trim().is_empty() => format!("{user} {ours}"),
            _ => ours,
        };
        spec = spec.env("PYTEST_ADDOPTS", addopts);
    }
    let out = process::run(&spec, cancel)?;
    let mut output = out.stdout;
    if !out.stderr.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&out.stderr);
    }
    let report = match std::fs::File::open(&report_path) {
        Ok(file) => junit::parse(std::io::BufReader::new(file)).ok(),
        Err(_) => None,
    };
    let outcome = match out.stop {
        Stop::Cancelled => TestOutcome::Interrupted,
        Stop::TimedOut => TestOutcome::TimedOut,
        Stop::Exited => {
            let report_clean = report
                .as_ref()
                .is_none_or(|r| r.failed == 0 && r.errors == 0);
            if framework == Framework::Pytest && out.exit == Exit::Code(5) {
                TestOutcome::NoTests
            } else if out.exit.success() && report_clean {
                TestOutcome::Passed
            } else {
                TestOutcome::Failed
            }
        }
    };
    Ok(TestRun {
        command: command.to_string(),
        outcome,
        exit: out.exit,
        duration: out.duration,
        report,
        output,
    })
}

/// Guesses the framework from the command when the config says `auto`.
pub fn detect(command: &str) -> Framework {
    let words = command.split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|');
    if words
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .any(|w| w == "pytest" || w == "py.test" || w == "tox" || w == "nox")
        || command.contains("-m pytest")
    {
        Framework::Pytest
    } else {
        Framework::Plain
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// pytest's "short test summary info" to the end, or the last 40 lines of any output.
fn summary_of(output: &str) -> String {
    if let Some(pos) = output.rfind("short test summary info") {
        let start = output[..pos].rfind('\n').map_or(0, |i| i + 1);
        return output[start..].trim_end().to_string();
    }
    crate::agent::tail_lines(output.trim_end(), 40)
}

/// Test ids from pytest's summary lines (`FAILED id - message`, `ERROR id - message`).
fn summary_ids(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("FAILED ")
                .or_else(|| line.strip_prefix("ERROR "))?;
            let id = rest.split(" - ").next()?.trim();
            (!id.is_empty()).then(|| id.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_pytest_in_wrapped_commands() {
        assert_eq!(detect("pytest tests/ -v --tb=short"), Framework::Pytest);
        assert_eq!(detect("cd app && python -m pytest -q"), Framework::Pytest);
        assert_eq!(detect(".venv/bin/pytest"), Framework::Pytest);
        assert_eq!(detect("cargo test"), Framework::Plain);
        assert_eq!(detect("npm test"), Framework::Plain);
    }

    #[test]
    fn summary_keeps_pytest_short_summary() {
        let out = "lots\nof\nnoise\n=== short test summary info ===\nFAILED a.py::t - assert 0 is None\nERROR b.py::u - boom\n=== 1 failed, 1 error in 0.1s ===\n";
        let s = summary_of(out);
        assert!(s.starts_with("=== short test summary info"));
        assert!(s.ends_with("in 0.1s ==="));
        assert_eq!(summary_ids(out), ["a.py::t", "b.py::u"]);
    }

    #[test]
    fn plain_command_exit_code_decides() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancelToken::new();
        let pass = run_tests(
            "echo 'it works'",
            Framework::Plain,
            dir.path(),
            Duration::from_secs(10),
            &cancel,
        )
        .unwrap();
        assert_eq!(pass.outcome, TestOutcome::Passed);
        let fail = run_tests(
            "echo 'a \"quoted\" arg' && exit 1",
            Framework::Plain,
            dir.path(),
            Duration::from_secs(10),
            &cancel,
        )
        .unwrap();
        assert_eq!(fail.outcome, TestOutcome::Failed);
        assert!(fail.output.contains("a \"quoted\" arg"));
    }
}
