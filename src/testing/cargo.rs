//! `cargo test` (libtest's human output; its JSON is unstable) and `cargo nextest run`
//! (its human output) into a [`TestReport`]; compile errors become one failure, since a
//! build that breaks is the most common way an agent's Rust change fails.

use super::text::{clean, dedent_block};
use super::{TestFailure, TestReport};

/// Evidence lines kept per failing test.
const MAX_EVIDENCE_LINES: usize = 40;

/// Reads `cargo test` output (stdout and stderr together).
pub fn parse_cargo_test(output: &str) -> Option<TestReport> {
    let output = clean(output);
    let lines: Vec<&str> = output.lines().collect();
    let mut report = TestReport::default();
    let mut saw_result = false;
    let mut failed_names: Vec<String> = Vec::new();
    // One test binary's failures: libtest prints them as they finish (in parallel, so in
    // any order) and lists them sorted at the end; sorted per binary, the order is stable.
    let mut binary_failed: Vec<String> = Vec::new();
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in &lines {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            current = Some((name.to_string(), Vec::new()));
            continue;
        }
        if (*line == "failures:" || line.starts_with("test result: "))
            && let Some(block) = current.take()
        {
            blocks.push(block);
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            saw_result = true;
            binary_failed.sort();
            failed_names.append(&mut binary_failed);
            read_libtest_counts(rest, &mut report);
            continue;
        }
        if let Some(rest) = line.strip_prefix("test ")
            && let Some(name) = rest.strip_suffix(" ... FAILED")
        {
            binary_failed.push(name.to_string());
        }
        if let Some((_, body)) = current.as_mut() {
            body.push(line);
        }
    }
    if let Some(block) = current.take() {
        blocks.push(block);
    }
    binary_failed.sort();
    failed_names.append(&mut binary_failed);
    for name in &failed_names {
        let body = blocks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.join("\n"))
            .unwrap_or_default();
        report.failures.push(libtest_failure(name, &body, None));
    }
    if let Some(build) = compile_error(&output) {
        report.errors += 1;
        report.failures.push(build);
        return Some(report);
    }
    saw_result.then_some(report)
}

/// Reads `cargo nextest run` output (stdout and stderr together).
pub fn parse_nextest(output: &str) -> Option<TestReport> {
    let output = clean(output);
    let lines: Vec<&str> = output.lines().collect();
    let mut report = TestReport::default();
    let mut saw_summary = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("Summary [") {
            // Status lines repeat after the summary; with `--failure-output final` the
            // outputs come only there.
            saw_summary = true;
            read_nextest_summary(line, &mut report);
            i += 1;
            continue;
        }
        let Some((status, id)) = nextest_status(line) else {
            i += 1;
            continue;
        };
        i += 1;
        if !is_failing_status(status) {
            continue;
        }
        // The block runs until the next status line or a rule line.
        let start = i;
        while i < lines.len()
            && nextest_status(lines[i]).is_none()
            && !lines[i].starts_with("────")
            && !lines[i].trim_start().starts_with("Summary [")
            && !lines[i].starts_with("error: ")
        {
            i += 1;
        }
        let (stdout, stderr) = nextest_sections(&lines[start..i]);
        let name = id.split_once(' ').map_or(id.as_str(), |(_, t)| t);
        let body = format!("{}\n{}", stderr, libtest_noise_removed(&stdout));
        let mut failure = libtest_failure(name, &body, Some(status));
        failure.id = id.clone();
        let captured = libtest_noise_removed(&stdout);
        failure.captured_output = (!captured.trim().is_empty()).then_some(captured);
        match report.failures.iter_mut().find(|f| f.id == failure.id) {
            Some(_) if start == i => {}
            Some(seen) => *seen = failure,
            None => report.failures.push(failure),
        }
    }
    if let Some(build) = compile_error(&output) {
        report.errors += 1;
        report.failures.push(build);
        return Some(report);
    }
    saw_summary.then_some(report)
}

