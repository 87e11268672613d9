//! Near-duplicate and contradiction detection between rules, by a measured method.
//!
//! A rule's text is analysed into *features*: lowercased word tokens, stopwords and generic
//! rule verbs ("always", "make sure", "use", …) dropped, English words Snowball-stemmed and cut
//! to six characters (so "comparison" and "comparing" meet), code identifiers (`safe_divide`,
//! `os.path`, anything in backticks or called with `()`, numbers, operators like `//`) kept
//! verbatim. Negation is marked the way sentiment analysis does (Das & Chen): a cue ("not",
//! "never", "instead of", "rather than", "prefer X over …") negates the next three content
//! tokens up to a clause break, and the first of them is the negation's *head*.
//!
//! Two rules are then compared by the Jaccard similarity of their token sets (polarity
//! ignored):
//! - below [`Thresholds::min`]: distinct;
//! - each mentions an identifier the other does not (`safe_divide` vs `safe_modulo`):
//!   distinct, they are about different things;
//! - a negation head that is only negated in one rule and only affirmed in the other, with a
//!   high overlap coefficient (`return None, not 0` vs `return 0, not None`): a conflict;
//! - at or above [`Thresholds::same`]: the same rule;
//! - in between: the borderline band, distinct unless a [`Judge`] (the teacher) says same.
//!
//! Precision and recall on `tests/fixtures/dedup_pairs.jsonl` are in docs/rules.md; the
//! thresholds were chosen on the pairs marked `dev` only.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

/// Where the decisions switch; the defaults were chosen on the labelled dev pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Below this Jaccard similarity two rules are never related (also the bound the
    /// candidate lookup is complete for).
    pub min: f64,
    /// At or above this Jaccard similarity two rules say the same thing.
    pub same: f64,
    /// Overlap coefficient from which a polarity flip counts as a contradiction.
    pub conflict: f64,
}

impl Thresholds {
    /// The similarity down to which the store looks up candidates: every rule that can be
    /// merged (J ≥ `same`); with a judge, down to `min`, so the borderline band reaches it.
    /// On the labelled pairs every merge and every conflict found has J ≥ 0.5, so the
    /// narrower lookup loses none of them, and it skips the common tokens that make a
    /// lookup at `min` slow on large stores.
    pub fn lookup(&self, with_judge: bool) -> f64 {
        if with_judge { self.min } else { self.same }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min: 0.3,
            same: 0.5,
            conflict: 0.6,
        }
    }
}

/// How two rules relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// They say the same thing: merge.
    Same,
    /// Same subject, opposite instruction: flag for review.
    Conflict,
    /// Related, not clearly the same: a judge may decide.
    Borderline,
    /// Unrelated or about different things.
    Distinct,
}

/// The analysed form of a rule text, as stored beside the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// Every content token (polarity ignored), sorted.
    pub all: Vec<String>,
    /// Tokens that occur only inside a negation's scope.
    pub neg_only: Vec<String>,
    /// Tokens that occur only outside any negation.
    pub pos_only: Vec<String>,
    /// The first token after each negation cue.
    pub heads: Vec<String>,
    /// Code identifiers, numbers and operators.
    pub idents: Vec<String>,
}

impl Features {
    /// A compact text form for storage: five tab-separated fields of space-separated tokens
    /// (tokens never contain whitespace). Parsing it is a few splits, which matters when a
    /// lookup verifies thousands of candidates.
    pub fn encode(&self) -> String {
        [
            &self.all,
            &self.neg_only,
            &self.pos_only,
            &self.heads,
            &self.idents,
        ]
        .iter()
        .map(|v| v.join(" "))
        .collect::<Vec<_>>()
        .join("\t")
    }

