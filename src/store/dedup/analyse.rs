//! A rule's text → its [`Analysis`]: the parts of the rule as normalised terms.
//!
//! 1. **Lexing.** Words, code (anything in backticks, called as `name(…)`, or shaped like an
//!    identifier: `os.path`, `safe_divide`, `fetchUser`, `--locked`), numbers with their
//!    units and comparators (`numpy<2`, `30 s`, `under 80%`, `up to 5 times`), `key=value`
//!    settings, and clause breaks.
//! 2. **Phrases and word forms.** Contractions are expanded, multi-word phrases folded
//!    ("environment variable" → `env`, "look up" → `check`, "instead of" → a negation cue),
//!    English words stemmed, and the common synonyms of instructions folded into one token
//!    (list / check / inspect → `check`; before / first / prior to → `before`).
//! 3. **Polarity.** A negation cue ("not", "never", "avoid", "instead of", "prefer X over")
//!    negates the next few content tokens of its clause; the first is the negation's *head*.
//!    "X is not used" negates X. An antonym is read as its partner negated ("disable" = not
//!    `enable`, "optional" = not `require`).
//! 4. **Order.** "X before Y", "Before Y, X", "X first, then Y", "Y after X": the tokens of the
//!    earlier step are marked *early*, those of the later one *late*.

use super::lexicon::{self, COUNTABLE_UNITS, JOINED, NUMBER_WORDS, UNITS, lexicon};
use super::{Analysis, Kind, Term};

/// One lexical piece.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    /// A lowercase word (prose).
    Word(String),
    /// Code: an identifier, a path, a flag, an operator.
    Ident(String),
    /// A plain word written as code (`let`, `print`): read like a word, never dropped.
    Code(String),
    /// A number, with its comparator (`<`, `<=`, `>`, `>=` or empty) and unit.
    Num {
        cmp: String,
        num: String,
        unit: String,
    },
    /// A `key=value` setting.
    Kv { key: String, val: String },
    /// A clause break.
    Break,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_operator(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| "=!<>/*+%&|^~-?.:$#@{}[]()".contains(c))
}

