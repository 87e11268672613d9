//! `go test -json` (asked for through `GOFLAGS=-json`): the event stream into a
//! [`TestReport`], and the human text rebuilt from its `Output` events.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{TestFailure, TestReport};

/// Evidence lines kept per failing test.
const MAX_EVIDENCE_LINES: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

/// What the JSON stream said: the report (when any event was read) and the human text.
pub struct GoOutput {
    /// The report, or `None` when stdout held no `go test -json` events.
    pub report: Option<TestReport>,
    /// The output as `go test` would have printed it, plus lines that were not JSON.
    pub text: String,
}

/// Reads `go test -json` output. `stderr` (build errors in older Go) is used as evidence
/// for packages that failed without a failing test.
pub fn parse(stdout: &str, stderr: &str) -> GoOutput {
    let mut text = String::new();
    let mut outputs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut failed_tests: Vec<(String, String)> = Vec::new();
    let mut failed_packages: Vec<String> = Vec::new();
    let mut report = TestReport::default();
    let mut any_event = false;
    for line in stdout.lines() {
        let event = match line
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<GoEvent>(line).ok())
            .flatten()
        {
            Some(e) if !e.action.is_empty() => e,
            _ => {
                text.push_str(line);
                text.push('\n');
                continue;
            }
        };
        any_event = true;
        let test = event.test.clone().unwrap_or_default();
        match event.action.as_str() {
            "output" | "build-output" => {
                let out = event.output.unwrap_or_default();
                text.push_str(&out);
                outputs
                    .entry((event.package.clone(), test))
                    .or_default()
                    .push(out.trim_end_matches('\n').to_string());
            }
            "pass" if !test.is_empty() => {
                report.total += 1;
                report.passed += 1;
            }
            "skip" if !test.is_empty() => {
                report.total += 1;
                report.skipped += 1;
            }
            "fail" if !test.is_empty() => {
                report.total += 1;
                failed_tests.push((event.package.clone(), test));
            }
            "fail" => failed_packages.push(event.package.clone()),
            _ => {}
        }
    }
    if !any_event {
        return GoOutput { report: None, text };
    }
    // A parent fails because a subtest failed: only the leaves carry the evidence.
    let failed_set: BTreeSet<&(String, String)> = failed_tests.iter().collect();
    for (package, test) in &failed_tests {
        let has_failing_child = failed_set
            .iter()
            .any(|(p, t)| p == package && t.starts_with(&format!("{test}/")));
        if has_failing_child {
            // Counted as run, not as a failure of its own.
            continue;
        }
        let lines = outputs
            .get(&(package.clone(), test.clone()))
            .cloned()
            .unwrap_or_default();
        report.failed += 1;
        report.failures.push(test_failure(package, test, &lines));
    }
    for package in failed_packages {
        if failed_tests.iter().any(|(p, _)| *p == package) {
            continue;
        }
        let mut lines = outputs
            .get(&(package.clone(), String::new()))
            .cloned()
            .unwrap_or_default();
        // Older Go prints build errors on stderr, not in the stream.
        lines.extend(
            stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(30)
                .map(str::to_string),
        );
        let message = lines
            .iter()
            .map(|l| l.trim())
            .find(|l| {
                !l.is_empty() && !l.starts_with("FAIL") && !l.starts_with('#') && *l != "panic:"
            })
            .unwrap_or("the package failed without a failing test")
            .to_string();
        let (file, line) = lines
            .iter()
            .find_map(|l| go_location(l.trim()))
            .map_or((None, None), |(f, l)| (Some(f), Some(l)));
        report.errors += 1;
        report.failures.push(TestFailure {
            id: package.clone(),
            kind: "error".into(),
            file,
            line,
            message,
            evidence: lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .take(MAX_EVIDENCE_LINES)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            captured_output: None,
        });
    }
    GoOutput {
        report: Some(report),
        text,
    }
}