    /// Reads [`Features::encode`]'s form.
    pub fn decode(text: &str) -> Option<Features> {
        let mut fields = text.split('\t').map(|f| {
            f.split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        let f = Features {
            all: fields.next()?,
            neg_only: fields.next()?,
            pos_only: fields.next()?,
            heads: fields.next()?,
            idents: fields.next()?,
        };
        fields.next().is_none().then_some(f)
    }
}

/// Words that carry no meaning for "what does this rule say".
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "of", "to", "in", "on", "at",
    "for", "from", "by", "with", "as", "is", "are", "be", "been", "being", "was", "were", "and",
    "or", "but", "if", "then", "than", "so", "such", "into", "onto", "via", "per", "when",
    "whenever", "while", "where", "which", "who", "whom", "whose", "what", "you", "your", "yours",
    "we", "our", "they", "them", "their", "he", "she", "his", "her", "i", "me", "my", "always",
    "must", "should", "shall", "need", "needs", "needed", "make", "makes", "sure", "ensure",
    "ensures", "every", "each", "any", "all", "also", "only", "just", "do", "does", "did", "done",
    "please", "can", "could", "may", "might", "will", "would", "own", "existing", "new", "use",
    "used", "uses", "using", "prefer", "prefers", "favour", "favor", "utilize", "employ", "keep",
    "kept",
];

/// Single-word negation cues.
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "avoid",
    "without",
    "nor",
    "neither",
    "dont",
    "don't",
    "doesn't",
    "doesnt",
    "isn't",
    "mustn't",
    "shouldn't",
    "cannot",
    "can't",
    "stop",
];

/// Words after which "over" means "rather than" ("prefer X over Y").
const PREFER: &[&str] = &["prefer", "prefers", "favour", "favor"];

/// Common spellings of one idea in rules about code.
const SYNONYMS: &[(&str, &str)] = &[
    ("repo", "repository"),
    ("temp", "temporary"),
    ("tmp", "temporary"),
    ("big", "large"),
    ("trim", "strip"),
    ("dir", "directory"),
    ("args", "arguments"),
    ("param", "parameter"),
    ("params", "parameters"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("null", "none"),
    ("nil", "none"),
    ("func", "function"),
];

/// Content tokens a negation reaches.
const NEGATION_WINDOW: usize = 3;
/// Stems are cut to this many characters.
const STEM_CHARS: usize = 6;

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// One lexical token with the raw spelling.
#[derive(Debug)]
enum Tok<'a> {
    /// Letters, digits, `_`, with inner dots (`os.path`) and an apostrophe suffix (`don't`).
    Word(&'a str),
    /// A run of operator characters (`//`, `===`, `%`).
    Symbol(&'a str),
    /// A clause break: `, ; : . ! ? ( )`.
    Break,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_symbol_char(c: char) -> bool {
    "=!<>/*+%&|^~-".contains(c)
}

fn lex(text: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if is_word_char(c) {
            let mut j = i + 1;
            loop {
                while j < chars.len() && is_word_char(chars[j].1) {
                    j += 1;
                }
                // `os.path`: a dot between word characters continues the word.
                if j + 1 < chars.len() && chars[j].1 == '.' && is_word_char(chars[j + 1].1) {
                    j += 1;
                    continue;
                }
                break;
            }
            // `don't`: an apostrophe and lowercase letters.
            if j + 1 < chars.len()
                && (chars[j].1 == '\'' || chars[j].1 == '’')
                && chars[j + 1].1.is_ascii_lowercase()
            {
                j += 1;
                while j < chars.len() && chars[j].1.is_ascii_lowercase() {
                    j += 1;
                }
            }
            out.push(Tok::Word(&text[start..end_of(j)]));
            i = j;
        } else if is_symbol_char(c) {
            let mut j = i + 1;
            while j < chars.len() && j - i < 3 && is_symbol_char(chars[j].1) {
                j += 1;
            }
            out.push(Tok::Symbol(&text[start..end_of(j)]));
            i = j;
        } else {
            if ",;:.!?()".contains(c) {
                out.push(Tok::Break);
            }
            i += 1;
        }
    }
    out
}

/// Words written as code: in backticks, or called as `name(`.
fn code_words(text: &str) -> BTreeSet<String> {
    let mut code = BTreeSet::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            for w in part
                .split(|c: char| !is_word_char(c))
                .filter(|w| !w.is_empty())
            {
                code.insert(w.to_lowercase());
            }
        }
    }
    let bytes: Vec<char> = text.chars().collect();
    let mut word = String::new();
    for c in bytes {
        if is_word_char(c) || c == '.' {
            word.push(c);
        } else {
            if c == '(' && !word.is_empty() {
                let last = word.rsplit('.').next().unwrap_or(&word).to_lowercase();
                if !last.is_empty() {
                    code.insert(last);
                }
            }
            word.clear();
        }
    }
    code
}

