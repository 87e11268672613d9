//! The teacher's answer → [`Rule`] parser, and [`Rule`] → markdown entry renderer.
//!
//! Teachers are LLMs, so the parser is deliberately lenient about *shape*
//! (markdown bullets in many spellings, JSON, code fences, prose around it)
//! and strict about *content* (every field present, non-empty, short), because
//! a bad rule written into the agent's instructions costs more than a retry.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Longest accepted `rule`, `when` or `why` value, in characters. Rules are
/// meant to be one or two sentences; anything longer is a teacher that
/// rambled, and it would bloat every future prompt.
pub const MAX_FIELD_CHARS: usize = 1000;

/// Longest accepted category, in characters (it becomes a `###` heading).
pub const MAX_CATEGORY_CHARS: usize = 100;

/// Longest accepted teacher answer, in bytes. Bounds the parser's work (the
/// JSON scan retries at every `{`), far above any sane answer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// One learned rule, as parsed from a teacher's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Optional grouping such as "Error Handling"; rendered as a `###` heading.
    pub category: Option<String>,
    /// The instruction itself ("Always return None …").
    pub rule: String,
    /// When the rule applies.
    pub when: String,
    /// Why the rule exists.
    pub why: String,
}

/// A field of a [`Rule`], named in parse errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The optional category.
    Category,
    /// The rule text.
    Rule,
    /// The "when" text.
    When,
    /// The "why" text.
    Why,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Category => "Category",
            Field::Rule => "Rule",
            Field::When => "When",
            Field::Why => "Why",
        })
    }
}

