//! A teacher that needs no network: it writes a specific rule from the structured evidence
//! (the failing test, what it expected, what the code gave). Weaker than an LLM at
//! generalising, but never vague, and it answers in the same format, so the same parser and
//! writer handle it.

use super::{Lesson, Teacher, TeacherError, TeacherReply};
use crate::failure::FailureContext;
use crate::process::CancelToken;

/// The offline teacher.
pub struct OfflineTeacher;

impl Teacher for OfflineTeacher {
    fn name(&self) -> String {
        "offline".into()
    }

    fn ask(
        &self,
        _lesson: &Lesson,
        failure: &FailureContext,
        _follow_up: Option<(&str, &str)>,
        _cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        Ok(TeacherReply {
            text: answer(failure),
            model: None,
            input_tokens: None,
            output_tokens: None,
        })
    }
}

fn answer(failure: &FailureContext) -> String {
    if let Some(test) = failure.tests.first() {
        let evidence = Evidence::read(&test.evidence, &test.message);
        let requirement = evidence
            .statement
            .as_deref()
            .map(|s| s.trim_start_matches("assert ").trim())
            .map(|s| format!(": it requires `{s}`"))
            .unwrap_or_default();
        let subject = evidence
            .callee
            .as_deref()
            .map(|c| format!("Changing `{c}` or the code `{}` exercises", test.id))
            .unwrap_or_else(|| format!("Changing code that `{}` exercises", test.id));
        let more = match failure.tests.len() {
            1 => String::new(),
            2 => " (1 other test failed too)".to_string(),
            n => format!(" ({} other tests failed too)", n - 1),
        };
        let error = evidence
            .error
            .unwrap_or_else(|| first_line(&test.message).to_string());
        return format!(
            "Analysis: the change left `{id}` failing with `{error}`.\n\n\
             ### Test expectations\n\
             - **Rule**: Keep `{id}` passing{requirement}.\n\
             - **When**: {subject}.\n\
             - **Why**: An earlier attempt failed it with `{error}`{where_}{more}.\n",
            id = test.id,
            where_ = evidence
                .where_clause
                .map(|w| format!(" ({w})"))
                .unwrap_or_default(),
        );
    }
    if let Some(id) = failure.failing_ids.first() {
        let cmd = failure.test_command.as_deref().unwrap_or("the tests");
        let last = failure
            .test_summary
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .trim_matches('=')
            .trim();
        return format!(
            "Analysis: the change left `{id}` failing.\n\n\
             ### Test expectations\n\
             - **Rule**: Run `{cmd}` and make `{id}` pass before finishing.\n\
             - **When**: Working on the task \"{task}\".\n\
             - **Why**: An earlier attempt ended with {last}.\n",
            task = first_line(&failure.task),
            last = if last.is_empty() {
                "failing tests"
            } else {
                last
            },
        );
    }
    if let (Some(description), context) = (&failure.description, &failure.context) {
        let rule = context
            .as_deref()
            .map(first_line)
            .filter(|c| !c.is_empty())
            .unwrap_or(first_line(description));
        return format!(
            "Analysis: reported by hand as {kind}.\n\n\
             ### {category}\n\
             - **Rule**: {rule}\n\
             - **When**: Working on tasks like \"{task}\".\n\
             - **Why**: Otherwise: {what}.\n",
            kind = failure.failure_type,
            category = category_of(&failure.failure_type),
            task = first_line(&failure.task),
            what = first_line(description).trim_end_matches('.'),
        );
    }
    let cmd = failure.test_command.as_deref().unwrap_or("the tests");
    let last = failure
        .test_summary
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the tests failed")
        .trim();
    format!(
        "Analysis: the tests failed without a per-test report.\n\n\
         ### Verification\n\
         - **Rule**: Run `{cmd}` and read its whole output before finishing.\n\
         - **When**: Working on the task \"{task}\".\n\
         - **Why**: An earlier attempt ended with: {last}.\n",
        task = first_line(&failure.task),
    )
}

