//! Fingerprints: the identity of a failure that survives reruns and small code changes, so
//! promptloop can tell when a failure it already learned a rule from comes back.
//!
//! A fingerprint hashes the failure type, the normalised test id and the shape of the error
//! (its class and its message with numbers, addresses, paths, quoted values and line numbers
//! blanked out). Two runs of the same broken test give the same fingerprint even when the
//! wrong value, the line or the temp directory differ.

use crate::failure::FailureContext;
use crate::testing::TestFailure;

/// The fingerprints of a failure: one per failing test, or one for the failure as a whole
/// when it has no tests (manual reports, semantic findings, runs without a report).
pub fn of_context(ctx: &FailureContext) -> Vec<String> {
    let mut prints: Vec<String> = if !ctx.tests.is_empty() {
        ctx.tests
            .iter()
            .map(|t| of_test(&ctx.failure_type, t))
            .collect()
    } else if !ctx.failing_ids.is_empty() {
        ctx.failing_ids
            .iter()
            .map(|id| hash(&[&ctx.failure_type, &normalise_id(id), ""]))
            .collect()
    } else {
        let what = ctx
            .description
            .as_deref()
            .or(ctx.context.as_deref())
            .unwrap_or(&ctx.test_summary);
        vec![hash(&[&ctx.failure_type, "", &shape(first_line(what))])]
    };
    prints.dedup();
    prints
}

/// The fingerprint of one failing test.
pub fn of_test(failure_type: &str, test: &TestFailure) -> String {
    let message = if test.message.trim().is_empty() {
        first_error_line(&test.evidence)
    } else {
        first_line(&test.message)
    };
    hash(&[failure_type, &normalise_id(&test.id), &shape(message)])
}

/// A test id without parameter values, line numbers or absolute directories.
pub fn normalise_id(id: &str) -> String {
    let id = strip_abs_dirs(id.trim());
    // `test_x[1-2]` and `test_x[3-4]` are the same test with other data.
    let id = match (id.find('['), id.ends_with(']')) {
        (Some(open), true) => format!("{}[{}]", &id[..open], shape(&id[open + 1..id.len() - 1])),
        _ => id,
    };
    blank_numbers(&id)
}