/// Why a teacher's answer could not be turned into a [`Rule`]. Messages are
/// lowercase fragments meant to follow "failed to …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The answer is empty or whitespace only.
    #[error("parse the teacher's answer: it is empty")]
    EmptyAnswer,
    /// The answer is larger than [`MAX_ANSWER_BYTES`].
    #[error("parse the teacher's answer: it is {len} bytes, more than the {max} allowed")]
    AnswerTooLong {
        /// Size of the answer in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Neither a `Rule:` line nor a JSON object with a `rule` key was found.
    #[error(
        "parse the teacher's answer: it contains no rule (no `Rule:` line and no JSON object with a \"rule\" key)"
    )]
    NoRule,
    /// A required field is absent.
    #[error("parse the teacher's answer: the rule has no `{0}` field")]
    MissingField(Field),
    /// A field is present but empty or whitespace only.
    #[error("parse the teacher's answer: the `{0}` field is empty")]
    EmptyField(Field),
    /// A JSON field holds something other than a string.
    #[error("parse the teacher's answer: the `{0}` field is not text")]
    NotText(Field),
    /// A field is longer than allowed.
    #[error(
        "parse the teacher's answer: the `{field}` field is {len} characters, more than the {max} allowed"
    )]
    TooLong {
        /// The offending field.
        field: Field,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Parses a teacher's answer into a [`Rule`].
///
/// Accepts the markdown entry format (`- **Rule**: …` / `**Rule:** …` /
/// `Rule: …`, with an optional `### Category` heading or `**Category**:` line
/// just above) and JSON objects (`{"rule": …, "when": …, "why": …}`, keys
/// case-insensitive, possibly nested one level as `{"rule": {…}}` or in a
/// `"rules"` array), fenced or not, with prose around. If several rules are
/// present, the first one in the text wins.
pub fn parse_answer(text: &str) -> Result<Rule, ParseError> {
    if text.len() > MAX_ANSWER_BYTES {
        return Err(ParseError::AnswerTooLong {
            len: text.len(),
            max: MAX_ANSWER_BYTES,
        });
    }
    if text.trim().is_empty() {
        return Err(ParseError::EmptyAnswer);
    }
    let md = markdown_candidate(text);
    let js = json_candidate(text);
    match (md, js) {
        // Both forms present: the one that starts first is "the first rule";
        // but a malformed first candidate should not hide a well-formed one.
        (Some((md_at, md_res)), Some((js_at, js_res))) => {
            let (first, second) = if js_at < md_at {
                (js_res, md_res)
            } else {
                (md_res, js_res)
            };
            match (first, second) {
                (Err(_), Ok(rule)) => Ok(rule),
                (first, _) => first,
            }
        }
        (Some((_, res)), None) | (None, Some((_, res))) => res,
        (None, None) => Err(ParseError::NoRule),
    }
}

/// Renders a rule as a markdown entry of the instruction file's managed
/// section, ending with a newline:
///
/// ```text
/// ### Error Handling
/// - **Rule**: …
/// - **When**: …
/// - **Why**: …
///   - **Source**: Learned on 2026-11-24 21:40 from test failure
/// ```
///
/// Every value is forced onto a single line (control characters and line
/// breaks become spaces), so no value can start a line of its own — and so
/// none can inject a `## ` heading or a code fence that would break the
/// file's structure.
pub fn render_entry(rule: &Rule, source: &str, learned_at: &str) -> String {
    let mut out = String::new();
    if let Some(category) = rule.category.as_deref() {
        // Leading '#'s would only change the heading level; drop them.
        let category = one_line(category.trim().trim_start_matches('#'));
        if !category.is_empty() {
            out.push_str("### ");
            out.push_str(&category);
            out.push('\n');
        }
    }
    for (label, value) in [
        ("Rule", &rule.rule),
        ("When", &rule.when),
        ("Why", &rule.why),
    ] {
        out.push_str("- **");
        out.push_str(label);
        out.push_str("**: ");
        out.push_str(&one_line(value));
        out.push('\n');
    }
    out.push_str("  - **Source**: Learned on ");
    out.push_str(&one_line(learned_at));
    out.push_str(" from ");
    out.push_str(&one_line(source));
    out.push('\n');
    out
}

/// The comparison key used to detect that a rule is already known: lowercase,
/// markdown emphasis (`*`, `` ` ``, word-edge `_`) removed, whitespace
/// collapsed, and trailing punctuation stripped.
pub fn normalized_key(rule_text: &str) -> String {
    let without_marks: String = rule_text
        .chars()
        .filter(|c| !matches!(c, '*' | '`'))
        .collect();
    let words: Vec<&str> = without_marks
        .split_whitespace()
        // `_emphasis_` only; `snake_case` keeps its inner underscores.
        .map(|w| w.trim_matches('_'))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.join(" ").to_lowercase();
    joined
        .trim_end_matches(|c: char| c.is_whitespace() || ".!?;:,…".contains(c))
        .to_string()
}

/// Collapses a value onto one line: control characters (newlines included)
/// become spaces, whitespace runs become one space, ends are trimmed.
pub(crate) fn one_line(value: &str) -> String {
    let spaced: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Markdown

/// What a `Label: value` line labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Category,
    Rule,
    When,
    Why,
    /// Some other bold key (`**Source**:`, `**Example**:`); it ends the
    /// previous value's continuation lines.
    Other,
}

/// Recognises a labelled line in any of the spellings LLMs produce:
/// `- **Rule**: v`, `* **Rule:** v`, `Rule: v`, `1. __Rule__ : v`,
/// `> **Rule**: v`, `**Rule 1**: v`, `**Rule: v**`. Returns the label and the
/// trimmed value (possibly empty).
pub(crate) fn parse_label(line: &str) -> Option<(Label, &str)> {
    let mut s = line.trim_start();
    while let Some(rest) = s.strip_prefix('>') {
        s = rest.trim_start();
    }
    s = strip_list_marker(s);
    let open_len = s.bytes().take_while(|b| *b == b'*' || *b == b'_').count();
    if open_len > 3 {
        return None;
    }
    let (open, after_open) = s.split_at(open_len);
    let Some((label, rest)) = known_label(after_open) else {
        return other_label(open, after_open);
    };
    let mut r = rest.trim_start();
    let mut closed = open.is_empty();
    if !closed && let Some(x) = r.strip_prefix(open) {
        // `**Rule**:`
        r = x.trim_start();
        closed = true;
    }
    let mut r = r.strip_prefix(':')?;
    if !closed && let Some(x) = r.trim_start().strip_prefix(open) {
        // `**Rule:**`
        r = x;
        closed = true;
    }
    let mut value = r.trim();
    if !closed && let Some(x) = value.strip_suffix(open) {
        // `**Rule: the whole line in bold**`
        value = x.trim_end();
    }
    Some((label, value))
}

/// Matches a known label word at the start of `s` (case-insensitive, whole
/// word, optionally numbered as in "Rule 1"), returning what follows it.
fn known_label(s: &str) -> Option<(Label, &str)> {
    const WORDS: [(&str, Label); 4] = [
        ("category", Label::Category),
        ("rule", Label::Rule),
        ("when", Label::When),
        ("why", Label::Why),
    ];
    for (word, label) in WORDS {
        let Some(head) = s.get(..word.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(word) {
            continue;
        }
        let rest = &s[word.len()..];
        if rest.chars().next().is_some_and(char::is_alphanumeric) {
            continue;
        }
        // "Rule 1:" / "Rule #2:" — numbered rules from list-happy teachers.
        let trimmed = rest.trim_start().trim_start_matches('#');
        let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
        let rest = if digits > 0 { &trimmed[digits..] } else { rest };
        return Some((label, rest));
    }
    None
}

/// A bold key other than the known ones: `**Key**:` or `**Key:**`.
fn other_label<'a>(open: &str, s: &'a str) -> Option<(Label, &'a str)> {
    if open.len() < 2 {
        return None;
    }
    let key_end = s.find(open)?;
    let key = &s[..key_end];
    if key.trim().is_empty() || key.len() > 60 {
        return None;
    }
    let after = &s[key_end + open.len()..];
    if key.trim_end().ends_with(':') || after.trim_start().starts_with(':') {
        Some((Label::Other, ""))
    } else {
        None
    }
}

/// Strips one list marker (`-`, `*`, `+`, `•`, `1.`, `1)`) followed by
/// whitespace. `**bold` is not a marker: the `*` must be followed by a space.
fn strip_list_marker(s: &str) -> &str {
    let mut chars = s.chars();
    if let Some(c) = chars.next()
        && matches!(c, '-' | '*' | '+' | '•')
        && chars.next().is_some_and(char::is_whitespace)
    {
        return s[c.len_utf8()..].trim_start();
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &s[digits..];
        if let Some(after) = rest.strip_prefix(['.', ')'])
            && after.starts_with(char::is_whitespace)
        {
            return after.trim_start();
        }
    }
    s
}

/// A code fence line (lenient: any indentation).
fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// An ATX heading: returns its text without the `#`s.
fn heading(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let level = t.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim())
}

