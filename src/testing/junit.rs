//! JUnit XML (as pytest, Maven Surefire, PHPUnit and many others write it) into a
//! [`TestReport`].

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{TestFailure, TestReport};

/// Where build tools put JUnit XML when `tests.report` does not say: Maven Surefire and
/// Failsafe, Gradle, and the common `junit.xml` names.
pub const DEFAULT_REPORTS: &[&str] = &[
    "target/surefire-reports/*.xml",
    "target/failsafe-reports/*.xml",
    "build/test-results/**/*.xml",
    "junit.xml",
    "report.xml",
    "test-results/**/*.xml",
];

/// Folders never searched for reports.
const SKIP_DIRS: &[&str] = &[".git", "node_modules", ".promptloop"];

/// Evidence lines kept per failing test.
const MAX_EVIDENCE_LINES: usize = 60;

/// A report that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("read the JUnit report: {0}")]
pub struct JunitError(#[from] junit_parser::Error);

/// Parses a JUnit XML report.
pub fn parse(reader: impl BufRead) -> Result<TestReport, JunitError> {
    let suites = junit_parser::from_reader(reader)?;
    let mut report = TestReport::default();
    for suite in &suites.suites {
        collect_suite(suite, &mut report);
    }
    Ok(report)
}

/// Reads every JUnit file under `project_dir` matching one of `patterns` (globs with `*`
/// and `**`, relative to the project), written at or after `since` when given, into one
/// report; `None` when no file matched or none could be read.
pub fn collect(
    project_dir: &Path,
    patterns: &[String],
    since: Option<SystemTime>,
) -> Option<TestReport> {
    let mut files = Vec::new();
    for pattern in patterns {
        files.extend(matching_files(project_dir, pattern));
    }
    files.sort();
    files.dedup();
    let mut merged: Option<TestReport> = None;
    for file in files {
        if let Some(since) = since {
            // A report left by an earlier run says nothing about this one. The second of
            // slack covers file systems with coarse timestamps.
            let fresh = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t + std::time::Duration::from_secs(1) >= since);
            if !fresh {
                continue;
            }
        }
        let Ok(handle) = std::fs::File::open(&file) else {
            continue;
        };
        let Ok(report) = parse(std::io::BufReader::new(handle)) else {
            continue;
        };
        let total = merged.get_or_insert_with(TestReport::default);
        total.total += report.total;
        total.passed += report.passed;
        total.failed += report.failed;
        total.errors += report.errors;
        total.skipped += report.skipped;
        total.failures.extend(report.failures);
    }
    if let Some(report) = merged.as_mut() {
        for f in &mut report.failures {
            python_node_id(f, project_dir);
        }
    }
    merged
}

/// pytest's default JUnit family (xunit2) has no `file` attribute: `tests.test_c::test_x`
/// becomes the node id `tests/test_c.py::test_x` where that module is in the project.
fn python_node_id(failure: &mut TestFailure, project_dir: &Path) {
    if failure.file.is_some() {
        return;
    }
    let Some((class, name)) = failure.id.rsplit_once("::") else {
        return;
    };
    let parts: Vec<&str> = class.split('.').collect();
    for cut in (1..=parts.len()).rev() {
        let module = parts[..cut].join("/") + ".py";
        if project_dir.join(&module).is_file() {
            let mut id = module.clone();
            for part in &parts[cut..] {
                id.push_str("::");
                id.push_str(part);
            }
            failure.id = format!("{id}::{name}");
            failure.file = Some(module);
            return;
        }
    }
}

/// Files matching `pattern` (relative to `root`, or absolute).
fn matching_files(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (base, pattern) = if path.is_absolute() {
        (
            PathBuf::from("/"),
            pattern.trim_start_matches('/').to_string(),
        )
    } else {
        (
            root.to_path_buf(),
            pattern.trim_start_matches("./").to_string(),
        )
    };
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    // Walk from the part before the first wildcard.
    let fixed = parts.iter().take_while(|p| !p.contains('*')).count();
    let mut start = base;
    for part in &parts[..fixed] {
        start.push(part);
    }
    let rest = &parts[fixed..];
    if rest.is_empty() {
        return if start.is_file() { vec![start] } else { vec![] };
    }
    let mut found = Vec::new();
    walk(&start, rest, 0, &mut found);
    found
}

