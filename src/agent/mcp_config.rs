//! Registering an MCP server in an agent CLI's own configuration file, and removing it
//! again, without touching anything else in the file.
//!
//! - JSON (Claude Code's `.mcp.json` and `~/.claude.json`, Gemini CLI's `settings.json`,
//!   comments allowed): the server is one member of the root's `mcpServers` object.
//! - TOML (Codex CLI's `config.toml`): the server is the table `[mcp_servers.NAME]`.
//!
//! The edits are made in the text: a member is inserted after the last one (or a table
//! appended at the end), and removing it deletes exactly what was inserted, so an install
//! followed by an uninstall gives back the same bytes. Every edit is checked by parsing the
//! result: the document must equal the old one with the entry added (or removed), else the
//! edit is refused and nothing is written.

use std::ops::Range;

use jsonc_parser::ast::{Object, ObjectProp, Value as Ast};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};
use serde_json::Value;

/// The key of the servers object in JSON configs.
pub const JSON_KEY: &str = "mcpServers";
/// The table of servers in Codex's TOML config.
pub const TOML_KEY: &str = "mcp_servers";

/// Why a file cannot be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file does not parse.
    #[error("it is not valid {format}: {message}")]
    Parse {
        /// JSON or TOML.
        format: &'static str,
        /// The parser's words.
        message: String,
    },
    /// The file parses but has a shape the edit cannot handle safely.
    #[error("{0}; edit it by hand")]
    Shape(String),
}

/// An edited document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The new text.
    pub text: String,
    /// The install added the servers object itself (JSON), not only the entry.
    pub created_key: bool,
    /// After an uninstall, nothing is left but what an install of an empty file writes
    /// (an empty root object, or an empty TOML document).
    pub empty: bool,
}

// ---------------------------------------------------------------------------
// JSON

fn json_options() -> ParseOptions {
    ParseOptions::default()
}

fn parse_json(text: &str) -> Result<Option<Value>, EditError> {
    let parsed = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &json_options())
        .map_err(|e| EditError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
    Ok(parsed.value.map(Value::from))
}

/// The root object of `text`, parsed with ranges.
fn with_root<T>(
    text: &str,
    f: impl FnOnce(&Object<'_>) -> Result<T, EditError>,
) -> Result<T, EditError> {
    let parsed = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &json_options())
        .map_err(|e| EditError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
    match &parsed.value {
        Some(Ast::Object(root)) => f(root),
        Some(_) => Err(EditError::Shape("its top level is not an object".into())),
        None => Err(EditError::Shape("it holds no JSON value".into())),
    }
}

fn prop<'a, 'b>(obj: &'b Object<'a>, name: &str) -> Option<&'b ObjectProp<'a>> {
    obj.properties.iter().find(|p| p.name.as_str() == name)
}

/// The whitespace at the start of the line holding byte `at`.
fn indent_at(text: &str, at: usize) -> &str {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..at];
    let n = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[..n]
}

/// One level of indentation, as the file uses it (two spaces when it shows none).
fn indent_unit(text: &str) -> String {
    text.lines()
        .map(|l| &l[..l.len() - l.trim_start_matches([' ', '\t']).len()])
        .find(|ws| !ws.is_empty())
        .unwrap_or("  ")
        .to_string()
}

/// `value` as pretty JSON whose continuation lines start with `indent`.
fn render_json(value: &Value, indent: &str, unit: &str) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    let pretty = String::from_utf8_lossy(&buf).into_owned();
    pretty.replace('\n', &format!("\n{indent}"))
}

/// The text that makes `obj` hold one more member, `"name": value`, after its last one.
fn insert_member(text: &str, obj: &Object<'_>, name: &str, value: &Value) -> String {
    let unit = indent_unit(text);
    let outer = indent_at(text, obj.range.start).to_string();
    let key = Value::String(name.to_string()).to_string();
    match obj.properties.last() {
        Some(last) => {
            let first = &obj.properties[0];
            let multiline = text[obj.range.start..first.range.start].contains('\n');
            let member = if multiline {
                let indent = indent_at(text, first.range.start).to_string();
                format!("\n{indent}{key}: {}", render_json(value, &indent, &unit))
            } else {
                format!(" {key}: {value}")
            };
            let at = last.range.end;
            format!("{},{member}{}", &text[..at], &text[at..])
        }
        None => {
            let indent = format!("{outer}{unit}");
            let member = format!("{key}: {}", render_json(value, &indent, &unit));
            let open = obj.range.start + 1;
            let close = obj.range.end - 1;
            let inner = &text[open..close];
            let tail = if inner.is_empty() {
                format!("\n{outer}")
            } else {
                inner.to_string()
            };
            format!(
                "{}\n{indent}{member}{tail}{}",
                &text[..open],
                &text[close..]
            )
        }
    }
}