fn test_failure(package: &str, test: &str, lines: &[String]) -> TestFailure {
    let mut evidence = Vec::new();
    let mut captured = Vec::new();
    let mut message = None;
    let mut place = None;
    let mut skip_next_frame_line = false;
    let mut in_goroutine = false;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.starts_with("=== ")
            || trimmed.starts_with("--- FAIL")
            || trimmed.starts_with("--- PASS")
        {
            continue;
        }
        if skip_next_frame_line {
            skip_next_frame_line = false;
            continue;
        }
        if trimmed.starts_with("goroutine ") {
            in_goroutine = true;
            evidence.push(trimmed.to_string());
            continue;
        }
        if in_goroutine {
            // Frames come in pairs: `func(args)` then `\t/path/file.go:12 +0x2e`.
            if line.starts_with('\t') {
                if let Some(loc) = go_location(trimmed) {
                    place.get_or_insert(loc);
                }
                evidence.push(format!("    {trimmed}"));
            } else if is_runtime_frame(trimmed) {
                skip_next_frame_line = true;
            } else if !trimmed.is_empty() {
                evidence.push(trimmed.to_string());
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("panic: ") {
            message
                .get_or_insert_with(|| format!("panic: {}", rest.trim_end_matches(" [recovered]")));
            evidence.push(trimmed.to_string());
            continue;
        }
        // `    calc_test.go:8: Add(1, 2) = -1, want 3` from t.Error / t.Fatal.
        if let Some((file, line_no, text)) = t_log_line(trimmed) {
            message.get_or_insert_with(|| text.to_string());
            place.get_or_insert((file.to_string(), line_no));
            evidence.push(trimmed.to_string());
            continue;
        }
        if !trimmed.is_empty() {
            captured.push(line.clone());
        }
    }
    // Frames from inside the test binary's own frames are kept only where they are in the
    // project; runtime frames were dropped above, and their location lines with them.
    evidence.retain(|l| !l.contains("/src/runtime/") && !l.contains("/src/testing/"));
    evidence.truncate(MAX_EVIDENCE_LINES);
    let message = message
        .or_else(|| captured.first().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "the test failed".into());
    TestFailure {
        id: format!("{package}::{test}"),
        kind: "failure".into(),
        file: place.as_ref().map(|(f, _)| f.clone()),
        line: place.map(|(_, l)| l),
        message,
        evidence: evidence.join("\n"),
        captured_output: (!captured.is_empty()).then(|| captured.join("\n")),
    }
}

/// `calc_test.go:8: message` → (file, line, message).
fn t_log_line(line: &str) -> Option<(&str, u64, &str)> {
    let (file, rest) = line.split_once(':')?;
    if !file.ends_with(".go") || file.contains(' ') {
        return None;
    }
    let (number, text) = rest.split_once(':')?;
    Some((file, number.parse().ok()?, text.trim()))
}

/// `/path/file.go:12 +0x2e` or `./file.go:3:5: undefined: x` → (path, line).
fn go_location(line: &str) -> Option<(String, u64)> {
    let word = line.split_whitespace().next()?;
    let (file, rest) = word.split_once(".go:")?;
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((format!("{file}.go"), number.parse().ok()?))
}

fn is_runtime_frame(line: &str) -> bool {
    line.starts_with("testing.")
        || line.starts_with("runtime.")
        || line.starts_with("panic(")
        || line.starts_with("created by testing.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_log_lines_and_locations() {
        assert_eq!(
            t_log_line("calc_test.go:8: Add(1, 2) = -1, want 3"),
            Some(("calc_test.go", 8, "Add(1, 2) = -1, want 3"))
        );
        assert_eq!(t_log_line("adding now: really"), None);
        assert_eq!(
            go_location("/tmp/x/calc_test.go:16 +0x2e"),
            Some(("/tmp/x/calc_test.go".into(), 16))
        );
        assert_eq!(
            go_location("./calc.go:3:5: undefined: x"),
            Some(("./calc.go".into(), 3))
        );
    }
}
