//! The location tree (pass 1): every key and value of the file with its line and column,
//! for messages, and suggestions for unknown keys.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::*;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub(super) fn segments_of(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                segs.push(Seg::Index(*index));
                cur = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                segs.push(Seg::Key(key.clone()));
                cur = parent;
            }
            // Option and newtype wrappers do not appear in the YAML.
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    segs.reverse();
    segs
}

/// An untyped YAML node, only kept for its shape and positions.
pub(super) enum Node {
    Map(Vec<(Spanned<ScalarKey>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
    /// YAML null, kept apart so an empty document can be told from a scalar.
    Null,
}

/// A mapping key of any scalar type, as text.
pub(super) struct ScalarKey(String);

impl<'de> Deserialize<'de> for ScalarKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = ScalarKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarKey, E> {
                Ok(ScalarKey("null".to_string()))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any yaml value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<ScalarKey>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A key or sequence item with its positions.
pub(super) struct TreeEntry {
    pub(super) path: Vec<Seg>,
    /// Where the key is; `None` for sequence items.
    pub(super) key_at: Option<Position>,
    /// Where the value starts.
    pub(super) value_at: Position,
    /// The value as the user wrote it, for "found ..." in messages.
    pub(super) found: String,
}

/// Every key and item of the document with its positions, flattened.
pub(super) struct LocationTree {
    pub(super) entries: Vec<TreeEntry>,
}

pub(super) fn position_of(loc: &serde_saphyr::Location) -> Position {
    Position {
        line: loc.line(),
        column: loc.column(),
    }
}

impl LocationTree {
    pub(super) fn new(root: Spanned<Node>, text: &str) -> Self {
        let mut entries = Vec::new();
        walk(&root.value, &mut Vec::new(), text, &mut entries);
        Self { entries }
    }

    pub(super) fn find(&self, path: &[Seg]) -> Option<&TreeEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    pub(super) fn find_dotted(&self, key: &str) -> Option<&TreeEntry> {
        let segs: Vec<Seg> = key.split('.').map(|k| Seg::Key(k.to_string())).collect();
        self.find(&segs)
    }

    /// The entry whose value starts at `pos`; the deepest one wins because
    /// a nested mapping starts where its first key does.
    pub(super) fn entry_at(&self, pos: Position) -> Option<&TreeEntry> {
        self.entries
            .iter()
            .filter(|e| e.value_at == pos)
            .max_by_key(|e| e.path.len())
    }
}

pub(super) fn walk(node: &Node, path: &mut Vec<Seg>, text: &str, out: &mut Vec<TreeEntry>) {
    let mut record =
        |seg: Seg, key_at: Option<Position>, value: &Spanned<Node>, out: &mut Vec<TreeEntry>| {
            path.push(seg);
            out.push(TreeEntry {
                path: path.clone(),
                key_at,
                value_at: position_of(&value.referenced),
                found: describe_found(value, text),
            });
            walk(&value.value, path, text, out);
            path.pop();
        };
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                record(
                    Seg::Key(key.value.0.clone()),
                    Some(position_of(&key.referenced)),
                    value,
                    out,
                );
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                record(Seg::Index(i), None, item, out);
            }
        }
        Node::Scalar | Node::Null => {}
    }
}

pub(super) fn describe_found(value: &Spanned<Node>, text: &str) -> String {
    match value.value {
        Node::Map(_) => "a mapping".to_string(),
        Node::Seq(_) => "a list".to_string(),
        Node::Null => "nothing".to_string(),
        Node::Scalar => {
            let span = value.referenced.span();
            let raw = span
                .byte_offset()
                .zip(span.byte_len())
                .and_then(|(start, len)| {
                    let start = usize::try_from(start).ok()?;
                    let end = start.checked_add(usize::try_from(len).ok()?)?;
                    text.get(start..end)
                })
                .unwrap_or("");
            let first_line = raw.lines().next().unwrap_or("").trim();
            if first_line.is_empty() {
                "nothing".to_string()
            } else if first_line.chars().count() > 40 {
                format!("{}...", first_line.chars().take(40).collect::<String>())
            } else {
                first_line.to_string()
            }
        }
    }
}