/// `        FAIL [   0.162s] (2/5) calc tests::adds` → (`FAIL`, `calc tests::adds`).
fn nextest_status(line: &str) -> Option<(&str, String)> {
    let trimmed = line.trim_start();
    // Retries print `TRY 2 FAIL [...]`.
    let trimmed = match trimmed.strip_prefix("TRY ") {
        Some(rest) => rest.split_once(' ')?.1.trim_start(),
        None => trimmed,
    };
    let (status, rest) = trimmed.split_once(' ')?;
    if status.is_empty() || !status.chars().all(|c| c.is_ascii_uppercase() || c == '-') {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('[')?;
    let (_time, rest) = rest.split_once(']')?;
    let mut rest = rest.trim_start();
    if rest.starts_with('(') {
        rest = rest.split_once(')')?.1.trim_start();
    }
    let mut words = rest.split_whitespace();
    let binary = words.next()?;
    let test = words.next()?;
    Some((status, format!("{binary} {test}")))
}

fn is_failing_status(status: &str) -> bool {
    matches!(
        status,
        "FAIL" | "TIMEOUT" | "ABORT" | "SIGSEGV" | "SIGABRT" | "SIGBUS" | "SIGILL" | "SIGKILL"
    ) || status.starts_with("SIG")
        || status == "LEAK-FAIL"
}

/// The `stdout ───` and `stderr ───` sections of a nextest failure (older versions:
/// `--- STDOUT: id ---`), dedented.
fn nextest_sections(lines: &[&str]) -> (String, String) {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut target: Option<bool> = None; // Some(true): stdout
    for line in lines {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("stdout ───") || lower.starts_with("--- stdout:") {
            target = Some(true);
            continue;
        }
        if lower.starts_with("stderr ───") || lower.starts_with("--- stderr:") {
            target = Some(false);
            continue;
        }
        match target {
            Some(true) => stdout.push(*line),
            Some(false) => stderr.push(*line),
            None => {}
        }
    }
    (dedent_block(&stdout), dedent_block(&stderr))
}

/// Drops libtest's own lines from a single test's stdout.
fn libtest_noise_removed(stdout: &str) -> String {
    let mut kept = Vec::new();
    let mut in_failures = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t == "failures:" {
            in_failures = true;
            continue;
        }
        if t.starts_with("running ")
            || t.starts_with("test result:")
            || (t.starts_with("test ") && (t.ends_with("FAILED") || t.ends_with("ok")))
        {
            in_failures = false;
            continue;
        }
        if in_failures {
            continue;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_string()
}

/// One libtest failure from the test's stdout block (panic message, backtrace, output).
fn libtest_failure(name: &str, body: &str, status: Option<&str>) -> TestFailure {
    let mut message = None;
    let mut place = None;
    let mut evidence = Vec::new();
    let mut captured = Vec::new();
    let mut lines = body.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("thread '") && t.contains("panicked at") {
            let (loc, inline_msg) = panic_location(t);
            if let Some(loc) = loc {
                place.get_or_insert(loc);
            }
            evidence.push(t.to_string());
            // The message: the inline form (old Rust) or the lines up to the backtrace.
            let mut msg_lines = Vec::new();
            if let Some(m) = inline_msg {
                msg_lines.push(m);
            }
            while let Some(next) = lines.peek() {
                let nt = next.trim();
                if nt.is_empty() || nt.starts_with("stack backtrace:") || nt.starts_with("note:") {
                    break;
                }
                msg_lines.push(nt.to_string());
                lines.next();
            }
            evidence.extend(msg_lines.iter().cloned());
            message.get_or_insert_with(|| msg_lines.join("\n"));
            continue;
        }
        if t == "stack backtrace:" {
            // Keep only frames in the project: `N: crate::f` then `at ./src/lib.rs:7:41`.
            let mut frame: Option<String> = None;
            while let Some(next) = lines.peek() {
                let nt = next.trim();
                if let Some(at) = nt.strip_prefix("at ") {
                    // Closure frames repeat the test's own frame.
                    if let Some(f) = frame.take()
                        && (at.starts_with("./") || !at.starts_with('/'))
                        && !f.ends_with("{{closure}}")
                    {
                        evidence.push(format!("  {f}\n      at {at}"));
                    }
                    lines.next();
                    continue;
                }
                if nt
                    .split_once(": ")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
                {
                    frame = Some(nt.to_string());
                    lines.next();
                    continue;
                }
                break;
            }
            continue;
        }
        if t.starts_with("note: ") && t.contains("RUST_BACKTRACE") {
            continue;
        }
        if let Some(err) = t.strip_prefix("Error: ") {
            // A test returning Err(..).
            message.get_or_insert_with(|| format!("Error: {err}"));
            evidence.push(t.to_string());
            continue;
        }
        if !t.is_empty() {
            captured.push(line.to_string());
        }
    }
    evidence.truncate(MAX_EVIDENCE_LINES);
    let message = message.unwrap_or_else(|| match status {
        Some("TIMEOUT") => "the test timed out".into(),
        Some(s) if s.starts_with("SIG") => format!("the test process was killed by {s}"),
        _ => "the test failed".into(),
    });
    TestFailure {
        id: name.to_string(),
        kind: "failure".into(),
        file: place.as_ref().map(|(f, _)| f.clone()),
        line: place.map(|(_, l)| l),
        message,
        evidence: evidence.join("\n"),
        captured_output: (!captured.is_empty()).then(|| captured.join("\n")),
    }
}

/// From `thread 'x' (123) panicked at src/lib.rs:7:41:` (Rust ≥ 1.73) or
/// `thread 'x' panicked at 'msg', src/lib.rs:7:41` (older): the location and an inline message.
fn panic_location(line: &str) -> (Option<(String, u64)>, Option<String>) {
    let Some((_, rest)) = line.split_once("panicked at ") else {
        return (None, None);
    };
    let rest = rest.trim_end_matches(':');
    if let Some(quoted) = rest.strip_prefix('\'')
        && let Some((msg, loc)) = quoted.rsplit_once("', ")
    {
        return (file_line(loc), Some(msg.to_string()));
    }
    (file_line(rest), None)
}

/// `src/lib.rs:7:41` → (`src/lib.rs`, 7).
fn file_line(loc: &str) -> Option<(String, u64)> {
    let mut parts = loc.trim().rsplitn(3, ':');
    let _col = parts.next()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    (!file.is_empty()).then(|| (file.to_string(), line))
}

/// `1 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s`
fn read_libtest_counts(text: &str, report: &mut TestReport) {
    let text = text.trim_start_matches("FAILED.").trim_start_matches("ok.");
    for part in text.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => report.passed += n,
            "failed" => report.failed += n,
            "ignored" => report.skipped += n,
            _ => continue,
        }
        report.total += n;
    }
}