/// Splits the text into chunks: whitespace-separated, with backtick spans marked as code.
/// Clause punctuation outside code becomes a break.
fn chunks(text: &str) -> Vec<(String, bool)> {
    let text = text
        .replace(['’', '‘'], "'")
        .replace(['“', '”'], "\"")
        .replace(['—', '–'], " ; ")
        .replace('…', "...");
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut cur = String::new();
    let mut code = false;
    let flush = |cur: &mut String, out: &mut Vec<(String, bool)>, code: bool| {
        if !cur.is_empty() {
            out.push((std::mem::take(cur), code));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let ends = |n: Option<char>| n.is_none_or(|n| n.is_whitespace() || "\"')]`".contains(n));
        if c == '`' {
            flush(&mut cur, &mut out, code);
            code = !code;
        } else if c.is_whitespace() {
            flush(&mut cur, &mut out, code);
        } else if code {
            cur.push(c);
        } else if ",;!?()".contains(c) || ((c == '.' || c == ':') && ends(next)) {
            flush(&mut cur, &mut out, code);
            out.push((";".into(), false));
        } else if c == '"' || c == '[' || c == ']' || c == '{' || c == '}' {
            // Quotes and brackets in prose: `"strict": true`, `items[0]` keep their words;
            // `[]` and `{}` are values.
            let pair = (c == '[' && next == Some(']')) || (c == '{' && next == Some('}'));
            if pair {
                flush(&mut cur, &mut out, code);
                out.push((format!("{c}{}", if c == '[' { ']' } else { '}' }), true));
                i += 1;
            } else if (c == '[' || c == ']') && !cur.is_empty() {
                cur.push(c);
            } else {
                flush(&mut cur, &mut out, code);
            }
        } else if c == '\'' {
            let letters_around = i > 0
                && chars[i - 1].is_alphanumeric()
                && next.is_some_and(|n| n.is_ascii_alphabetic());
            if letters_around {
                cur.push(c);
            } else {
                flush(&mut cur, &mut out, code);
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    flush(&mut cur, &mut out, code);
    out
}

fn looks_like_identifier(raw: &str) -> bool {
    let inner = raw.trim_matches(|c: char| !c.is_alphanumeric());
    inner.contains('.')
        || inner.contains("::")
        || inner.contains('/')
        || inner.trim_matches('_').contains('_')
        || raw.starts_with('-') && raw.len() > 1
        || raw.starts_with('$')
        || raw
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// A number with an optional unit written onto it (`30s`, `512Mi`, `80%`, `3.11`, `v1.2.3`).
fn parse_number(s: &str) -> Option<(String, String)> {
    let s = s
        .strip_prefix('v')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(s);
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_end_matches(['.', ':']).to_string();
    let rest = &s[digits.len()..];
    let rest = rest.trim_start_matches(['.', ':']);
    if rest.is_empty() {
        return Some((digits, String::new()));
    }
    let unit = rest.to_lowercase();
    if unit.chars().all(|c| c.is_ascii_alphabetic() || c == '%') && unit.len() <= 7 {
        return Some((digits, unit));
    }
    None
}

/// Lowercases, strips call and index suffixes and surrounding punctuation from code.
fn clean_ident(raw: &str) -> String {
    let mut s = raw.to_lowercase();
    for open in ['(', '['] {
        if let Some(at) = s.find(open)
            && at > 0
        {
            s.truncate(at);
        }
    }
    let s = s
        .trim_start_matches(['@', '"', '\''])
        .trim_end_matches([',', ';', '.', ':', '"', '\'', ')', ']', '!', '?']);
    let s = s.strip_suffix("'s").unwrap_or(s);
    let s = s
        .strip_prefix('.')
        .filter(|r| !r.is_empty() && !r.starts_with('.'))
        .unwrap_or(s);
    s.to_string()
}

/// Classifies one chunk into pieces.
fn pieces_of(chunk: &str, code: bool, out: &mut Vec<Piece>) {
    if chunk == ";" && !code {
        out.push(Piece::Break);
        return;
    }
    let trimmed = chunk.trim_matches(|c: char| c == '"' || c == '\'' || c == ',');
    if trimmed.is_empty() {
        return;
    }
    // A call `name(args)`: the name is code, the arguments are read too.
    if let Some(open) = trimmed.find('(')
        && open > 0
        && trimmed[..open]
            .chars()
            .all(|c| is_word_char(c) || c == '.' || c == ':')
    {
        out.push(Piece::Ident(clean_ident(&trimmed[..open])));
        let inner = trimmed[open + 1..].trim_end_matches(')');
        for part in inner.split([',', ' ', '(', ')']) {
            if !part.is_empty() && part != "..." {
                pieces_of(part, true, out);
            }
        }
        return;
    }
    if is_operator(trimmed) {
        if let Some((_, to)) = lexicon::RAW_SYNONYMS
            .iter()
            .find(|(from, _)| *from == trimmed)
        {
            out.push(Piece::Code((*to).to_string()));
        } else if trimmed.len() <= 5 && trimmed != "." && trimmed != "-" && trimmed != "..." {
            out.push(Piece::Ident(trimmed.to_string()));
        }
        return;
    }
    // Comparator and number: `<2`, `>=3.11`.
    for cmp in ["<=", ">=", "==", "~=", "<", ">", "^", "~"] {
        if let Some(rest) = trimmed.strip_prefix(cmp)
            && let Some((num, unit)) = parse_number(rest)
        {
            let cmp = if cmp == "==" || cmp == "~=" || cmp == "^" || cmp == "~" {
                ""
            } else {
                cmp
            };
            out.push(Piece::Num {
                cmp: cmp.into(),
                num,
                unit,
            });
            return;
        }
    }
    // `numpy<2`, `django>=4.2`: a name with a version bound.
    if let Some(at) = trimmed.find(['<', '>', '='])
        && at > 0
    {
        let (name, bound) = trimmed.split_at(at);
        let value = bound.trim_start_matches(['<', '>', '=', '~', '!']);
        let is_bound = bound.starts_with('<') || bound.starts_with('>') || bound.starts_with("==");
        if is_bound
            && parse_number(value).is_some()
            && name
                .chars()
                .all(|c| is_word_char(c) || c == '-' || c == '.')
        {
            pieces_of(name, code, out);
            pieces_of(bound, true, out);
            return;
        }
        // `key=value`.
        if bound.starts_with('=')
            && !bound.starts_with("==")
            && !value.trim_matches(['"', '\'']).is_empty()
        {
            out.push(Piece::Kv {
                key: clean_ident(name),
                val: clean_ident(value),
            });
            return;
        }
    }
    if let Some((num, unit)) = parse_number(trimmed) {
        out.push(Piece::Num {
            cmp: String::new(),
            num,
            unit,
        });
        return;
    }
    // `es2020`, `python3`: a word with a version written onto it.
    let letters: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if letters.len() >= 2 && letters.len() < trimmed.len() {
        let rest = &trimmed[letters.len()..];
        if rest.chars().all(|c| c.is_ascii_digit() || c == '.')
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push(Piece::Word(letters.to_lowercase()));
            out.push(Piece::Num {
                cmp: String::new(),
                num: rest.trim_end_matches('.').to_string(),
                unit: String::new(),
            });
            return;
        }
    }
    if trimmed.starts_with('#')
        && trimmed.len() > 1
        && trimmed[1..]
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        out.push(Piece::Ident(trimmed.to_lowercase()));
        return;
    }
    let lower = trimmed.to_lowercase();
    let lower = lower.strip_suffix("'s").unwrap_or(&lower).to_string();
    if let Some((_, joined)) = JOINED.iter().find(|(from, _)| *from == lower) {
        for w in joined.split(' ') {
            out.push(Piece::Word(w.to_string()));
        }
        return;
    }
    let identifier = looks_like_identifier(trimmed)
        || trimmed.chars().any(|c| c.is_ascii_digit())
        || (code && trimmed.chars().any(|c| !c.is_alphanumeric()));
    if identifier {
        let ident = clean_ident(trimmed);
        if let Some((_, to)) = lexicon::RAW_SYNONYMS
            .iter()
            .find(|(from, _)| *from == ident)
        {
            out.push(Piece::Code((*to).to_string()));
        } else if !ident.is_empty() {
            out.push(Piece::Ident(ident));
        }
        return;
    }
    if code {
        out.push(Piece::Code(
            lower
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_string(),
        ));
        return;
    }
    if lower.contains('-') && !code {
        // Plain prose hyphenation ("user-facing", "read-only" aside): its words.
        for w in lower.split('-').filter(|w| !w.is_empty()) {
            out.push(Piece::Word(w.to_string()));
        }
        return;
    }
    let word: String = lower
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'' || *c == '_')
        .collect();
    if !word.is_empty() {
        out.push(Piece::Word(expand_contraction(&word)));
    }
}

/// `don't` → `do not` (the words are re-split below).
fn expand_contraction(w: &str) -> String {
    const FORMS: &[(&str, &str)] = &[
        ("won't", "will not"),
        ("can't", "can not"),
        ("cannot", "can not"),
        ("shan't", "shall not"),
        ("n't", " not"),
    ];
    for (from, to) in FORMS {
        if *from == "n't" {
            if let Some(stem) = w.strip_suffix("n't") {
                return format!("{stem}{to}");
            }
        } else if w == *from {
            return (*to).to_string();
        }
    }
    w.trim_end_matches('\'').to_string()
}

fn lex(text: &str) -> Vec<Piece> {
    let mut raw = Vec::new();
    let list = chunks(text);
    let mut i = 0;
    while i < list.len() {
        let (chunk, code) = &list[i];
        // `key = value` (also in prose: "codegen-units = 16") and YAML `key: value` in code.
        let keyish = chunk
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
            && chunk.len() > 1;
        if !*code
            && keyish
            && list.get(i + 1).is_some_and(|(n, _)| n == "=")
            && let Some((value, _)) = list.get(i + 2)
        {
            raw.push(Piece::Kv {
                key: clean_ident(chunk),
                val: clean_ident(value),
            });
            i += 3;
            continue;
        }
        if *code && let Some((next, _)) = list.get(i + 1) {
            if next == "=" {
                if let Some((value, _)) = list.get(i + 2) {
                    raw.push(Piece::Kv {
                        key: clean_ident(chunk),
                        val: clean_ident(value),
                    });
                    i += 3;
                    continue;
                }
            } else if chunk.ends_with(':')
                && chunk.len() > 1
                && !next.ends_with(':')
                && !clean_ident(next).is_empty()
            {
                raw.push(Piece::Kv {
                    key: clean_ident(chunk),
                    val: clean_ident(next),
                });
                i += 2;
                continue;
            }
        }
        pieces_of(chunk, *code, &mut raw);
        i += 1;
    }
    // Contractions expanded into two words are split here.
    let mut out = Vec::with_capacity(raw.len());
    for p in raw {
        match p {
            Piece::Word(w) if w.contains(' ') => {
                out.extend(
                    w.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(|s| Piece::Word(s.into())),
                );
            }
            other => out.push(other),
        }
    }
    out
}

fn word_at(pieces: &[Piece], i: usize) -> Option<&str> {
    match pieces.get(i) {
        Some(Piece::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// Folds multi-word phrases, number words, units and comparators.
fn normalise(pieces: Vec<Piece>) -> Vec<Piece> {
    let lx = lexicon();
    // Each word's stem, computed once: a phrase word matches as written, or by stem for
    // longer words ("looking it up" matches "look it up").
    let stems: Vec<Option<String>> = pieces
        .iter()
        .map(|p| match p {
            Piece::Word(w) if w.len() > 3 => Some(lexicon::stem(w)),
            _ => None,
        })
        .collect();
    let matches_at = |k: usize, wanted: &str, wanted_stem: &str| match (
        word_at(&pieces, k),
        &stems[k.min(stems.len() - 1)],
    ) {
        (Some(w), stem) => {
            w == wanted || (!wanted_stem.is_empty() && stem.as_deref() == Some(wanted_stem))
        }
        _ => false,
    };
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    let mut i = 0;
    'outer: while i < pieces.len() {
        if let Some(w) = word_at(&pieces, i) {
            let by_word = lx.phrases.get(w);
            let by_stem = stems[i].as_ref().and_then(|s| lx.phrases.get(s));
            for list in [by_word, by_stem].into_iter().flatten() {
                for (from, from_stems, to) in list {
                    if i + from.len() <= pieces.len()
                        && (0..from.len()).all(|k| matches_at(i + k, from[k], &from_stems[k]))
                    {
                        out.extend(to.iter().map(|w| Piece::Word((*w).to_string())));
                        i += from.len();
                        continue 'outer;
                    }
                }
            }
        }
        out.push(pieces[i].clone());
        i += 1;
    }
    // Number words ("two reviews", "one approving review"), "a/an" + a countable unit.
    let determiners = [
        "a", "an", "the", "new", "another", "this", "that", "each", "any", "every", "no",
    ];
    let mut pieces = Vec::with_capacity(out.len());
    for (k, p) in out.iter().enumerate() {
        if let Piece::Word(w) = p {
            let next_word = match out.get(k + 1) {
                Some(Piece::Word(n)) => Some(n.as_str()),
                _ => None,
            };
            let prev_word = match k.checked_sub(1).and_then(|j| out.get(j)) {
                Some(Piece::Word(n)) => Some(n.as_str()),
                _ => None,
            };
            let counted = |n: Option<&str>| {
                n.is_some_and(|n| {
                    !lexicon().stopwords.contains_key(n) && n.chars().all(|c| c.is_alphabetic())
                })
            };
            let number = NUMBER_WORDS
                .iter()
                .find(|(from, _)| from == w)
                .map(|(_, n)| *n)
                .or_else(|| {
                    (w == "one"
                        && counted(next_word)
                        && !prev_word.is_some_and(|p| determiners.contains(&p)))
                    .then_some("1")
                });
            if let Some(n) = number {
                let mut parts = n.split(' ');
                let num = parts.next().unwrap_or_default().to_string();
                let unit = parts.next().unwrap_or_default().to_string();
                pieces.push(Piece::Num {
                    cmp: String::new(),
                    num,
                    unit,
                });
                continue;
            }
            if (w == "a" || w == "an")
                && next_word.is_some_and(|n| {
                    COUNTABLE_UNITS
                        .iter()
                        .any(|u| n.trim_end_matches('s') == *u)
                })
            {
                pieces.push(Piece::Num {
                    cmp: String::new(),
                    num: "1".into(),
                    unit: String::new(),
                });
                continue;
            }
        }
        pieces.push(p.clone());
    }
    // "once an hour": a period of one hour.
    let mut k = 0;
    while k < pieces.len() {
        if matches!(&pieces[k], Piece::Word(w) if w == "period_one") {
            pieces[k] = Piece::Num {
                cmp: String::new(),
                num: "1".into(),
                unit: String::new(),
            };
        }
        k += 1;
    }
    // Comparators before numbers, units after them.
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    let mut i = 0;
    while i < pieces.len() {
        match &pieces[i] {
            Piece::Num { cmp, num, unit } => {
                let mut cmp = cmp.clone();
                let mut unit = unit.clone();
                if cmp.is_empty()
                    && let Some(Piece::Word(prev)) = out.last()
                {
                    let c = match prev.as_str() {
                        "cmp_lt" | "under" | "below" => "<",
                        "cmp_le" | "within" | "max" | "maximum" => "<=",
                        "cmp_gt" | "over" | "above" | "exceed" | "exceeds" => ">",
                        "cmp_ge" | "minimum" => ">=",
                        _ => "",
                    };
                    if !c.is_empty() {
                        cmp = c.to_string();
                        out.pop();
                    }
                }
                let mut skip = 1;
                if unit.is_empty()
                    && let Some(Piece::Word(next)) = pieces.get(i + 1)
                    && UNITS.iter().any(|(u, _, _)| u == next)
                {
                    unit = next.clone();
                    skip = 2;
                }
                if let Some(Piece::Word(next)) = pieces.get(i + skip)
                    && next == "cmp_or_more"
                {
                    cmp = ">=".into();
                    skip += 1;
                }
                out.push(number(&cmp, num, &unit));
                i += skip;
            }
            other => {
                out.push(other.clone());
                i += 1;
            }
        }
    }
    // A comparator that reached no number says nothing more.
    out.retain(|p| !matches!(p, Piece::Word(w) if w.starts_with("cmp_")));
    out
}

/// A number in its base unit (`30 minutes` → 1800 s), written compactly.
fn number(cmp: &str, num: &str, unit: &str) -> Piece {
    let found = UNITS.iter().find(|(u, _, _)| *u == unit);
    let (num, unit) = match (found, num.parse::<f64>()) {
        (Some((_, base, factor)), Ok(value)) if !num.contains(':') => {
            let v = value * factor;
            let text = if (v - v.round()).abs() < 1e-9 {
                format!("{}", v.round() as i64)
            } else {
                format!("{v}")
            };
            (text, (*base).to_string())
        }
        (Some((_, base, _)), _) => (num.to_string(), (*base).to_string()),
        (None, _) => {
            let trimmed = num.trim_start_matches('0');
            let text = if num.contains('.') || num.contains(':') {
                num.to_string()
            } else if trimmed.is_empty() {
                "0".to_string()
            } else {
                trimmed.to_string()
            };
            (text, unit.to_string())
        }
    };
    Piece::Num {
        cmp: cmp.to_string(),
        num,
        unit,
    }
}

/// The token a prose word becomes: its stem, or the canonical word of its synonym group.
pub(crate) fn word_token(w: &str) -> String {
    let lex = lexicon();
    if let Some((_, c)) = lexicon::RAW_SYNONYMS.iter().find(|(from, _)| *from == w) {
        return (*c).to_string();
    }
    if let Some(c) = lex.synonyms.get(w) {
        return (*c).to_string();
    }
    let s = lexicon::stem(w);
    match lex.synonyms.get(&s) {
        Some(c) => (*c).to_string(),
        None => s,
    }
}

/// What one position of the walk produced.
#[derive(Clone, Debug)]
struct Emitted {
    text: String,
    kind: Kind,
    neg: bool,
    head: bool,
    segment: usize,
    /// The negation (its cue's index) that reached it.
    cue: Option<usize>,
    /// The first content token of its clause: where an instruction's verb stands.
    lead: bool,
}

const BEFORE_CUES: &[&str] = &["before", "prior", "ahead"];
const FIRST_CUES: &[&str] = &["first", "beforehand"];
const AFTER_CUES: &[&str] = &["after", "until", "once"];
const THEN_CUES: &[&str] = &[
    "then",
    "afterwards",
    "afterward",
    "later",
    "next",
    "subsequently",
];

/// The walk over a rule's pieces: negation scopes, order segments, emitted terms.
struct Walk {
    emitted: Vec<Emitted>,
    segs: Vec<SegInfo>,
    segment: usize,
    seg_len: usize,
    /// The active negation: its cue number, and whether its head is still to come (and how
    /// many heads remain: an action verb passes the head on to its object).
    neg: Option<usize>,
    heads_left: usize,
    /// The pending head was passed on by an action verb: only determiners may come first.
    passed: bool,
    cues: usize,
    clause_start: usize,
    clause_len: usize,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            emitted: Vec::new(),
            segs: vec![SegInfo::default()],
            segment: 0,
            seg_len: 0,
            neg: None,
            heads_left: 0,
            passed: false,
            cues: 0,
            clause_start: 0,
            clause_len: 0,
        }
    }

    fn new_segment(&mut self) {
        if self.seg_len > 0 || self.segs.last().is_some_and(SegInfo::any) {
            self.segment += 1;
            self.segs.push(SegInfo::default());
            self.seg_len = 0;
        }
    }

    fn end_scope(&mut self) {
        self.neg = None;
        self.heads_left = 0;
        self.passed = false;
    }

    /// A function word was skipped: a head passed on by a verb only crosses determiners.
    fn skipped(&mut self, word: &str) {
        if self.passed && !lexicon::DETERMINERS.contains(&word) {
            self.heads_left = 0;
            self.passed = false;
        }
    }

    fn end_clause(&mut self) {
        self.end_scope();
        self.clause_start = self.emitted.len();
        self.clause_len = 0;
        self.new_segment();
    }

    fn start_negation(&mut self) {
        self.cues += 1;
        self.neg = Some(self.cues);
        self.heads_left = 1;
    }

    fn emit(&mut self, text: String, kind: Kind) {
        if text.is_empty() {
            return;
        }
        let neg = self.neg.is_some();
        let head = neg && self.heads_left > 0;
        self.passed = false;
        if head {
            self.heads_left -= 1;
            // "never *add* type hints": an action verb passes the head on to its object.
            let lex = lexicon();
            if kind == Kind::Word
                && (lex.actions.contains_key(text.as_str())
                    || lex.generic.contains_key(text.as_str()))
            {
                self.heads_left = 1;
                self.passed = true;
            }
        }
        self.emitted.push(Emitted {
            text,
            kind,
            neg,
            head,
            segment: self.segment,
            cue: self.neg,
            lead: self.clause_len == 0,
        });
        self.seg_len += 1;
        self.clause_len += 1;
    }

    /// An antonym: its partner, negated (affirmed inside a negation).
    fn emit_antonym(&mut self, partner: String) {
        let inside = self.neg.is_some();
        self.emitted.push(Emitted {
            text: partner,
            kind: Kind::Word,
            neg: !inside,
            head: true,
            segment: self.segment,
            cue: None,
            lead: self.clause_len == 0,
        });
        if inside && self.heads_left > 0 {
            // "don't leave X": the negation is spent on the antonym.
            self.end_scope();
        }
        self.seg_len += 1;
        self.clause_len += 1;
    }

    /// "X is not used", "0 is wrong": the clause so far is what is negated.
    fn negate_back(&mut self) {
        let from = self.clause_start.min(self.emitted.len());
        let mut first = true;
        for e in &mut self.emitted[from..] {
            e.neg = true;
            e.head = first;
            first = false;
        }
    }

    /// "Config files must never contain it": the subject before the modal is part of what
    /// is negated (not its head).
    fn negate_subject(&mut self) {
        let from = self.clause_start.min(self.emitted.len());
        for e in &mut self.emitted[from..] {
            e.neg = true;
        }
    }

    /// "Don't X until Y": an order, not a prohibition of X.
    fn cancel_negation(&mut self) {
        if let Some(cue) = self.neg {
            for e in self.emitted.iter_mut().filter(|e| e.cue == Some(cue)) {
                e.neg = false;
                e.head = false;
            }
        }
        self.end_scope();
    }
}

/// Analyses the rule's text and its "when" into an [`Analysis`].
pub fn analyse(rule: &str, when: &str) -> Analysis {
    let lx = lexicon();
    let pieces = normalise(lex(rule));
    let mut walk = Walk::new();
    let mut prefer = false;
    let mut prev_word: Option<String> = None;
    let mut prev_aux = false;
    let mut modal = false;
    let mut i = 0;
    while i < pieces.len() {
        let piece = &pieces[i];
        i += 1;
        match piece {
            Piece::Break => {
                walk.end_clause();
                prefer = false;
                prev_aux = false;
                prev_word = None;
            }
            Piece::Num { cmp, num, unit } => {
                walk.emit(format!("{unit}={cmp}{num}"), Kind::Value);
            }
            Piece::Kv { key, val } => {
                walk.emit(key.clone(), ident_kind(key));
                if val.is_empty() {
                    continue;
                }
                if let Some((num, unit)) = parse_number(val) {
                    if let Piece::Num { num, unit, .. } = number("", &num, &unit) {
                        walk.emit(format!("{unit}={num}"), Kind::Value);
                        walk.emit(format!("{key}:={num}"), Kind::Value);
                    }
                } else {
                    let (token, negated) = value_word(val);
                    let mark = if negated { "!" } else { "" };
                    walk.emit(format!("{key}:={mark}{token}"), Kind::Value);
                    let kind = if looks_like_identifier(val) {
                        Kind::Ident
                    } else {
                        Kind::Word
                    };
                    if negated {
                        walk.emit_antonym(token);
                    } else {
                        walk.emit(token, kind);
                    }
                }
            }
            Piece::Ident(id) => {
                prev_word = None;
                walk.emit(id.clone(), Kind::Ident);
            }
            Piece::Code(w) => {
                prev_word = None;
                walk.emit(word_token(w), Kind::Word);
            }
            Piece::Word(w) => {
                let w = w.as_str();
                // Order cues.
                if BEFORE_CUES.contains(&w) || AFTER_CUES.contains(&w) {
                    let after = AFTER_CUES.contains(&w);
                    // "Don't X until Y", "never X before Y": the negation was an order.
                    if walk.neg.is_some() && w == "until" {
                        walk.cancel_negation();
                    }
                    walk.end_scope();
                    if walk.clause_len == 0 {
                        let info = &mut walk.segs[walk.segment];
                        if after {
                            info.leading_after = true;
                        } else {
                            info.leading_before = true;
                        }
                    } else {
                        walk.new_segment();
                        let info = &mut walk.segs[walk.segment];
                        if after {
                            info.follows_after = true;
                        } else {
                            info.follows_before = true;
                        }
                    }
                    let token = if after { "after" } else { "before" };
                    walk.emit(token.into(), Kind::Word);
                    walk.seg_len -= 1;
                    continue;
                }
                if FIRST_CUES.contains(&w) {
                    walk.segs[walk.segment].first = true;
                    walk.emit("before".into(), Kind::Word);
                    walk.seg_len -= 1;
                    continue;
                }
                if THEN_CUES.contains(&w) {
                    if walk.seg_len > 0 && (w == "then" || w == "next") {
                        walk.new_segment();
                    }
                    walk.segs[walk.segment].then = true;
                    walk.emit("after".into(), Kind::Word);
                    walk.seg_len -= 1;
                    continue;
                }
                if matches!(
                    w,
                    "and" | "but" | "so" | "while" | "because" | "unless" | "except"
                ) {
                    walk.end_scope();
                    walk.new_segment();
                    prev_word = None;
                    continue;
                }
                if w == "aux" {
                    prev_aux = true;
                    continue;
                }
                if w == "modal" {
                    modal = true;
                    continue;
                }
                if (w == "never" || w == "not")
                    && (modal
                        || matches!(
                            prev_word.as_deref(),
                            Some("must" | "should" | "shall" | "may" | "can" | "will")
                        ))
                    && walk.clause_len > 0
                {
                    walk.negate_subject();
                }
                modal = false;
                // Negation cues.
                if lexicon::NEGATIONS.contains(&w) || (w == "over" && prefer) {
                    // "X is not used", "X does not work": the negation is about X.
                    if w == "not"
                        && prev_aux
                        && let Some(Piece::Word(next)) = pieces.get(i)
                        && lexicon::BACKWARD_PREDICATES.contains(&next.as_str())
                    {
                        walk.negate_back();
                        i += 1;
                        prev_aux = false;
                        continue;
                    }
                    // "Don't X without Y": a double negation, "Y before X".
                    if w == "without" && walk.neg.is_some() {
                        walk.cancel_negation();
                        prev_aux = false;
                        continue;
                    }
                    walk.start_negation();
                    prev_aux = false;
                    continue;
                }
                prev_aux = false;
                if lexicon::PREFER.contains(&w) {
                    prefer = true;
                }
                // "0 is wrong", "X is deprecated": the negation is about what precedes.
                if matches!(
                    w,
                    "wrong"
                        | "forbidden"
                        | "banned"
                        | "deprecated"
                        | "discouraged"
                        | "insecure"
                        | "unsafe"
                ) && matches!(prev_word.as_deref(), Some("is" | "are" | "was"))
                {
                    walk.negate_back();
                    continue;
                }
                prev_word = Some(w.to_string());
                if let Some(partner) = lx.antonyms.get(w) {
                    walk.emit_antonym(word_token(partner));
                    continue;
                }
                if lexicon::AFFIRMATIVES.contains(&w) {
                    walk.emit("enable".into(), Kind::Word);
                    continue;
                }
                if lx.stopwords.contains_key(w) || w.chars().count() < 2 {
                    walk.skipped(w);
                    continue;
                }
                // "List the workflows" (a verb) but "the filtered list" (a noun).
                if let Some((_, verb)) = lexicon::VERB_ONLY.iter().find(|(from, _)| *from == w) {
                    let token = if walk.clause_len == 0 {
                        (*verb).to_string()
                    } else {
                        lexicon::stem(w)
                    };
                    walk.emit(token, Kind::Word);
                    continue;
                }
                walk.emit(word_token(w), Kind::Word);
            }
        }
    }
    let phases = phases(&walk.segs);
    let mut terms: Vec<Term> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    for e in &walk.emitted {
        let (early, late) = phases.get(e.segment).copied().unwrap_or((false, false));
        if !matches!(e.text.as_str(), "before" | "after") {
            order.push(e.text.clone());
        }
        match terms.iter_mut().find(|t| t.text == e.text) {
            Some(t) => {
                t.pos |= !e.neg;
                t.neg |= e.neg;
                t.head |= e.head;
                t.early |= early;
                t.late |= late;
                t.lead |= e.lead;
                if e.kind == Kind::Ident {
                    t.kind = Kind::Ident;
                }
            }
            None => terms.push(Term {
                text: e.text.clone(),
                kind: e.kind,
                pos: !e.neg,
                neg: e.neg,
                head: e.head,
                early,
                late,
                lead: e.lead,
            }),
        }
    }
    terms.sort_by(|a, b| a.text.cmp(&b.text));
    let seq: Vec<u16> = order
        .iter()
        .filter_map(|text| terms.binary_search_by(|t| t.text.as_str().cmp(text)).ok())
        .map(|k| k as u16)
        .collect();
    let when_tokens: Vec<String> = normalise(lex(when))
        .into_iter()
        .filter_map(|p| match p {
            Piece::Word(w) => {
                let w = w.as_str();
                (!lx.stopwords.contains_key(w)
                    && w.chars().count() > 1
                    && !lexicon::NEGATIONS.contains(&w)
                    && w != "aux")
                    .then(|| word_token(w))
            }
            Piece::Code(w) => Some(word_token(&w)),
            Piece::Ident(id) => Some(id),
            Piece::Kv { key, .. } => Some(key),
            Piece::Num { .. } | Piece::Break => None,
        })
        .collect();
    Analysis {
        terms,
        seq,
        when: when_tokens,
    }
}

/// A setting's value as a token, and whether it reads as a negation (`false`, `off`).
fn value_word(val: &str) -> (String, bool) {
    let lex = lexicon();
    if let Some(partner) = lex.antonyms.get(val) {
        return (word_token(partner), true);
    }
    if lexicon::AFFIRMATIVES.contains(&val) {
        return ("enable".into(), false);
    }
    if looks_like_identifier(val) {
        (val.to_string(), false)
    } else {
        (word_token(val), false)
    }
}

fn ident_kind(id: &str) -> Kind {
    if id.chars().all(|c| c.is_ascii_alphabetic()) {
        Kind::Word
    } else {
        Kind::Ident
    }
}

/// The order cues seen in one segment of a rule.
#[derive(Clone, Copy, Debug, Default)]
struct SegInfo {
    leading_before: bool,
    leading_after: bool,
    follows_before: bool,
    follows_after: bool,
    first: bool,
    then: bool,
}

impl SegInfo {
    fn any(&self) -> bool {
        self.leading_before
            || self.leading_after
            || self.follows_before
            || self.follows_after
            || self.first
            || self.then
    }
}

/// Each segment's phase: (early, late).
fn phases(segs: &[SegInfo]) -> Vec<(bool, bool)> {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        None,
        Early,
        Late,
    }
    let mut p = vec![P::None; segs.len()];
    for (k, s) in segs.iter().enumerate() {
        if s.follows_before {
            // "X before Y": this segment is Y.
            p[k] = P::Late;
            if k > 0 && p[k - 1] == P::None {
                p[k - 1] = P::Early;
            }
        } else if s.follows_after {
            // "X after Y" / "X until Y": this segment is Y.
            p[k] = P::Early;
            if k > 0 && p[k - 1] == P::None {
                p[k - 1] = P::Late;
            }
        } else if s.leading_before {
            p[k] = P::Late;
            if k + 1 < segs.len() && !segs[k + 1].any() {
                p[k + 1] = P::Early;
            } else if k > 0 && p[k - 1] == P::None {
                p[k - 1] = P::Early;
            }
        } else if s.leading_after {
            p[k] = P::Early;
            if k + 1 < segs.len() && !segs[k + 1].any() {
                p[k + 1] = P::Late;
            }
        } else if s.first {
            p[k] = P::Early;
        } else if s.then {
            p[k] = P::Late;
            if k > 0 && p[k - 1] == P::None {
                p[k - 1] = P::Early;
            }
        }
    }
    p.into_iter()
        .map(|x| (x == P::Early, x == P::Late))
        .collect()
}