fn walk(dir: &Path, parts: &[&str], depth: usize, found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && SKIP_DIRS.contains(&name.as_str()) {
            continue;
        }
        if *first == "**" {
            // `**` matches no folder (try the rest here) or one more (stay on `**`).
            if rest.is_empty() || crate::pattern::matches_any(&name, [rest[0]]) {
                if rest.len() <= 1 && !is_dir {
                    found.push(path.clone());
                } else if is_dir && rest.len() > 1 {
                    walk(&path, &rest[1..], depth + 1, found);
                }
            }
            if is_dir {
                walk(&path, parts, depth + 1, found);
            }
        } else if crate::pattern::matches_any(&name, [*first]) {
            if rest.is_empty() {
                if !is_dir {
                    found.push(path);
                }
            } else if is_dir {
                walk(&path, rest, depth + 1, found);
            }
        }
    }
}

fn collect_suite(suite: &junit_parser::TestSuite, report: &mut TestReport) {
    for case in &suite.cases {
        report.total += 1;
        let (kind, message, text) = match &case.status {
            junit_parser::TestStatus::Success => {
                report.passed += 1;
                continue;
            }
            junit_parser::TestStatus::Skipped(_) => {
                report.skipped += 1;
                continue;
            }
            junit_parser::TestStatus::Failure(f) => {
                report.failed += 1;
                ("failure", f.message.clone(), f.text.clone())
            }
            junit_parser::TestStatus::Error(e) => {
                report.errors += 1;
                ("error", e.message.clone(), e.text.clone())
            }
        };
        let captured = [&case.system_out, &case.system_err]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        report.failures.push(TestFailure {
            id: test_id(
                case.classname.as_deref(),
                &case.original_name,
                case.file.as_deref(),
            ),
            kind: kind.to_string(),
            file: case.file.clone(),
            line: case.line,
            message: message.trim().to_string(),
            evidence: evidence(&text),
            captured_output: (!captured.is_empty()).then_some(captured),
        });
    }
    for nested in &suite.suites {
        collect_suite(nested, report);
    }
}

/// pytest's node id (`tests/test_x.py::TestK::test_y`) from classname + file; other
/// runners' `classname::name`.
fn test_id(classname: Option<&str>, name: &str, file: Option<&str>) -> String {
    match (classname, file) {
        (Some(class), Some(file)) if file.ends_with(".py") => {
            let module = file.trim_end_matches(".py").replace('/', ".");
            let rest = class
                .strip_prefix(&module)
                .map(|r| r.trim_start_matches('.'))
                .unwrap_or("");
            let mut id = file.to_string();
            for part in rest.split('.').filter(|p| !p.is_empty()) {
                id.push_str("::");
                id.push_str(part);
            }
            id.push_str("::");
            id.push_str(name);
            id
        }
        (Some(class), _) if !class.is_empty() => format!("{class}::{name}"),
        _ => name.to_string(),
    }
}

/// The lines that say what went wrong: locations, the failing source line, `E` lines and
/// exception lines; frames from installed packages are dropped as noise.
pub fn evidence(text: &str) -> String {
    let mut kept = Vec::new();
    let mut skip_frame = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if is_location(trimmed) {
            skip_frame = trimmed.contains("site-packages") || trimmed.contains("/_pytest/");
        }
        // `E` lines are the error itself, even when raised inside an installed package.
        let is_error_line = trimmed.starts_with("E ");
        if trimmed.is_empty() || (skip_frame && !is_error_line) {
            continue;
        }
        kept.push(line.trim_end());
    }
    if kept.len() > MAX_EVIDENCE_LINES {
        // The end holds the error itself; keep the first frames and the end.
        let head = 10;
        let tail = MAX_EVIDENCE_LINES - head;
        let omitted = kept.len() - head - tail;
        let mut trimmed: Vec<String> = kept[..head].iter().map(|s| s.to_string()).collect();
        trimmed.push(format!("[... {omitted} lines omitted ...]"));
        trimmed.extend(kept[kept.len() - tail..].iter().map(|s| s.to_string()));
        return trimmed.join("\n");
    }
    kept.join("\n")
}