fn category_of(failure_type: &str) -> String {
    let words: Vec<String> = failure_type
        .trim_end_matches("_error")
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    words.join(" ")
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// What pytest-style evidence says.
struct Evidence {
    /// The failing source line (`assert safe_divide(1, 0) is None`).
    statement: Option<String>,
    /// The first `E` line (`assert 0 is None`).
    error: Option<String>,
    /// pytest's `where` explanation (`0 = safe_divide(1, 0)`).
    where_clause: Option<String>,
    /// The function the `where` clause names (`safe_divide`).
    callee: Option<String>,
}

impl Evidence {
    fn read(evidence: &str, message: &str) -> Evidence {
        let lines: Vec<&str> = evidence.lines().collect();
        let first_e = lines.iter().position(|l| l.trim_start().starts_with("E "));
        let error = first_e
            .map(|i| lines[i].trim_start()[1..].trim().to_string())
            .or_else(|| (!message.trim().is_empty()).then(|| first_line(message).to_string()));
        let statement = first_e.and_then(|i| {
            lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim().trim_start_matches('>').trim())
                .find(|l| !(l.is_empty() || l.contains(".py:") && l.contains(": in ")))
                .map(str::to_string)
        });
        let where_clause = lines
            .iter()
            .map(|l| l.trim_start().trim_start_matches('E').trim())
            .find_map(|l| {
                l.strip_prefix("+  where ")
                    .or_else(|| l.strip_prefix("+ where "))
            })
            .map(str::to_string);
        let callee = where_clause.as_deref().and_then(|w| {
            let call = w.split(" = ").nth(1)?;
            let name = call.split('(').next()?.trim();
            (!name.is_empty() && call.contains('(')).then(|| name.to_string())
        });
        Evidence {
            statement,
            error,
            where_clause,
            callee,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format::parse_answer;
    use crate::testing::TestFailure;

    fn ctx(tests: Vec<TestFailure>) -> FailureContext {
        FailureContext {
            id: "f".into(),
            failure_type: "test_failure".into(),
            source: "pytest".into(),
            task: "Fix safe_divide".into(),
            project_dir: "/p".into(),
            run_id: None,
            attempt: None,
            captured_at: String::new(),
            test_command: Some("pytest tests/".into()),
            tests,
            failing_ids: vec![],
            test_summary: String::new(),
            diff: String::new(),
            agent_status: None,
            agent_message: None,
            description: None,
            context: None,
        }
    }

    #[test]
    fn rule_names_the_test_the_requirement_and_what_it_got() {
        let t = TestFailure {
            id: "tests/test_calculator.py::test_safe_divide_by_zero".into(),
            kind: "failure".into(),
            file: Some("tests/test_calculator.py".into()),
            line: Some(10),
            message: "assert 0 is None".into(),
            evidence: "tests/test_calculator.py:12: in test_safe_divide_by_zero\n    assert safe_divide(1, 0) is None\nE   assert 0 is None\nE    +  where 0 = safe_divide(1, 0)".into(),
            captured_output: None,
        };
        let rule = parse_answer(&answer(&ctx(vec![t]))).unwrap();
        assert!(rule.rule.contains("test_safe_divide_by_zero"), "{rule:?}");
        assert!(
            rule.rule.contains("`safe_divide(1, 0) is None`"),
            "{rule:?}"
        );
        assert!(rule.when.contains("`safe_divide`"), "{rule:?}");
        assert!(rule.why.contains("assert 0 is None"), "{rule:?}");
    }

    #[test]
    fn without_a_report_it_uses_the_summary_ids() {
        let mut c = ctx(vec![]);
        c.failing_ids = vec!["tests/t.py::test_a".into()];
        c.test_summary = "FAILED tests/t.py::test_a\n=== 1 failed in 0.1s ===".into();
        let rule = parse_answer(&answer(&c)).unwrap();
        assert!(rule.rule.contains("tests/t.py::test_a"));
        assert!(rule.why.contains("1 failed in 0.1s"));
    }
}