/// The error's shape: class and message with the variable parts blanked.
pub fn shape(message: &str) -> String {
    let mut text = message.trim().to_string();
    text = strip_abs_dirs(&text);
    text = blank_quoted(&text);
    text = blank_numbers(&text);
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    joined.chars().take(160).collect()
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The first line that looks like an error in evidence (`E   …`, `panic: …`, `Error: …`).
fn first_error_line(evidence: &str) -> &str {
    evidence
        .lines()
        .map(str::trim)
        .find(|l| {
            l.starts_with("E ")
                || l.starts_with("panic")
                || l.contains("Error")
                || l.contains("error")
        })
        .unwrap_or("")
}

/// Replaces absolute paths (`/tmp/x/y.py`, `C:\x`) by their last component.
fn strip_abs_dirs(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| "()[]{}'\",:;".contains(c));
            if core.starts_with('/') && core.len() > 1 && core[1..].contains('/') {
                let last = core.rsplit('/').next().unwrap_or(core);
                word.replacen(core, last, 1)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quoted literals become `"…"`: the value a test saw changes with the code, the shape of
/// the complaint does not.
fn blank_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            // A quote inside a word (`don't`) is an apostrophe.
            let word_before = out.chars().last().is_some_and(|p| p.is_alphanumeric());
            if c == '\'' && word_before {
                out.push(c);
                continue;
            }
            let mut closed = false;
            let mut inner = String::new();
            for n in chars.by_ref() {
                if n == c {
                    closed = true;
                    break;
                }
                inner.push(n);
            }
            if closed && inner.len() <= 200 {
                out.push(c);
                out.push('…');
                out.push(c);
            } else {
                out.push(c);
                out.push_str(&inner);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Numbers (decimal, hex addresses, `:12:5` positions) become `N`; digits that are part of
/// a name (`test_v2`) stay.
fn blank_numbers(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let prev = if i > 0 { Some(bytes[i - 1]) } else { None };
        let in_word = prev.is_some_and(|p| p.is_alphabetic() || p == '_');
        if c.is_ascii_digit() && !in_word {
            // 0x… addresses, decimals, exponents, digit runs.
            let mut j = i + 1;
            if c == '0' && j < bytes.len() && (bytes[j] == 'x' || bytes[j] == 'X') {
                j += 1;
                while j < bytes.len() && bytes[j].is_ascii_hexdigit() {
                    j += 1;
                }
            } else {
                while j < bytes.len()
                    && (bytes[j].is_ascii_digit()
                        || (bytes[j] == '.'
                            && j + 1 < bytes.len()
                            && bytes[j + 1].is_ascii_digit())
                        || bytes[j] == '_')
                {
                    j += 1;
                }
            }
            // `-1` and `1` are the same shape.
            if out.ends_with('-') && !out.ends_with("--") {
                let before = out.chars().rev().nth(1);
                if before.is_none_or(|b| !b.is_alphanumeric()) {
                    out.pop();
                }
            }
            out.push('N');
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// FNV-1a, 64 bits, as 16 hex digits: stable across versions and platforms, unlike
/// `std`'s hasher.
fn hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: &str, message: &str, line: u64) -> TestFailure {
        TestFailure {
            id: id.into(),
            kind: "failure".into(),
            file: Some("tests/t.py".into()),
            line: Some(line),
            message: message.into(),
            evidence: String::new(),
            captured_output: None,
        }
    }

    #[test]
    fn same_failure_with_other_values_lines_and_paths_matches() {
        let a = failure(
            "tests/test_c.py::test_div",
            "assert 0 is None\n +  where 0 = safe_divide(1, 0)",
            10,
        );
        let b = failure(
            "tests/test_c.py::test_div",
            "assert 0.0 is None\n +  where 0.0 = safe_divide(1, 0)",
            14,
        );
        assert_eq!(of_test("test_failure", &a), of_test("test_failure", &b));
        let go1 = failure(
            "example.com/calc::TestSub/neg",
            "boom at 0xc000085040 in /tmp/go-build123/x.go:13",
            13,
        );
        let go2 = failure(
            "example.com/calc::TestSub/neg",
            "boom at 0xc0000a1200 in /tmp/go-build999/x.go:15",
            15,
        );
        assert_eq!(of_test("test_failure", &go1), of_test("test_failure", &go2));
        let js1 = failure(
            "src/a.test.js › calc › adds",
            "expected -1 to be 3 // Object.is equality",
            3,
        );
        let js2 = failure(
            "src/a.test.js › calc › adds",
            "expected 7 to be 3 // Object.is equality",
            9,
        );
        assert_eq!(of_test("test_failure", &js1), of_test("test_failure", &js2));
    }

    #[test]
    fn different_tests_errors_or_types_differ() {
        let a = failure("t.py::test_a", "assert 0 is None", 1);
        let b = failure("t.py::test_b", "assert 0 is None", 1);
        let c = failure("t.py::test_a", "TypeError: unsupported operand", 1);
        let fa = of_test("test_failure", &a);
        assert_ne!(fa, of_test("test_failure", &b));
        assert_ne!(fa, of_test("test_failure", &c));
        assert_ne!(fa, of_test("scope_error", &a));
        assert_eq!(fa.len(), 16);
    }

    #[test]
    fn parametrised_ids_and_names_with_digits() {
        assert_eq!(
            normalise_id("t.py::test_x[1-2]"),
            normalise_id("t.py::test_x[3-40]")
        );
        assert_ne!(normalise_id("t.py::test_v2"), normalise_id("t.py::test_v3"));
        assert_eq!(shape("KeyError: 'user_42'"), "KeyError: '…'");
        assert_eq!(shape("expected -1 to be 3"), "expected N to be N");
    }
}