/// Splits text into lines with their byte offsets, without `\n` / `\r\n`.
fn lines_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push((offset, line));
        offset += raw.len();
    }
    out
}

/// Finds the first `Rule:` line and parses the entry around it.
fn markdown_candidate(text: &str) -> Option<(usize, Result<Rule, ParseError>)> {
    let lines = lines_with_offsets(text);
    let idx = lines
        .iter()
        .position(|(_, l)| matches!(parse_label(l), Some((Label::Rule, _))))?;
    Some((lines[idx].0, markdown_entry(&lines, idx)))
}

/// Parses the entry whose `Rule:` line is `lines[idx]`: following labelled
/// lines fill When / Why; indented lines continue the previous value; the
/// entry ends at a second `Rule:`, a heading or a code fence.
fn markdown_entry(lines: &[(usize, &str)], idx: usize) -> Result<Rule, ParseError> {
    let mut category = category_before(lines, idx);
    let first = match parse_label(lines[idx].1) {
        Some((_, value)) => value,
        None => "",
    };
    let mut rule = first.to_string();
    let mut when: Option<String> = None;
    let mut why: Option<String> = None;
    let mut current = Some(Field::Rule);
    for &(_, line) in &lines[idx + 1..] {
        if line.trim().is_empty() {
            current = None;
            continue;
        }
        if is_fence(line) || heading(line).is_some() {
            break;
        }
        match parse_label(line) {
            Some((Label::Rule, _)) => break,
            Some((Label::When, value)) => {
                if when.is_some() {
                    break;
                }
                when = Some(value.to_string());
                current = Some(Field::When);
            }
            Some((Label::Why, value)) => {
                if why.is_some() {
                    break;
                }
                why = Some(value.to_string());
                current = Some(Field::Why);
            }
            Some((Label::Category, value)) => {
                if category.is_none() && !value.trim().is_empty() {
                    category = Some(value.to_string());
                }
                current = None;
            }
            Some((Label::Other, _)) => current = None,
            None => {
                let slot = match current {
                    Some(Field::Rule) => Some(&mut rule),
                    Some(Field::When) => when.as_mut(),
                    Some(Field::Why) => why.as_mut(),
                    _ => None,
                };
                let Some(slot) = slot else { continue };
                // Indented lines continue the value; so does any text line
                // when the label had nothing after it yet (`**Rule**:` ⏎ text).
                if line.starts_with([' ', '\t']) || slot.trim().is_empty() {
                    slot.push(' ');
                    slot.push_str(line.trim());
                } else {
                    current = None;
                }
            }
        }
    }
    finish(category, rule, when, why)
}

