//! Jest and Vitest: their JSON report (Vitest's `json` reporter writes Jest's format) and,
//! where no report could be asked for, their human output.

use std::path::Path;

use serde::Deserialize;

use super::text::{clean, dedent_block, relative_to};
use super::{TestFailure, TestReport};

/// Stack frames from these places are framework noise.
const NOISE_FRAMES: &[&str] = &[
    "node_modules/",
    "node:internal",
    "(<anonymous>)",
    "internal/process",
];

/// Evidence lines kept per failing test.
const MAX_EVIDENCE_LINES: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport {
    #[serde(default)]
    num_total_tests: u64,
    #[serde(default)]
    num_passed_tests: u64,
    #[serde(default)]
    num_failed_tests: u64,
    #[serde(default)]
    num_pending_tests: u64,
    #[serde(default)]
    num_todo_tests: u64,
    #[serde(default)]
    test_results: Vec<FileResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileResult {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    assertion_results: Vec<Assertion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assertion {
    #[serde(default)]
    ancestor_titles: Vec<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    failure_messages: Vec<String>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Debug, Deserialize)]
struct Location {
    line: Option<u64>,
}

/// Which runner wrote the output: they join test titles differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// `file › describe › test`, as Jest prints it.
    Jest,
    /// `file > describe > test`, as Vitest prints it.
    Vitest,
}

impl Runner {
    fn separator(self) -> &'static str {
        match self {
            Runner::Jest => " › ",
            Runner::Vitest => " > ",
        }
    }
}

/// Reads a Jest-format JSON report; paths are made relative to `project_dir`.
pub fn parse_json(text: &str, runner: Runner, project_dir: &Path) -> Option<TestReport> {
    let json: JsonReport = serde_json::from_str(text).ok()?;
    let mut report = TestReport {
        total: json.num_total_tests,
        passed: json.num_passed_tests,
        failed: json.num_failed_tests,
        skipped: json.num_pending_tests + json.num_todo_tests,
        ..TestReport::default()
    };
    for file in &json.test_results {
        let rel = relative_to(&file.name, project_dir);
        let mut any_failed = false;
        for a in &file.assertion_results {
            if a.status != "failed" {
                continue;
            }
            any_failed = true;
            let mut id = rel.clone();
            for part in a.ancestor_titles.iter().chain(std::iter::once(&a.title)) {
                id.push_str(runner.separator());
                id.push_str(part);
            }
            let text = clean(&a.failure_messages.join("\n"));
            let (message, evidence, place) = read_error(&text, &rel, project_dir);
            report.failures.push(TestFailure {
                id,
                kind: "failure".into(),
                file: Some(rel.clone()),
                line: place
                    .filter(|(f, _)| *f == rel)
                    .map(|(_, l)| l)
                    .or_else(|| a.location.as_ref().and_then(|l| l.line)),
                message,
                evidence,
                captured_output: None,
            });
        }
        // A file that failed to load or run has no failed test of its own.
        if file.status == "failed" && !any_failed {
            let text = clean(&file.message);
            let (message, evidence, place) = read_error(&text, &rel, project_dir);
            report.errors += 1;
            report.failures.push(TestFailure {
                id: rel.clone(),
                kind: "error".into(),
                file: Some(rel.clone()),
                line: place.filter(|(f, _)| *f == rel).map(|(_, l)| l),
                message: if message.is_empty() {
                    "the test file failed to run".into()
                } else {
                    message
                },
                evidence,
                captured_output: None,
            });
        }
    }
    Some(report)
}