fn looks_like_identifier(raw: &str) -> bool {
    raw.contains('.')
        || raw.trim_matches('_').contains('_')
        || raw.chars().any(|c| c.is_ascii_digit())
        || raw
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// Analyses a rule text into [`Features`].
pub fn analyse(text: &str) -> Features {
    let code = code_words(text);
    let toks = lex(text);
    let lower: Vec<String> = toks
        .iter()
        .map(|t| match t {
            Tok::Word(w) | Tok::Symbol(w) => w.to_lowercase().replace('’', "'"),
            Tok::Break => String::new(),
        })
        .collect();
    let mut all = BTreeSet::new();
    let mut neg = BTreeSet::new();
    let mut pos = BTreeSet::new();
    let mut heads = BTreeSet::new();
    let mut idents = BTreeSet::new();
    let mut neg_left = 0usize;
    let mut at_head = false;
    let mut prefer = false;
    let mut i = 0;
    while i < toks.len() {
        let t = lower[i].as_str();
        if matches!(toks[i], Tok::Break) {
            neg_left = 0;
            prefer = false;
            i += 1;
            continue;
        }
        let next = lower.get(i + 1).map(String::as_str);
        if matches!(
            (t, next),
            ("instead", Some("of")) | ("rather", Some("than"))
        ) {
            neg_left = NEGATION_WINDOW;
            at_head = true;
            i += 2;
            continue;
        }
        if t == "do" && next == Some("not") {
            neg_left = NEGATION_WINDOW;
            at_head = true;
            i += 2;
            continue;
        }
        if NEGATIONS.contains(&t) || (t == "over" && prefer) {
            neg_left = NEGATION_WINDOW;
            at_head = true;
            i += 1;
            continue;
        }
        if PREFER.contains(&t) {
            prefer = true;
        }
        let t = SYNONYMS
            .iter()
            .find(|(from, _)| *from == t)
            .map_or(t, |(_, to)| *to);
        if STOPWORDS.contains(&t) || t == "-" {
            i += 1;
            continue;
        }
        let raw = match toks[i] {
            Tok::Word(w) => w,
            Tok::Symbol(s) => s,
            Tok::Break => "",
        };
        let ident =
            matches!(toks[i], Tok::Symbol(_)) || looks_like_identifier(raw) || code.contains(t);
        let token = if ident {
            t.to_string()
        } else {
            let stem = stemmer().stem(t);
            stem.chars().take(STEM_CHARS).collect()
        };
        all.insert(token.clone());
        if ident {
            idents.insert(token.clone());
        }
        if neg_left > 0 {
            if at_head {
                heads.insert(token.clone());
            }
            neg.insert(token);
            neg_left -= 1;
        } else {
            pos.insert(token);
        }
        at_head = false;
        i += 1;
    }
    Features {
        neg_only: neg.difference(&pos).cloned().collect(),
        pos_only: pos.difference(&neg).cloned().collect(),
        all: all.into_iter().collect(),
        heads: heads.into_iter().collect(),
        idents: idents.into_iter().collect(),
    }
}

/// The Jaccard similarity of the two token sets (1.0 for two empty sets).
pub fn jaccard(a: &Features, b: &Features) -> f64 {
    let inter = intersection(&a.all, &b.all);
    let union = a.all.len() + b.all.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Size of the intersection of two sorted lists.
fn intersection(a: &[String], b: &[String]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

fn contains(sorted: &[String], x: &String) -> bool {
    sorted.binary_search(x).is_ok()
}

/// A polarity flip: a negation head that is only negated in one rule and only affirmed in
/// the other.
fn flipped(a: &Features, b: &Features) -> bool {
    let one_way = |x: &Features, y: &Features| {
        x.heads
            .iter()
            .any(|h| contains(&x.neg_only, h) && contains(&y.pos_only, h))
    };
    one_way(a, b) || one_way(b, a)
}

/// How `a` relates to `b`, with their Jaccard similarity.
pub fn relate(a: &Features, b: &Features, t: &Thresholds) -> (Relation, f64) {
    let inter = intersection(&a.all, &b.all);
    let union = a.all.len() + b.all.len() - inter;
    let j = if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    };
    if j < t.min {
        return (Relation::Distinct, j);
    }
    let only_a = a.idents.iter().any(|x| !contains(&b.idents, x));
    let only_b = b.idents.iter().any(|x| !contains(&a.idents, x));
    if only_a && only_b {
        return (Relation::Distinct, j);
    }
    let smaller = a.all.len().min(b.all.len());
    let overlap = if smaller == 0 {
        0.0
    } else {
        inter as f64 / smaller as f64
    };
    if overlap >= t.conflict && flipped(a, b) {
        return (Relation::Conflict, j);
    }
    if j >= t.same {
        (Relation::Same, j)
    } else {
        (Relation::Borderline, j)
    }
}

/// How many of a rule's rarest tokens must be looked up so that every stored rule with a
/// Jaccard similarity of at least `min` shares one of them (prefix filtering): with
/// `n` tokens, `J ≥ min` needs `|A∩B| ≥ ⌈min·n⌉`, so any `n − ⌈min·n⌉ + 1` of A's tokens
/// meet B.
pub fn probe_len(n: usize, min: f64) -> usize {
    if n == 0 {
        return 0;
    }
    let overlap = ((min * n as f64) - 1e-9).ceil().max(1.0) as usize;
    n - overlap.min(n) + 1
}

/// A second opinion for the borderline band (the teacher, when `rules.dedup_judge` is on).
pub trait Judge {
    /// Whether the two rule texts give the same instruction; `None` when it cannot tell.
    fn same_rule(&self, a: &str, b: &str) -> Option<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: &str, b: &str) -> Relation {
        relate(&analyse(a), &analyse(b), &Thresholds::default()).0
    }

    #[test]
    fn paraphrases_merge_and_flips_conflict() {
        assert_eq!(
            rel(
                "Return None, not 0, from safe_divide when the divisor is zero.",
                "When dividing by zero in safe_divide, return None instead of 0."
            ),
            Relation::Same
        );
        assert_eq!(
            rel(
                "Return None, not 0, from safe_divide when the divisor is zero.",
                "Return 0, not None, from safe_divide when the divisor is zero."
            ),
            Relation::Conflict
        );
        assert_eq!(
            rel(
                "Return None, not 0, from safe_divide when the divisor is zero.",
                "Return None, not 0, from safe_modulo when the divisor is zero."
            ),
            Relation::Distinct
        );
    }

    #[test]
    fn analysis_marks_identifiers_negation_and_heads() {
        let f = analyse("Use pathlib.Path instead of os.path for file paths.");
        assert!(f.idents.contains(&"os.path".to_string()), "{f:?}");
        assert!(f.heads.contains(&"os.path".to_string()), "{f:?}");
        assert!(f.neg_only.contains(&"os.path".to_string()), "{f:?}");
        assert!(f.pos_only.contains(&"pathlib.path".to_string()), "{f:?}");
        let f = analyse("Use true division (/) in average, not floor division (//).");
        assert!(f.idents.contains(&"//".to_string()), "{f:?}");
        let f = analyse("Don't swallow exceptions");
        assert_eq!(f.heads, vec!["swallo".to_string()]);
    }

    #[test]
    fn features_round_trip_through_their_stored_form() {
        let f = analyse("Use `===` instead of `==`; never call eval() on user_input.");
        assert_eq!(Features::decode(&f.encode()), Some(f));
        assert_eq!(
            Features::decode(&Features::default().encode()),
            Some(Features::default())
        );
        assert_eq!(Features::decode("a b"), None);
    }

    #[test]
    fn probe_len_is_enough_for_the_bound() {
        assert_eq!(probe_len(0, 0.3), 0);
        assert_eq!(probe_len(1, 0.3), 1);
        assert_eq!(probe_len(10, 0.3), 8);
        assert_eq!(probe_len(10, 0.5), 6);
    }
}
