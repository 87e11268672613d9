//! Running the project's tests and reading what failed into one [`TestReport`].

pub mod cargo;
mod detect;
pub mod gotest;
pub mod js;
pub mod junit;
mod text;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::process::{self, CancelToken, Exit, ProcessSpec, SpawnError, Stop};

/// Which runner's report to ask for, and how to read its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// pytest: a JUnit XML report is requested through `PYTEST_ADDOPTS`.
    Pytest,
    /// Jest: a JSON report (`--json --outputFile`) where the command can take flags,
    /// else its human output.
    Jest,
    /// Vitest: a JSON report (`--reporter=json`) where the command can take flags, else its
    /// human output.
    Vitest,
    /// `go test`: `GOFLAGS=-json` turns its output into an event stream.
    Go,
    /// `cargo test`: libtest's human output.
    Cargo,
    /// `cargo nextest run`: its human output.
    Nextest,
    /// Any tool that writes JUnit XML files (`tests.report` says where).
    Junit,
    /// Judge by exit code and raw output only.
    Plain,
}

impl Framework {
    /// Every framework, in the order help texts list them.
    pub const ALL: &'static [Framework] = &[
        Framework::Pytest,
        Framework::Jest,
        Framework::Vitest,
        Framework::Go,
        Framework::Cargo,
        Framework::Nextest,
        Framework::Junit,
        Framework::Plain,
    ];

    /// The name used in settings, flags and records.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Pytest => "pytest",
            Framework::Jest => "jest",
            Framework::Vitest => "vitest",
            Framework::Go => "go",
            Framework::Cargo => "cargo",
            Framework::Nextest => "nextest",
            Framework::Junit => "junit",
            Framework::Plain => "none",
        }
    }

    /// Parses a name as [`Framework::name`] writes it (`plain` is accepted for `none`).
    pub fn from_name(name: &str) -> Option<Framework> {
        let name = name.trim().to_ascii_lowercase();
        if name == "plain" {
            return Some(Framework::Plain);
        }
        Framework::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// How to run the tests and where their report is.
#[derive(Clone, Debug)]
pub struct TestSpec {
    /// The command, run through the shell.
    pub command: String,
    /// Which report to ask for and read.
    pub framework: Framework,
    /// Limit for the run.
    pub timeout: Duration,
    /// JUnit XML files the command writes (a path or glob relative to the project), for
    /// [`Framework::Junit`]; `None` looks in the usual places.
    pub junit_report: Option<String>,
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The runner whose report was read.
    pub framework: Framework,
    /// How it ended.
    pub outcome: TestOutcome,
    /// Exit code or signal.
    #[serde(serialize_with = "ser_exit")]
    pub exit: Exit,
    /// Wall-clock time.
    #[serde(serialize_with = "crate::process::ser_millis", rename = "duration_ms")]
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

/// Runs the tests as `spec` says and reads the runner's report.
pub fn run_tests(
    spec: &TestSpec,
    project_dir: &Path,
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
    let framework = spec.framework;
    let report_path = report_dir.path().join(match framework {
        Framework::Jest | Framework::Vitest => "report.json",
        _ => "report.xml",
    });
    let quoted_report = shell_quote(&report_path.display().to_string());
    let command = match framework {
        Framework::Jest | Framework::Vitest => {
            detect::with_report_flags(&spec.command, framework, project_dir, &quoted_report)
                .unwrap_or_else(|| spec.command.clone())
        }
        _ => spec.command.clone(),
    };
    let mut process = ProcessSpec::shell(&command, project_dir, spec.timeout);
    match framework {
        Framework::Pytest => {
            // PYTEST_ADDOPTS reaches pytest however the command wraps it (make, tox, `cd x &&`),
            // without changing what the user's command tests. xunit1 keeps file and line.
            let ours =
                format!("--junitxml={quoted_report} -o junit_family=xunit1 -o junit_logging=all");
            process = process.env("PYTEST_ADDOPTS", join_env("PYTEST_ADDOPTS", &ours));
        }
        Framework::Go => {
            // GOFLAGS reaches every `go test` the command runs, however it is wrapped.
            process = process.env("GOFLAGS", join_env("GOFLAGS", "-json"));
        }
        Framework::Jest | Framework::Vitest => {
            // Colour codes only get in the way of reading the output.
            process = process.env("FORCE_COLOR", "0").env("NO_COLOR", "1");
        }
        Framework::Cargo | Framework::Nextest => {
            process = process.env("CARGO_TERM_COLOR", "never");
        }
        Framework::Junit | Framework::Plain => {}
    }
    let started = SystemTime::now();
    let out = process::run(&process, cancel)?;
    let combined = join_output(&out.stdout, &out.stderr);
    let (report, output) = match framework {
        Framework::Pytest => (read_junit_file(&report_path), combined),
        Framework::Jest | Framework::Vitest => {
            let runner = if framework == Framework::Jest {
                js::Runner::Jest
            } else {
                js::Runner::Vitest
            };
            let from_json = std::fs::read_to_string(&report_path)
                .ok()
                .and_then(|text| js::parse_json(&text, runner, project_dir));
            let report = from_json.or_else(|| match runner {
                js::Runner::Jest => js::parse_jest_output(&combined, project_dir),
                js::Runner::Vitest => js::parse_vitest_output(&combined, project_dir),
            });
            (report, combined)
        }
        Framework::Go => {
            let parsed = gotest::parse(&out.stdout, &out.stderr);
            (parsed.report, join_output(&parsed.text, &out.stderr))
        }
        Framework::Cargo => (cargo::parse_cargo_test(&combined), combined),
        Framework::Nextest => (cargo::parse_nextest(&combined), combined),
        Framework::Junit => {
            let patterns: Vec<String> = match &spec.junit_report {
                Some(p) => vec![p.clone()],
                None => junit::DEFAULT_REPORTS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            (
                junit::collect(project_dir, &patterns, Some(started)),
                combined,
            )
        }
        Framework::Plain => (None, combined),
    };
    let report = report.map(|r| relativised(r, project_dir));
    let outcome = match out.stop {
        Stop::Cancelled => TestOutcome::Interrupted,
        Stop::TimedOut => TestOutcome::TimedOut,
        Stop::Exited => {
            let report_clean = report
                .as_ref()
                .is_none_or(|r| r.failed == 0 && r.errors == 0 && r.failures.is_empty());
            if no_tests(framework, out.exit, &output, report.as_ref()) {
                TestOutcome::NoTests
            } else if out.exit.success() && report_clean {
                TestOutcome::Passed
            } else {
                TestOutcome::Failed
            }
        }
    };
    Ok(TestRun {
        command: spec.command.clone(),
        framework,
        outcome,
        exit: out.exit,
        duration: out.duration,
        report,
        output,
    })
}

/// Whether the runner said it found nothing to run (a set-up problem, not a code one).
fn no_tests(framework: Framework, exit: Exit, output: &str, report: Option<&TestReport>) -> bool {
    let failures = report.is_some_and(|r| !r.failures.is_empty());
    match framework {
        Framework::Pytest => exit == Exit::Code(5),
        Framework::Jest | Framework::Vitest => {
            !exit.success()
                && !failures
                && (output.contains("No tests found") || output.contains("No test files found"))
        }
        _ => false,
    }
}

fn read_junit_file(path: &Path) -> Option<TestReport> {
    let file = std::fs::File::open(path).ok()?;
    junit::parse(std::io::BufReader::new(file)).ok()
}

/// The user's value of `name` with `ours` after it.
fn join_env(name: &str, ours: &str) -> String {
    match std::env::var(name) {
        Ok(user) if !user.trim().is_empty() => format!("{user} {ours}"),
        _ => ours.to_string(),
    }
}

fn join_output(stdout: &str, stderr: &str) -> String {
    let mut output = stdout.to_string();
    if !stderr.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(stderr);
    }
    output
}

/// Absolute paths under the project become relative: shorter, and the same on every machine.
fn relativised(mut report: TestReport, project_dir: &Path) -> TestReport {
    for f in &mut report.failures {
        f.file = f.file.as_deref().map(|p| {
            let rel = text::relative_to(p, project_dir);
            rel.strip_prefix("./").map(str::to_string).unwrap_or(rel)
        });
        f.evidence = text::relative_to(&f.evidence, project_dir);
        f.message = text::relative_to(&f.message, project_dir);
    }
    report
}

/// Guesses the framework from the command alone (see [`detect_in`] for the project too).
pub fn detect(command: &str) -> Framework {
    detect::from_command(command, None).unwrap_or(Framework::Plain)
}

/// Guesses the framework from the command, the scripts in `package.json` it runs, and the
/// project's marker files (`Cargo.toml`, `go.mod`, `package.json`, `pytest.ini`, …).
pub fn detect_in(command: &str, project_dir: &Path) -> Framework {
    detect::from_command(command, Some(project_dir))
        .or_else(|| detect::from_project(project_dir))
        .unwrap_or(Framework::Plain)
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
    crate::process::tail_lines(output.trim_end(), 40)
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
        assert_eq!(detect("cargo test"), Framework::Cargo);
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
        let spec = |command: &str| TestSpec {
            command: command.to_string(),
            framework: Framework::Plain,
            timeout: Duration::from_secs(10),
            junit_report: None,
        };
        let pass = run_tests(&spec("echo 'it works'"), dir.path(), &cancel).unwrap();
        assert_eq!(pass.outcome, TestOutcome::Passed);
        let fail = run_tests(
            &spec("echo 'a \"quoted\" arg' && exit 1"),
            dir.path(),
            &cancel,
        )
        .unwrap();
        assert_eq!(fail.outcome, TestOutcome::Failed);
        assert!(fail.output.contains("a \"quoted\" arg"));
    }
}