/// The message, the evidence (message lines and the project's own stack frames) and the
/// first project location (file, line).
fn read_error(
    text: &str,
    test_file: &str,
    project_dir: &Path,
) -> (String, String, Option<(String, u64)>) {
    let mut message_lines = Vec::new();
    let mut frames = Vec::new();
    let mut place: Option<(String, u64)> = None;
    let mut in_stack = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("at ") || trimmed.starts_with("❯ ") {
            in_stack = true;
            if NOISE_FRAMES.iter().any(|n| trimmed.contains(n)) {
                continue;
            }
            let frame = relative_to(trimmed, project_dir);
            if let Some((file, line_no)) = frame_location(&frame) {
                // The test file's own line is the most useful place; else the first frame.
                if place.as_ref().is_none_or(|(f, _)| f != test_file) {
                    place = Some((file, line_no));
                }
            }
            frames.push(format!("    {frame}"));
        } else if !in_stack {
            message_lines.push(line.trim_end());
        }
    }
    while message_lines.last().is_some_and(|l| l.trim().is_empty()) {
        message_lines.pop();
    }
    let message = message_lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l).to_string())
        .unwrap_or_default();
    let mut evidence: Vec<String> = message_lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect();
    evidence.extend(frames);
    evidence.truncate(MAX_EVIDENCE_LINES);
    (message, evidence.join("\n"), place)
}

/// `path:line:col` inside a stack frame (`at f (src/a.js:3:9)`, `at src/a.js:3:9`,
/// `❯ src/a.js:3:9`).
fn frame_location(frame: &str) -> Option<(String, u64)> {
    let inner = frame
        .rsplit_once('(')
        .map_or(frame, |(_, r)| r.trim_end_matches(')'));
    let inner = inner
        .trim_start_matches("at ")
        .trim_start_matches("❯ ")
        .rsplit(' ')
        .next()?;
    let inner = inner.strip_prefix("file://").unwrap_or(inner);
    let mut parts = inner.rsplitn(3, ':');
    let _col = parts.next()?;
    let line: u64 = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    (!file.is_empty()).then_some((file, line))
}

/// Reads Jest's human output (its stderr): `FAIL file` lines, `● a › b` blocks and the
/// `Tests:` summary.
pub fn parse_jest_output(output: &str, project_dir: &Path) -> Option<TestReport> {
    let output = clean(output);
    let mut report = TestReport::default();
    let mut file = String::new();
    let mut block: Option<(String, Vec<&str>)> = None;
    let mut saw_anything = false;
    let flush = |block: &mut Option<(String, Vec<&str>)>, file: &str, report: &mut TestReport| {
        if let Some((title, lines)) = block.take() {
            let body = dedent_block(&lines);
            let (message, evidence, place) = read_error(&body, file, project_dir);
            let suite_error = title == "Test suite failed to run";
            if suite_error {
                report.errors += 1;
            }
            report.failures.push(TestFailure {
                id: if suite_error {
                    file.to_string()
                } else {
                    format!("{file} › {title}")
                },
                kind: if suite_error { "error" } else { "failure" }.into(),
                file: (!file.is_empty()).then(|| file.to_string()),
                line: place.filter(|(f, _)| f == file).map(|(_, l)| l),
                message,
                evidence,
                captured_output: None,
            });
        }
    };
    for line in output.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed
            .strip_prefix("FAIL ")
            .or_else(|| trimmed.strip_prefix("PASS "))
            && !line.starts_with("    ")
        {
            flush(&mut block, &file, &mut report);
            file = rest.split_whitespace().next().unwrap_or("").to_string();
            saw_anything = true;
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("● ")
            && line.starts_with("  ")
            && !line.starts_with("    ")
        {
            flush(&mut block, &file, &mut report);
            block = Some((title.trim().to_string(), Vec::new()));
            continue;
        }
        if let Some(counts) = trimmed.strip_prefix("Tests:") {
            flush(&mut block, &file, &mut report);
            read_counts(counts, &mut report);
            saw_anything = true;
            continue;
        }
        if trimmed.starts_with("Test Suites:") || trimmed.starts_with("Snapshots:") {
            flush(&mut block, &file, &mut report);
            continue;
        }
        if let Some((_, lines)) = block.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut block, &file, &mut report);
    saw_anything.then_some(report)
}