/// `     Summary [   0.265s] 5 tests run: 1 passed, 4 failed, 0 skipped`
fn read_nextest_summary(line: &str, report: &mut TestReport) {
    let Some((_, rest)) = line.split_once(']') else {
        return;
    };
    let (run, counts) = rest.split_once(':').unwrap_or((rest, ""));
    let run: u64 = run
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut skipped = 0;
    for part in counts.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => report.passed += n,
            "failed" | "timed" => report.failed += n,
            "skipped" => skipped += n,
            _ if part.contains("leak") && part.contains("fail") => report.failed += n,
            _ => {}
        }
    }
    report.skipped = skipped;
    report.total = run + skipped;
}

/// `error[E0308]: mismatched types` … `error: could not compile` as one failure.
fn compile_error(output: &str) -> Option<TestFailure> {
    if !output.contains("error: could not compile") {
        return None;
    }
    let lines: Vec<&str> = output.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("error[") || l.starts_with("error: "))?;
    let message = lines[first].trim().to_string();
    let mut place = None;
    let mut evidence = Vec::new();
    for line in &lines[first..] {
        if line.starts_with("error: could not compile") {
            evidence.push(line.to_string());
            break;
        }
        if place.is_none()
            && let Some(loc) = line.trim_start().strip_prefix("--> ")
        {
            place = file_line(loc);
        }
        if evidence.len() < MAX_EVIDENCE_LINES && !line.starts_with("warning") {
            evidence.push(line.to_string());
        }
    }
    Some(TestFailure {
        id: "build".into(),
        kind: "error".into(),
        file: place.as_ref().map(|(f, _)| f.clone()),
        line: place.map(|(_, l)| l),
        message,
        evidence: evidence.join("\n"),
        captured_output: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextest_status_lines() {
        assert_eq!(
            nextest_status("        FAIL [   0.162s] (2/5) calc tests::adds"),
            Some(("FAIL", "calc tests::adds".to_string()))
        );
        assert_eq!(
            nextest_status("  TRY 2 FAIL [   0.1s] calc::integ integ_fails"),
            Some(("FAIL", "calc::integ integ_fails".to_string()))
        );
        assert_eq!(
            nextest_status("    Starting 5 tests across 2 binaries"),
            None
        );
    }

    #[test]
    fn panic_locations_old_and_new() {
        assert_eq!(
            panic_location("thread 'a' (12) panicked at src/lib.rs:7:41:"),
            (Some(("src/lib.rs".into(), 7)), None)
        );
        assert_eq!(
            panic_location("thread 'a' panicked at 'boom', src/lib.rs:3:5"),
            (Some(("src/lib.rs".into(), 3)), Some("boom".into()))
        );
    }

    #[test]
    fn compile_errors_become_one_failure() {
        let out = "   Compiling calc v0.1.0\nerror[E0308]: mismatched types\n --> src/lib.rs:1:36\n  |\n1 | pub fn add(a: i32) -> i32 { \"x\" }\n  |                             ^^^ expected `i32`\n\nerror: could not compile `calc` (lib) due to 1 previous error\n";
        let r = parse_cargo_test(out).unwrap();
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].id, "build");
        assert_eq!(r.failures[0].file.as_deref(), Some("src/lib.rs"));
        assert_eq!(r.failures[0].message, "error[E0308]: mismatched types");
    }
}