// ---------------------------------------------------------------------------
// "Did you mean"
// ---------------------------------------------------------------------------

/// Suggests a known key for an unknown one: a near spelling in the same
/// section first, then the same name in another section (e.g. `timeout`
/// put under `learning`).
pub(super) fn suggest_key(path: &[Seg]) -> Option<String> {
    let (Seg::Key(unknown), parent) = path.split_last()? else {
        return None;
    };
    let defaults = serde_json::to_value(Settings::default()).ok()?;
    let mut section = &defaults;
    for seg in parent {
        section = match seg {
            Seg::Key(k) => section.get(k)?,
            // Every list item has the same fields; the first default shows them.
            Seg::Index(_) => section.get(0)?,
        };
    }
    let known: Vec<&String> = section.as_object()?.keys().collect();
    let wanted = unknown.to_ascii_lowercase();
    let near = known
        .iter()
        .map(|k| (edit_distance(&wanted, k), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone());
    if let Some(k) = near {
        let mut full = parent.to_vec();
        full.push(Seg::Key(k));
        return Some(dotted(&full));
    }
    // Same name in another top-level section, which is where people
    // misplace keys; only when exactly one section has it, since guessing
    // between `teacher.timeout` and `tests.timeout` would mislead.
    if parent.len() != 1 {
        return None;
    }
    let mut homes = defaults
        .as_object()?
        .iter()
        .filter(|(_, value)| value.get(&wanted).is_some())
        .map(|(name, _)| format!("{name}.{wanted}"));
    match (homes.next(), homes.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Optimal string alignment distance: Levenshtein plus adjacent swaps, so
/// `max_retires` is one edit from `max_retries`.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::*;

    #[test]
    fn unknown_keys_warn_with_suggestion() -> Result<(), ConfigError> {
        let (s, warnings) = parse(
            "learning:\n  max_retires: 5\nloging:\n  level: debug\nfailure_sources:\n  \
             - nmae: pytest\n    name: pytest\nlearning_extra: 1\n",
        )?;
        // The misspelled key is ignored, not half-applied.
        assert_eq!(s.learning.max_retries, 3);
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "config.yaml:2:3: learning.max_retires: unknown key, ignored (did you mean `learning.max_retries`?)",
                "config.yaml:3:1: loging: unknown key, ignored (did you mean `logging`?)",
                "config.yaml:6:5: failure_sources[0].nmae: unknown key, ignored (did you mean `failure_sources[0].name`?)",
                "config.yaml:8:1: learning_extra: unknown key, ignored",
            ]
        );
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey {
                suggestion: Some("learning.max_retries".to_string())
            }
        );

        // A key put in the wrong section points at the right one...
        let (_, warnings) = parse("learning:\n  max_turns: 5\n")?;
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey {
                suggestion: Some("claude.max_turns".to_string())
            }
        );
        // ...unless several sections have it.
        let (_, warnings) = parse("learning:\n  timeout: 5\n")?;
        assert_eq!(
            warnings[0].kind,
            WarningKind::UnknownKey { suggestion: None }
        );
        Ok(())
    }

    #[test]
    fn unknown_failure_sources_and_types_warn() -> Result<(), ConfigError> {
        let (s, warnings) = parse(
            "failure_sources:\n  - name: mutation\n    type: automated\nfailure_prompts:\n  \
             style_error: style.md\n  scope_error: prompts/scope.md\n",
        )?;
        assert_eq!(s.failure_prompts["style_error"], "style.md");
        assert_eq!(s.failure_prompts["scope_error"], "prompts/scope.md");
        // Types the file leaves out keep their defaults.
        assert_eq!(s.failure_prompts["test_failure"], "default");
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2);
        assert!(
            shown[0]
                .starts_with("config.yaml:2:11: failure_sources[0].name: unknown failure source"),
            "{shown:?}"
        );
        assert!(
            shown[1]
                .starts_with("config.yaml:5:3: failure_prompts.style_error: unknown failure type"),
            "{shown:?}"
        );
        Ok(())
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("max_retires", "max_retries"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