/// Reads Vitest's human output: the `FAIL  file > a > b` blocks after "Failed Tests" /
/// "Failed Suites" and the `Tests` summary.
pub fn parse_vitest_output(output: &str, project_dir: &Path) -> Option<TestReport> {
    let output = clean(output);
    let mut report = TestReport::default();
    let mut block: Option<(String, Vec<&str>)> = None;
    let mut saw_anything = false;
    let flush = |block: &mut Option<(String, Vec<&str>)>, report: &mut TestReport| {
        if let Some((header, lines)) = block.take() {
            // `file [ file ]` is a whole file that failed; `file > a > b` is one test.
            let (id, suite_error) = match header.split_once(" [ ") {
                Some((file, _)) => (file.trim().to_string(), true),
                None => (header.trim().to_string(), false),
            };
            let file = id.split(" > ").next().unwrap_or("").to_string();
            let body = lines.join("\n");
            let (message, evidence, place) = read_error(&body, &file, project_dir);
            if suite_error {
                report.errors += 1;
            }
            report.failures.push(TestFailure {
                id,
                kind: if suite_error { "error" } else { "failure" }.into(),
                file: (!file.is_empty()).then(|| file.clone()),
                line: place.filter(|(f, _)| *f == file).map(|(_, l)| l),
                message,
                evidence,
                captured_output: None,
            });
        }
    };
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix("FAIL ") {
            flush(&mut block, &mut report);
            block = Some((header.trim().to_string(), Vec::new()));
            saw_anything = true;
            continue;
        }
        // `⎯⎯⎯[1/2]⎯` ends a block; the section headers are lines of ⎯ too.
        if trimmed.starts_with('⎯') {
            flush(&mut block, &mut report);
            continue;
        }
        if let Some(counts) = trimmed.strip_prefix("Tests ") {
            flush(&mut block, &mut report);
            read_counts(&counts.replace('|', ","), &mut report);
            saw_anything = true;
            continue;
        }
        if trimmed.starts_with("Test Files ") {
            flush(&mut block, &mut report);
            continue;
        }
        if let Some((_, lines)) = block.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut block, &mut report);
    saw_anything.then_some(report)
}

/// `2 failed, 2 passed, 1 skipped, 5 total` or `2 failed , 2 passed (4)`.
fn read_counts(text: &str, report: &mut TestReport) {
    let mut total = None;
    for part in text.split(',') {
        let part = part.trim();
        let (number, rest) = part.split_once(' ').unwrap_or((part, ""));
        let Ok(n) = number.trim().parse::<u64>() else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with("failed") {
            report.failed = n;
        } else if rest.starts_with("passed") {
            report.passed = n;
        } else if rest.starts_with("skipped") || rest.starts_with("todo") {
            report.skipped += n;
        } else if rest.starts_with("total") {
            total = Some(n);
        }
        // Vitest: `2 passed (4)`: the total in parentheses.
        if let Some(open) = rest.find('(')
            && let Some(n) = rest[open + 1..]
                .trim_end_matches(')')
                .trim()
                .parse::<u64>()
                .ok()
        {
            total = Some(n);
        }
    }
    report.total = total.unwrap_or(report.failed + report.passed + report.skipped);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_locations() {
        assert_eq!(
            frame_location("at Object.toBe (src/calc.test.js:3:69)"),
            Some(("src/calc.test.js".into(), 3))
        );
        assert_eq!(
            frame_location("at src/calcv.test.mjs:7:36"),
            Some(("src/calcv.test.mjs".into(), 7))
        );
        assert_eq!(
            frame_location("❯ div src/calc.mjs:2:41"),
            Some(("src/calc.mjs".into(), 2))
        );
        assert_eq!(frame_location("at new Promise (<anonymous>)"), None);
    }

    #[test]
    fn counts_of_both_runners() {
        let mut r = TestReport::default();
        read_counts(" 2 failed, 2 passed, 4 total", &mut r);
        assert_eq!((r.failed, r.passed, r.total), (2, 2, 4));
        let mut r = TestReport::default();
        read_counts(" 2 failed , 2 passed (4)", &mut r);
        assert_eq!((r.failed, r.passed, r.total), (2, 2, 4));
    }
}