fn is_location(line: &str) -> bool {
    // `path.py:12: in func` (pytest short) or `File "path.py", line 12` (Python).
    line.starts_with("File \"") || line.contains(".py:") && line.contains(": in ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="0" tests="4" time="0.038"><testcase classname="tests.test_c" name="test_div" file="tests/test_c.py" line="2" time="0.000" /><testcase classname="tests.test_c" name="test_zero" file="tests/test_c.py" line="4" time="0.000"><failure message="assert 0 is None&#10; +  where 0 = safe_divide(1, 0)">tests/test_c.py:6: in test_zero
    assert safe_divide(1, 0) is None
E   assert 0 is None
E    +  where 0 = safe_divide(1, 0)</failure></testcase><testcase classname="tests.test_c.TestK" name="test_err" file="tests/test_c.py" line="7" time="0.000"><failure message="ValueError: boom">tests/test_c.py:9: in test_err
    raise ValueError("boom")
E   ValueError: boom</failure><system-out>captured here</system-out></testcase><testcase classname="tests.test_c" name="test_fix" file="tests/test_c.py" line="12" time="0.000"><error message="failed on setup with &quot;RuntimeError: fixture broke&quot;">tests/test_c.py:12: in broken
    raise RuntimeError("fixture broke")
E   RuntimeError: fixture broke</error></testcase></testsuite></testsuites>"#;

    #[test]
    fn reads_pytest_report_with_node_ids_and_evidence() {
        let report = parse(PYTEST_XML.as_bytes()).unwrap();
        assert_eq!(
            (report.total, report.passed, report.failed, report.errors),
            (4, 1, 2, 1)
        );
        let ids: Vec<&str> = report.failures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "tests/test_c.py::test_zero",
                "tests/test_c.py::TestK::test_err",
                "tests/test_c.py::test_fix"
            ]
        );
        let zero = &report.failures[0];
        assert_eq!(zero.line, Some(4));
        assert!(zero.evidence.contains("E   assert 0 is None"));
        assert!(zero.evidence.contains("where 0 = safe_divide(1, 0)"));
        assert_eq!(
            report.failures[1].captured_output.as_deref(),
            Some("captured here")
        );
        assert_eq!(report.failures[2].kind, "error");
    }

    #[test]
    fn installed_package_frames_are_dropped() {
        let text = "tests/t.py:3: in test_a\n    f()\n/usr/lib/python3/site-packages/lib/x.py:10: in f\n    noise()\nE   KeyError: 'k'";
        let e = evidence(text);
        assert!(!e.contains("noise"));
        assert!(e.contains("tests/t.py:3"));
        assert!(e.contains("E   KeyError: 'k'"));
    }

    #[test]
    fn globs_find_reports_and_skip_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let surefire = dir.path().join("target/surefire-reports");
        let gradle = dir.path().join("build/test-results/test/nested");
        std::fs::create_dir_all(&surefire).unwrap();
        std::fs::create_dir_all(&gradle).unwrap();
        std::fs::write(surefire.join("TEST-a.xml"), PYTEST_XML).unwrap();
        std::fs::write(gradle.join("TEST-b.xml"), PYTEST_XML).unwrap();
        std::fs::write(surefire.join("notes.txt"), "x").unwrap();
        let patterns: Vec<String> = DEFAULT_REPORTS.iter().map(|s| s.to_string()).collect();
        let report = collect(dir.path(), &patterns, None).unwrap();
        assert_eq!(report.total, 8);
        assert_eq!(report.failures.len(), 6);
        let future = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(collect(dir.path(), &patterns, Some(future)).is_none());
        assert!(collect(dir.path(), &["missing/*.xml".to_string()], None).is_none());
    }

    #[test]
    fn other_runners_use_classname() {
        assert_eq!(
            test_id(Some("com.acme.CalcTest"), "divides", None),
            "com.acme.CalcTest::divides"
        );
    }
}