/// The category of the entry starting at `lines[idx]`: the nearest non-blank
/// line above it, if that is a heading or a `Category:` line.
fn category_before(lines: &[(usize, &str)], idx: usize) -> Option<String> {
    for &(_, line) in lines[..idx].iter().rev() {
        if line.trim().is_empty() || is_fence(line) {
            continue;
        }
        if let Some(text) = heading(line) {
            return category_from_heading(text);
        }
        if let Some((Label::Category, value)) = parse_label(line) {
            return Some(value.to_string());
        }
        return None;
    }
    None
}

/// `### Error Handling`, `### Category: Error Handling` and
/// `### **Error Handling**` all give "Error Handling"; headings that name the
/// rule itself or the managed section are not categories.
fn category_from_heading(text: &str) -> Option<String> {
    let value = match parse_label(text) {
        Some((Label::Category, value)) => value,
        _ => text,
    };
    let value = value.trim().trim_matches(['*', '_']).trim();
    const NOT_CATEGORIES: [&str; 9] = [
        "rule",
        "rules",
        "new rule",
        "the rule",
        "proposed rule",
        "suggested rule",
        "learned rule",
        "learned rules",
        "learned rules & patterns",
    ];
    if value.is_empty() || NOT_CATEGORIES.iter().any(|n| value.eq_ignore_ascii_case(n)) {
        None
    } else {
        Some(value.to_string())
    }
}

/// Validates and normalises the collected fields into a [`Rule`].
fn finish(
    category: Option<String>,
    rule: String,
    when: Option<String>,
    why: Option<String>,
) -> Result<Rule, ParseError> {
    let rule = required(Field::Rule, Some(rule))?;
    let when = required(Field::When, when)?;
    let why = required(Field::Why, why)?;
    let category = category.map(|c| one_line(&c)).filter(|c| !c.is_empty());
    if let Some(c) = &category {
        check_len(Field::Category, c, MAX_CATEGORY_CHARS)?;
    }
    Ok(Rule {
        category,
        rule,
        when,
        why,
    })
}

fn required(field: Field, value: Option<String>) -> Result<String, ParseError> {
    let value = one_line(&value.ok_or(ParseError::MissingField(field))?);
    if value.is_empty() {
        return Err(ParseError::EmptyField(field));
    }
    check_len(field, &value, MAX_FIELD_CHARS)?;
    Ok(value)
}

fn check_len(field: Field, value: &str, max: usize) -> Result<(), ParseError> {
    let len = value.chars().count();
    if len > max {
        return Err(ParseError::TooLong { field, len, max });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// JSON

/// Finds the first JSON object in the text that holds a rule. Every `{` is a
/// possible start, so JSON inside fences or prose is found without having to
/// understand the prose.
fn json_candidate(text: &str) -> Option<(usize, Result<Rule, ParseError>)> {
    let mut pos = 0;
    while let Some(rel) = text[pos..].find('{') {
        let start = pos + rel;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                if let Some(result) = json_rule(&value, None, 0) {
                    return Some((start, result));
                }
                // Skip the whole object: its inner `{`s were part of it.
                pos = start + stream.byte_offset().max(1);
            }
            _ => pos = start + 1,
        }
    }
    None
}

/// Case-insensitive key lookup (teachers write "Rule", "WHY", …).
fn get<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Extracts a rule from a JSON value, looking through wrappers such as
/// `{"rule": {…}}`, `{"rules": [{…}, …]}` or `{"learned": {…}}`.
fn json_rule(
    value: &Value,
    outer_category: Option<String>,
    depth: usize,
) -> Option<Result<Rule, ParseError>> {
    if depth > 4 {
        return None;
    }
    match value {
        Value::Object(map) => {
            let category = match get(map, "category") {
                Some(Value::String(c)) => Some(c.clone()),
                _ => outer_category,
            };
            if let Some(rule) = get(map, "rule") {
                return match rule {
                    Value::String(text) => Some(json_fields(map, category, text)),
                    Value::Object(_) | Value::Array(_) => json_rule(rule, category, depth + 1)
                        .or(Some(Err(ParseError::NotText(Field::Rule)))),
                    Value::Null => Some(Err(ParseError::EmptyField(Field::Rule))),
                    _ => Some(Err(ParseError::NotText(Field::Rule))),
                };
            }
            map.values()
                .filter(|v| v.is_object() || v.is_array())
                .find_map(|v| json_rule(v, category.clone(), depth + 1))
        }
        Value::Array(items) => items
            .iter()
            .find_map(|v| json_rule(v, outer_category.clone(), depth + 1)),
        _ => None,
    }
}