/// The first comma in `text` outside comments (`text` holds only whitespace, comments and
/// commas: what lies between two members).
fn comma_in(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b',' => return Some(i),
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            _ => i += 1,
        }
    }
    None
}

/// The byte ranges (sorted, disjoint) to delete so that `obj` loses the member at `index`,
/// with the comma that separated it, and nothing else: comments around it stay.
fn member_removal(text: &str, obj: &Object<'_>, index: usize) -> Vec<Range<usize>> {
    let p = &obj.properties[index];
    let outer = indent_at(text, obj.range.start);
    let close = obj.range.end - 1;
    let next_start = obj.properties.get(index + 1).map(|n| n.range.start);
    if index == 0 && next_start.is_none() {
        // The only member (and a trailing comma after it); what an install into an empty
        // object added after it goes too.
        let mut end = p.range.end;
        if let Some(c) = comma_in(&text[end..close]) {
            end += c + 1;
        }
        if text[end..close] == format!("\n{outer}") {
            end = close;
        }
        return one(obj.range.start + 1..end);
    }
    if let (0, Some(next)) = (index, next_start) {
        let mut end = p.range.end;
        if let Some(c) = comma_in(&text[end..next]) {
            end += c + 1;
            // The whitespace after the comma goes too, up to what comes next.
            let rest = &text[end..next];
            end += rest.len() - rest.trim_start().len();
        }
        return one(p.range.start..end);
    }
    let prev = &obj.properties[index - 1];
    let between = &text[prev.range.end..p.range.start];
    if between.trim() == "," {
        // Exactly what an install inserts after the last member.
        return one(prev.range.end..p.range.end);
    }
    let Some(c) = comma_in(between) else {
        return one(p.range.start..p.range.end);
    };
    let comma = prev.range.end + c;
    let line_break = text[..p.range.start].rfind('\n').unwrap_or(0);
    let start = if line_break > comma && text[line_break..p.range.start].trim().is_empty() {
        line_break
    } else {
        p.range.start
    };
    let mut end = p.range.end;
    // A trailing comma after the last member stays valid only if a member precedes it;
    // JSON readers without trailing-comma support need it gone.
    if next_start.is_none()
        && let Some(t) = comma_in(&text[end..close])
    {
        end += t + 1;
    }
    vec![comma..comma + 1, start..end]
}

fn one(range: Range<usize>) -> Vec<Range<usize>> {
    let mut v = Vec::with_capacity(2);
    v.push(range);
    v
}