fn json_fields(
    map: &Map<String, Value>,
    category: Option<String>,
    rule: &str,
) -> Result<Rule, ParseError> {
    let text = |field: Field, name: &str| match get(map, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ParseError::NotText(field)),
    };
    let when = text(Field::When, "when")?;
    let why = text(Field::Why, "why")?;
    finish(category, rule.to_string(), when, why)
}

/// The Source line's phrase: "test failure", "planning error (reported by hand)".
pub fn source_phrase(failure_type: &str, source: &str) -> String {
    let phrase = failure_type.replace('_', " ");
    if source == "manual" {
        format!("{phrase} (reported by hand)")
    } else {
        phrase
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(category: Option<&str>, r: &str, when: &str, why: &str) -> Rule {
        Rule {
            category: category.map(str::to_string),
            rule: r.into(),
            when: when.into(),
            why: why.into(),
        }
    }

    fn prototype() -> Rule {
        rule(
            Some("Error Handling"),
            "Always return None (not 0) when a function should indicate \"no valid result\"",
            "Implementing safe/fallback versions of operations that can fail",
            "Returning 0 can be confused with a valid result; None clearly indicates absence",
        )
    }

    const PROTOTYPE: &str = "### Error Handling
- **Rule**: Always return None (not 0) when a function should indicate \"no valid result\"
- **When**: Implementing safe/fallback versions of operations that can fail
- **Why**: Returning 0 can be confused with a valid result; None clearly indicates absence
";

    #[test]
    fn markdown_prototype_form() {
        assert_eq!(parse_answer(PROTOTYPE), Ok(prototype()));
    }

    #[test]
    fn markdown_fenced_with_prose() {
        let text = format!(
            "Looking at the failure, the agent returned 0 from `safe_divide`.\n\nHere is the rule:\n\n```markdown\n{PROTOTYPE}```\n\nThis should prevent the issue next time."
        );
        assert_eq!(parse_answer(&text), Ok(prototype()));
    }

    #[test]
    fn markdown_plain_fence_crlf() {
        let text = format!("```\r\n{}```\r\n", PROTOTYPE.replace('\n', "\r\n"));
        assert_eq!(parse_answer(&text), Ok(prototype()));
    }

    #[test]
    fn markdown_colon_inside_bold_no_dash() {
        let text = "### Error Handling\n**Rule:** Always return None (not 0) when a function should indicate \"no valid result\"\n**When:** Implementing safe/fallback versions of operations that can fail\n**Why:** Returning 0 can be confused with a valid result; None clearly indicates absence\n";
        assert_eq!(parse_answer(text), Ok(prototype()));
    }

    #[test]
    fn markdown_plain_labels_star_bullets_extra_spaces() {
        let text = "*   Rule:    Always   close files with a context manager\n*   When: Reading or writing files in Python\n*   Why :  Leaked handles break tests on Windows  \n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Always close files with a context manager",
                "Reading or writing files in Python",
                "Leaked handles break tests on Windows"
            ))
        );
    }

    #[test]
    fn markdown_value_continues_on_indented_line() {
        let text = "- **Rule**: Validate inputs before dividing,\n  including zero and NaN\n- **When**: Writing arithmetic helpers\n- **Why**: The tests feed edge cases\n    that the happy path never sees\n  - **Source**: Learned on 2026-01-01 10:00 from test failure\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Validate inputs before dividing, including zero and NaN",
                "Writing arithmetic helpers",
                "The tests feed edge cases that the happy path never sees"
            ))
        );
    }

    #[test]
    fn markdown_category_heading_with_prefix() {
        let text = "### Category: Testing\n- **Rule**: Run the full test suite before finishing\n- **When**: Any change to shared code\n- **Why**: Local tests miss regressions elsewhere\n";
        assert_eq!(
            parse_answer(text).map(|r| r.category),
            Ok(Some("Testing".into()))
        );
    }

    #[test]
    fn markdown_bold_category_line() {
        let text = "**Category**: API Design\n- **Rule**: Keep public functions total\n- **When**: Designing library APIs\n- **Why**: Panics surprise callers\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                Some("API Design"),
                "Keep public functions total",
                "Designing library APIs",
                "Panics surprise callers"
            ))
        );
    }

    #[test]
    fn markdown_category_after_fields_and_numbered_list() {
        let text = "1. **Rule**: Pin dependency versions\n2. **When**: Adding a dependency\n3. **Why**: Unpinned versions break builds\n4. **Category**: Build\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                Some("Build"),
                "Pin dependency versions",
                "Adding a dependency",
                "Unpinned versions break builds"
            ))
        );
    }

    #[test]
    fn markdown_analysis_heading_is_not_a_category() {
        let text = "## Analysis\nThe agent forgot to handle empty input.\n\n- **Rule**: Handle empty input explicitly\n- **When**: Parsing user data\n- **Why**: Empty input is the most common edge case\n";
        assert_eq!(parse_answer(text).map(|r| r.category), Ok(None));
        let text = "## Learned Rules & Patterns\n- **Rule**: A\n- **When**: B\n- **Why**: C\n";
        assert_eq!(parse_answer(text).map(|r| r.category), Ok(None));
    }

    #[test]
    fn markdown_first_of_several_rules() {
        let text = format!(
            "{PROTOTYPE}\n### Testing\n- **Rule**: Second rule\n- **When**: Never\n- **Why**: Not taken\n"
        );
        assert_eq!(parse_answer(&text), Ok(prototype()));
    }

    #[test]
    fn markdown_value_on_next_line_and_blank_lines_between_fields() {
        let text = "**Rule**:\nPrefer early returns\n\n**When**: Functions with many branches\n\n**Why**: Nesting hides the happy path\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Prefer early returns",
                "Functions with many branches",
                "Nesting hides the happy path"
            ))
        );
    }

    #[test]
    fn markdown_whole_line_bold_and_underscore_labels() {
        let text = "**Rule: Use pathlib for paths**\n__When__: Manipulating file paths\n> **Why**: String concatenation breaks on Windows\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Use pathlib for paths",
                "Manipulating file paths",
                "String concatenation breaks on Windows"
            ))
        );
    }

    #[test]
    fn markdown_realistic_answer_with_trailing_prose_and_notes() {
        let text = "Based on the test output, the agent compared floats with `==`.\n\n---\n\n### Category: Numerics\n\n**Rule:** Compare floats with a tolerance (`math.isclose`)\n**When:** Asserting on computed floating-point values\n**Why:** Rounding makes exact equality fail on correct code\nThis should make the retry pass.\n\n**Note**: the agent also ignored a warning.\n";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                Some("Numerics"),
                "Compare floats with a tolerance (`math.isclose`)",
                "Asserting on computed floating-point values",
                "Rounding makes exact equality fail on correct code"
            ))
        );
    }

    #[test]
    fn json_with_extra_keys_and_yaml_like_answer() {
        let text = r#"{"category": "Git", "rule": "Commit only files you changed", "when": "Finishing a task", "why": "Stray files pollute the diff", "confidence": 0.9, "examples": ["git add -p"]}"#;
        assert_eq!(
            parse_answer(text).map(|r| r.rule),
            Ok("Commit only files you changed".into())
        );
        let yaml = "```yaml\ncategory: Git\nrule: Commit only files you changed\nwhen: Finishing a task\nwhy: Stray files pollute the diff\n```";
        assert_eq!(
            parse_answer(yaml),
            Ok(rule(
                Some("Git"),
                "Commit only files you changed",
                "Finishing a task",
                "Stray files pollute the diff"
            ))
        );
    }

    #[test]
    fn json_plain() {
        let text = r#"{"category":"Error Handling","rule":"Always return None (not 0) when a function should indicate \"no valid result\"","when":"Implementing safe/fallback versions of operations that can fail","why":"Returning 0 can be confused with a valid result; None clearly indicates absence"}"#;
        assert_eq!(parse_answer(text), Ok(prototype()));
    }

    #[test]
    fn json_fenced_with_prose_and_caps_keys() {
        let text = "Sure! Here's the rule:\n```json\n{\n  \"Category\": null,\n  \"RULE\": \"Check for None before indexing\",\n  \"When\": \"Accessing optional results\",\n  \"Why\": \"Indexing None raises TypeError\"\n}\n```\nHope this helps.";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Check for None before indexing",
                "Accessing optional results",
                "Indexing None raises TypeError"
            ))
        );
    }

    #[test]
    fn json_nested_and_arrays() {
        let nested = r#"{"rule": {"category": "Testing", "rule": "Mock the clock", "when": "Testing time-dependent code", "why": "Real time makes tests flaky"}}"#;
        let expected = rule(
            Some("Testing"),
            "Mock the clock",
            "Testing time-dependent code",
            "Real time makes tests flaky",
        );
        assert_eq!(parse_answer(nested), Ok(expected.clone()));
        let listed = r#"{"rules": [{"category": "Testing", "rule": "Mock the clock", "when": "Testing time-dependent code", "why": "Real time makes tests flaky"}, {"rule": "x", "when": "y", "why": "z"}]}"#;
        assert_eq!(parse_answer(listed), Ok(expected.clone()));
        let bare_array = format!("[{}]", &nested[9..nested.len() - 1]);
        assert_eq!(parse_answer(&bare_array), Ok(expected));
    }

    #[test]
    fn json_after_prose_with_braces_and_trailing_period() {
        let text = "The code used `{}` formatting wrongly. Rule object: {\"rule\": \"Use f-strings\", \"when\": \"Formatting strings\", \"why\": \"They are clearer\"}.";
        assert_eq!(
            parse_answer(text),
            Ok(rule(
                None,
                "Use f-strings",
                "Formatting strings",
                "They are clearer"
            ))
        );
    }

    #[test]
    fn json_values_with_newlines_are_collapsed() {
        let text =
            r#"{"rule": "  Close   the\nsocket ", "when": "Always\r\n", "why": "Leaks\tfds"}"#;
        assert_eq!(
            parse_answer(text),
            Ok(rule(None, "Close the socket", "Always", "Leaks fds"))
        );
    }

    #[test]
    fn earliest_form_wins_and_malformed_first_does_not_hide_good_one() {
        let text = "Rule: first\nWhen: a\nWhy: b\n\n{\"rule\": \"second\", \"when\": \"c\", \"why\": \"d\"}";
        assert_eq!(parse_answer(text).map(|r| r.rule), Ok("first".into()));
        let text = "{\"rule\": \"first\", \"when\": \"c\", \"why\": \"d\"}\nRule: second\nWhen: a\nWhy: b\n";
        assert_eq!(parse_answer(text).map(|r| r.rule), Ok("first".into()));
        let text =
            "Rule: see the JSON below\n{\"rule\": \"real\", \"when\": \"c\", \"why\": \"d\"}";
        assert_eq!(parse_answer(text).map(|r| r.rule), Ok("real".into()));
    }

    #[test]
    fn failures() {
        assert_eq!(parse_answer(""), Err(ParseError::EmptyAnswer));
        assert_eq!(parse_answer("  \n\t "), Err(ParseError::EmptyAnswer));
        assert_eq!(
            parse_answer("I could not determine a useful rule from this failure."),
            Err(ParseError::NoRule)
        );
        assert_eq!(
            parse_answer("- **When**: a\n- **Why**: b\n"),
            Err(ParseError::NoRule)
        );
        assert_eq!(
            parse_answer("- **Rule**: a\n- **When**: b\n"),
            Err(ParseError::MissingField(Field::Why))
        );
        assert_eq!(
            parse_answer("- **Rule**: a\n- **Why**: b\n"),
            Err(ParseError::MissingField(Field::When))
        );
        assert_eq!(
            parse_answer("- **Rule**:   \n- **When**: b\n- **Why**: c\n"),
            Err(ParseError::EmptyField(Field::Rule))
        );
        assert_eq!(
            parse_answer("- **Rule**: a\n- **When**: b\n- **Why**:\n"),
            Err(ParseError::EmptyField(Field::Why))
        );
        assert_eq!(
            parse_answer(r#"{"rule": "a", "when": "b"}"#),
            Err(ParseError::MissingField(Field::Why))
        );
        assert_eq!(
            parse_answer(r#"{"rule": "a", "when": "  ", "why": "c"}"#),
            Err(ParseError::EmptyField(Field::When))
        );
        assert_eq!(
            parse_answer(r#"{"rule": "a", "when": 3, "why": "c"}"#),
            Err(ParseError::NotText(Field::When))
        );
        assert_eq!(
            parse_answer(r#"{"rule": null, "when": "b", "why": "c"}"#),
            Err(ParseError::EmptyField(Field::Rule))
        );
        // "Rule of thumb:" is prose, not a label.
        assert_eq!(
            parse_answer("Rule of thumb: test more.\nWhy: because"),
            Err(ParseError::NoRule)
        );
    }

    #[test]
    fn absurd_lengths_are_rejected() {
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        assert_eq!(
            parse_answer(&format!("Rule: {long}\nWhen: a\nWhy: b")),
            Err(ParseError::TooLong {
                field: Field::Rule,
                len: MAX_FIELD_CHARS + 1,
                max: MAX_FIELD_CHARS
            })
        );
        let ok = "é".repeat(MAX_FIELD_CHARS); // counted in chars, not bytes
        assert!(parse_answer(&format!("Rule: {ok}\nWhen: a\nWhy: b")).is_ok());
        assert!(matches!(
            parse_answer(&" ".repeat(MAX_ANSWER_BYTES + 1)),
            Err(ParseError::AnswerTooLong { .. })
        ));
    }

    #[test]
    fn error_messages_read_after_failed_to() {
        let msg = ParseError::MissingField(Field::Why).to_string();
        assert_eq!(
            msg,
            "parse the teacher's answer: the rule has no `Why` field"
        );
    }

    #[test]
    fn render_matches_prototype_format() {
        let out = render_entry(&prototype(), "test failure", "2026-11-24 21:40");
        assert_eq!(
            out,
            format!("{PROTOTYPE}  - **Source**: Learned on 2026-11-24 21:40 from test failure\n")
        );
        let mut no_cat = prototype();
        no_cat.category = None;
        let out = render_entry(&no_cat, "test failure", "2026-11-24 21:40");
        assert!(out.starts_with("- **Rule**: Always"));
    }

    #[test]
    fn render_cannot_break_structure() {
        let evil = Rule {
            category: Some("## Injected\n# Title".into()),
            rule: "a\n## Learned Rules & Patterns\nb".into(),
            when: "```\ncode".into(),
            why: "c\r\n# H1\u{2028}d\u{85}e".into(),
        };
        let out = render_entry(&evil, "test\nfailure", "2026-01-01\n## x");
        for line in out.lines() {
            assert!(
                line.starts_with("### ") || line.starts_with("- **") || line.starts_with("  - **"),
                "unexpected line {line:?}"
            );
        }
        assert_eq!(out.lines().count(), 5);
        assert!(out.starts_with("### Injected # Title\n"));
        // And it parses back to the sanitized values.
        let back = parse_answer(&out);
        assert_eq!(
            back.map(|r| r.rule),
            Ok("a ## Learned Rules & Patterns b".into())
        );
    }

    #[test]
    fn render_then_parse_round_trips() {
        let out = render_entry(&prototype(), "test failure", "2026-11-24 21:40");
        assert_eq!(parse_answer(&out), Ok(prototype()));
    }

    #[test]
    fn normalized_key_variants() {
        let k = normalized_key("Always return `None` (not 0).");
        assert_eq!(k, "always return none (not 0)");
        assert_eq!(normalized_key("  ALWAYS   return **None** (not 0)!!  "), k);
        assert_eq!(normalized_key("always return _None_\n(not 0)"), k);
        assert_eq!(
            normalized_key("use snake_case names"),
            "use snake_case names"
        );
        assert_ne!(normalized_key("Always return None"), k);
    }

    #[test]
    fn label_spellings() {
        for line in [
            "- **Rule**: x",
            "**Rule:** x",
            "* **Rule** : x",
            "Rule: x",
            "rule:x",
            "+ __Rule__: x",
            "1) *Rule*: x",
            "**Rule 2**: x",
            "  - **RULE:**   x  ",
        ] {
            assert_eq!(parse_label(line), Some((Label::Rule, "x")), "{line}");
        }
        assert_eq!(parse_label("Rules: x"), None);
        assert_eq!(parse_label("Ruler: x"), None);
        assert_eq!(
            parse_label("- **Source**: y").map(|l| l.0),
            Some(Label::Other)
        );
        assert_eq!(parse_label("---"), None);
    }

    #[test]
    fn rule_serde_round_trip() {
        let json = serde_json::to_string(&prototype()).unwrap();
        let back: Rule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, prototype());
    }
}