/// `text` without `ranges` (sorted, disjoint).
fn cut(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        out.push_str(&text[at..r.start]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Adds (or replaces) the server `name` in a JSON config's `mcpServers`. `None`: the file
/// already says exactly this.
pub fn json_install(text: &str, name: &str, entry: &Value) -> Result<Option<Edited>, EditError> {
    if text.trim().is_empty() {
        let unit = "  ";
        let doc = serde_json::json!({ JSON_KEY: { name: entry } });
        return Ok(Some(Edited {
            text: format!("{}\n", render_json(&doc, "", unit)),
            created_key: true,
            empty: false,
        }));
    }
    let before = parse_json(text)?.unwrap_or(Value::Null);
    let (new_text, created_key) = with_root(text, |root| match prop(root, JSON_KEY) {
        Some(servers) => match &servers.value {
            Ast::Object(obj) => match obj.properties.iter().position(|p| p.name.as_str() == name) {
                Some(i) => {
                    let old = &obj.properties[i];
                    if Value::from(old.value.clone()) == *entry {
                        return Ok((None, false));
                    }
                    let range = old.value.range();
                    let indent = indent_at(text, old.range.start).to_string();
                    let rendered = render_json(entry, &indent, &indent_unit(text));
                    Ok((
                        Some(format!(
                            "{}{rendered}{}",
                            &text[..range.start],
                            &text[range.end..]
                        )),
                        false,
                    ))
                }
                None => Ok((Some(insert_member(text, obj, name, entry)), false)),
            },
            _ => Err(EditError::Shape(format!("`{JSON_KEY}` is not an object"))),
        },
        None => {
            let servers = serde_json::json!({ name: entry });
            Ok((Some(insert_member(text, root, JSON_KEY, &servers)), true))
        }
    })?;
    let Some(new_text) = new_text else {
        return Ok(None);
    };
    let mut expected = before;
    if let Some(root) = expected.as_object_mut() {
        let servers = root
            .entry(JSON_KEY)
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(servers) = servers.as_object_mut() {
            servers.insert(name.to_string(), entry.clone());
        }
    }
    check_json(&new_text, &expected)?;
    Ok(Some(Edited {
        text: new_text,
        created_key,
        empty: false,
    }))
}

/// Removes the server `name` from a JSON config's `mcpServers` (and the then empty
/// `mcpServers` itself when `drop_empty_key`). `None`: it is not there.
pub fn json_uninstall(
    text: &str,
    name: &str,
    drop_empty_key: bool,
) -> Result<Option<Edited>, EditError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let before = parse_json(text)?.unwrap_or(Value::Null);
    let removed = with_root(text, |root| {
        let Some(servers) = prop(root, JSON_KEY) else {
            return Ok(None);
        };
        let Ast::Object(obj) = &servers.value else {
            return Err(EditError::Shape(format!("`{JSON_KEY}` is not an object")));
        };
        let Some(i) = obj.properties.iter().position(|p| p.name.as_str() == name) else {
            return Ok(None);
        };
        if drop_empty_key && obj.properties.len() == 1 {
            let k = root
                .properties
                .iter()
                .position(|p| p.name.as_str() == JSON_KEY)
                .unwrap_or(0);
            return Ok(Some(cut(text, &member_removal(text, root, k))));
        }
        Ok(Some(cut(text, &member_removal(text, obj, i))))
    })?;
    let Some(new_text) = removed else {
        return Ok(None);
    };
    let mut expected = before;
    if let Some(root) = expected.as_object_mut() {
        let now_empty = root
            .get_mut(JSON_KEY)
            .and_then(Value::as_object_mut)
            .map(|servers| {
                servers.remove(name);
                servers.is_empty()
            })
            .unwrap_or(false);
        if now_empty && drop_empty_key {
            root.remove(JSON_KEY);
        }
    }
    check_json(&new_text, &expected)?;
    let empty = expected.as_object().is_some_and(|o| o.is_empty());
    Ok(Some(Edited {
        text: new_text,
        created_key: false,
        empty,
    }))
}

fn check_json(text: &str, expected: &Value) -> Result<(), EditError> {
    match parse_json(text) {
        Ok(Some(v)) if v == *expected => Ok(()),
        _ => Err(EditError::Shape(
            "the edit would change more than the promptloop entry".into(),
        )),
    }
}

// ---------------------------------------------------------------------------
// TOML

fn parse_toml(text: &str) -> Result<toml::Table, EditError> {
    text.parse::<toml::Table>().map_err(|e| EditError::Parse {
        format: "TOML",
        message: e.to_string().trim().to_string(),
    })
}

/// The table `[mcp_servers.NAME]` with `command` and `args`.
pub fn toml_table(name: &str, command: &str, args: &[String]) -> String {
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let key = if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        quoted(name)
    };
    format!(
        "[{TOML_KEY}.{key}]\ncommand = {}\nargs = [{}]\n",
        quoted(command),
        args.iter()
            .map(|a| quoted(a))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Whether a line is a table header, and its dotted key's parts (unquoted).
fn header_parts(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    let inner = t
        .strip_prefix("[[")
        .and_then(|r| r.split("]]").next())
        .or_else(|| t.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    let parsed: toml::Table = format!("{inner} = 0").parse().ok()?;
    let mut parts = Vec::new();
    let mut table = &parsed;
    loop {
        let (k, v) = table.iter().next()?;
        parts.push(k.clone());
        match v {
            toml::Value::Table(t) => table = t,
            _ => return Some(parts),
        }
    }
}

/// The byte range of the lines that make up `[mcp_servers.NAME]` (with its sub-tables):
/// from its header to the last line of content before the next other header.
fn toml_block(text: &str, name: &str) -> Option<Range<usize>> {
    let mut start = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let here = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let ours = header_parts(line)
                .is_some_and(|p| p.len() >= 2 && p[0] == TOML_KEY && p[1] == name);
            match (ours, start) {
                (true, None) => {
                    start = Some(here);
                    end = offset;
                }
                (true, Some(_)) => end = offset,
                (false, Some(_)) => break,
                (false, None) => {}
            }
            continue;
        }
        if start.is_some() && !trimmed.is_empty() && !trimmed.starts_with('#') {
            end = offset;
        }
    }
    start.map(|s| s..end)
}

fn ours_in(table: &toml::Table, name: &str) -> Option<toml::Value> {
    table
        .get(TOML_KEY)
        .and_then(|v| v.as_table())
        .and_then(|t| t.get(name))
        .cloned()
}

/// Adds (or replaces) `[mcp_servers.NAME]` in a Codex `config.toml`. `None`: the file
/// already says exactly this.
pub fn toml_install(
    text: &str,
    name: &str,
    command: &str,
    args: &[String],
) -> Result<Option<Edited>, EditError> {
    let before = parse_toml(text)?;
    let block = toml_table(name, command, args);
    let wanted = ours_in(&parse_toml(&block)?, name);
    let existing = ours_in(&before, name);
    if existing.is_some() && existing == wanted {
        return Ok(None);
    }
    let new_text = match (&existing, toml_block(text, name)) {
        (Some(_), Some(range)) => {
            format!("{}{block}{}", &text[..range.start], &text[range.end..])
        }
        (Some(_), None) => {
            return Err(EditError::Shape(format!(
                "`{TOML_KEY}.{name}` is written as an inline table or dotted keys"
            )));
        }
        (None, _) if text.is_empty() => block.clone(),
        (None, _) if text.ends_with('\n') => format!("{text}\n{block}"),
        (None, _) => format!("{text}\n{block}"),
    };
    let mut expected = before;
    let servers = expected
        .entry(TOML_KEY)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match (servers.as_table_mut(), wanted) {
        (Some(servers), Some(w)) => {
            servers.insert(name.to_string(), w);
        }
        _ => return Err(EditError::Shape(format!("`{TOML_KEY}` is not a table"))),
    }
    match parse_toml(&new_text) {
        Ok(after) if after == expected => Ok(Some(Edited {
            text: new_text,
            created_key: false,
            empty: false,
        })),
        _ => Err(EditError::Shape(format!(
            "adding [{TOML_KEY}.{name}] at the end would change more than that table \
             (is `{TOML_KEY}` an inline table?)"
        ))),
    }
}

/// Removes `[mcp_servers.NAME]` from a Codex `config.toml`. `None`: it is not there.
pub fn toml_uninstall(text: &str, name: &str) -> Result<Option<Edited>, EditError> {
    let before = parse_toml(text)?;
    if ours_in(&before, name).is_none() {
        return Ok(None);
    }
    let Some(range) = toml_block(text, name) else {
        return Err(EditError::Shape(format!(
            "`{TOML_KEY}.{name}` is written as an inline table or dotted keys"
        )));
    };
    let head = &text[..range.start];
    let tail = &text[range.end..];
    let new_text = if tail.is_empty() {
        // At the end, where an install appends it after one separating line break.
        match head.strip_suffix('\n') {
            Some(h) => format!("{h}{tail}"),
            None => format!("{head}{tail}"),
        }
    } else if head.ends_with("\n\n") && (tail.starts_with('\n') || tail.is_empty()) {
        format!("{}{tail}", &head[..head.len() - 1])
    } else {
        format!("{head}{tail}")
    };
    let mut expected = before;
    let mut drop_servers = false;
    if let Some(servers) = expected.get_mut(TOML_KEY).and_then(|v| v.as_table_mut()) {
        servers.remove(name);
        drop_servers = servers.is_empty();
    }
    let after = parse_toml(&new_text)?;
    // `[mcp_servers.x]` alone defines `mcp_servers`; without it the key is gone too.
    if drop_servers && !after.contains_key(TOML_KEY) {
        expected.remove(TOML_KEY);
    }
    if after != expected {
        return Err(EditError::Shape(format!(
            "removing [{TOML_KEY}.{name}] would change more than that table"
        )));
    }
    Ok(Some(Edited {
        empty: new_text.trim().is_empty(),
        text: new_text,
        created_key: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({"type": "stdio", "command": "/usr/bin/promptloop", "args": ["mcp"], "env": {}})
    }

    fn round_trip_json(original: &str) -> String {
        let installed = json_install(original, "promptloop", &entry())
            .unwrap()
            .expect("changed");
        let v: Value = Value::from(
            jsonc_parser::parse_to_ast(&installed.text, &Default::default(), &json_options())
                .unwrap()
                .value
                .unwrap(),
        );
        assert_eq!(v[JSON_KEY]["promptloop"], entry(), "{}", installed.text);
        assert!(
            json_install(&installed.text, "promptloop", &entry())
                .unwrap()
                .is_none(),
            "a second install changes nothing"
        );
        let removed = json_uninstall(&installed.text, "promptloop", installed.created_key)
            .unwrap()
            .expect("removed");
        assert_eq!(removed.text, original, "installed:\n{}", installed.text);
        installed.text
    }

    #[test]
    fn json_round_trips_byte_for_byte_in_every_shape() {
        // Other servers, pretty.
        round_trip_json(
            "{\n  \"theme\": \"dark\",\n  \"mcpServers\": {\n    \"other\": {\n      \"command\": \"x\"\n    }\n  }\n}\n",
        );
        // No servers object yet; tabs; no final newline.
        let text = round_trip_json("{\n\t\"a\": 1,\n\t\"b\": [1, 2]\n}");
        assert!(
            text.contains("\n\t\"mcpServers\": {\n\t\t\"promptloop\""),
            "{text}"
        );
        // An empty servers object, compact.
        round_trip_json("{\"mcpServers\": {}}");
        // An empty root.
        round_trip_json("{}\n");
        // Comments and a trailing comma (Gemini's settings allow them).
        round_trip_json(
            "// my settings\n{\n  \"mcpServers\": {\n    \"other\": {\"command\": \"x\"}, // keep\n  },\n  /* more */ \"ui\": {}\n}\n",
        );
        // One line.
        round_trip_json("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"z\": null}");
    }

    #[test]
    fn json_install_creates_a_file_and_replaces_a_changed_entry_in_place() {
        let created = json_install("", "promptloop", &entry()).unwrap().unwrap();
        assert!(created.created_key);
        let removed = json_uninstall(&created.text, "promptloop", true)
            .unwrap()
            .unwrap();
        assert!(removed.empty, "{}", removed.text);
        let old = "{\n  \"mcpServers\": {\n    \"promptloop\": {\"command\": \"old\"},\n    \"b\": {}\n  }\n}\n";
        let replaced = json_install(old, "promptloop", &entry()).unwrap().unwrap();
        assert!(
            replaced.text.ends_with("    \"b\": {}\n  }\n}\n"),
            "{}",
            replaced.text
        );
        assert!(replaced.text.contains("/usr/bin/promptloop"));
    }

    #[test]
    fn json_uninstall_removes_only_its_entry_and_refuses_what_it_cannot_edit() {
        let text = "{\"mcpServers\": {\"a\": 1, \"promptloop\": {}, \"b\": 2}}";
        let out = json_uninstall(text, "promptloop", false).unwrap().unwrap();
        assert_eq!(out.text, "{\"mcpServers\": {\"a\": 1, \"b\": 2}}");
        let first = "{\"mcpServers\": {\"promptloop\": {}, \"b\": 2}}";
        let out = json_uninstall(first, "promptloop", false).unwrap().unwrap();
        assert_eq!(out.text, "{\"mcpServers\": {\"b\": 2}}");
        // Comments beside it stay, and no comma is left dangling.
        let commented = "{\"mcpServers\": {\"a\": 1 /* x, y */, \"promptloop\": {},}}";
        let out = json_uninstall(commented, "promptloop", false)
            .unwrap()
            .unwrap();
        assert_eq!(out.text, "{\"mcpServers\": {\"a\": 1 /* x, y */ }}");
        let lines = "{\n  \"a\": 1, // c\n  \"promptloop\": {}\n}";
        let obj = jsonc_parser::parse_to_ast(lines, &Default::default(), &json_options()).unwrap();
        let Some(Ast::Object(root)) = &obj.value else {
            panic!("object")
        };
        assert_eq!(
            cut(lines, &member_removal(lines, root, 1)),
            "{\n  \"a\": 1 // c\n}"
        );
        assert!(
            json_uninstall("{\"a\": 1}", "promptloop", false)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            json_install("[1]", "promptloop", &entry()),
            Err(EditError::Shape(_))
        ));
        assert!(matches!(
            json_install("{\"mcpServers\": 3}", "promptloop", &entry()),
            Err(EditError::Shape(_))
        ));
        assert!(matches!(
            json_install("{\"a\": ", "promptloop", &entry()),
            Err(EditError::Parse { .. })
        ));
    }

    fn args() -> Vec<String> {
        vec!["mcp".into(), "--agent".into(), "codex".into()]
    }

    fn round_trip_toml(original: &str) -> String {
        let installed = toml_install(original, "promptloop", "/bin/promptloop", &args())
            .unwrap()
            .expect("changed");
        assert!(
            toml_install(&installed.text, "promptloop", "/bin/promptloop", &args())
                .unwrap()
                .is_none()
        );
        let removed = toml_uninstall(&installed.text, "promptloop")
            .unwrap()
            .expect("removed");
        assert_eq!(removed.text, original, "installed:\n{}", installed.text);
        installed.text
    }

    #[test]
    fn toml_round_trips_byte_for_byte() {
        let t = round_trip_toml("model = \"gpt-5.5\"\n\n[mcp_servers.other]\ncommand = \"x\"\n");
        assert!(t.ends_with(
            "command = \"x\"\n\n[mcp_servers.promptloop]\ncommand = \"/bin/promptloop\"\nargs = [\"mcp\", \"--agent\", \"codex\"]\n"
        ), "{t}");
        round_trip_toml("model = \"gpt-5.5\"");
        round_trip_toml("# only a comment\n\n");
        round_trip_toml("");
        round_trip_toml("[profiles.a]\nmodel = \"o3\"\n# trailing comment\n");
    }

    #[test]
    fn toml_replaces_its_table_in_place_and_leaves_others() {
        let text = "[mcp_servers.promptloop]\ncommand = \"old\"\n\n# next\n[mcp_servers.other]\ncommand = \"x\"\n";
        let out = toml_install(text, "promptloop", "/bin/promptloop", &args())
            .unwrap()
            .unwrap();
        assert!(
            out.text
                .starts_with("[mcp_servers.promptloop]\ncommand = \"/bin/promptloop\"")
        );
        assert!(
            out.text
                .ends_with("\n# next\n[mcp_servers.other]\ncommand = \"x\"\n"),
            "{}",
            out.text
        );
        let removed = toml_uninstall(text, "promptloop").unwrap().unwrap();
        assert_eq!(
            removed.text,
            "\n# next\n[mcp_servers.other]\ncommand = \"x\"\n"
        );
        let with_env = "[mcp_servers.promptloop]\ncommand = \"a\"\n[mcp_servers.promptloop.env]\nK = \"v\"\n[x]\ny = 1\n";
        let removed = toml_uninstall(with_env, "promptloop").unwrap().unwrap();
        assert_eq!(removed.text, "[x]\ny = 1\n");
        assert!(toml_uninstall("a = 1\n", "promptloop").unwrap().is_none());
        assert!(matches!(
            toml_install(
                "mcp_servers = { other = { command = \"x\" } }\n",
                "promptloop",
                "p",
                &args()
            ),
            Err(EditError::Shape(_))
        ));
        assert!(matches!(
            toml_install("a = \n", "promptloop", "p", &args()),
            Err(EditError::Parse { .. })
        ));
    }
}
