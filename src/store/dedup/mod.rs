//! Near-duplicate and contradiction detection between rules, by a measured method.
//!
//! A rule (its text and its "when") is analysed into *terms* ([`analyse`]): normalised word
//! forms and the common synonyms of instructions folded into one token, code identifiers
//! kept verbatim, numbers with their units and comparators as *values*, each term marked
//! with its polarity (affirmed, negated, the head of a negation) and its place in an order
//! ("X before Y"). Two rules are then compared part by part ([`compare`]), every term
//! weighted by how rare it is in the store (inverse document frequency over the store's own
//! vocabulary), so that "pin numpy<2" and "pin pandas<2" differ by the one word that says
//! which rule it is, while "list" and "check" do not:
//!
//! 1. too little in common (weighted Jaccard and overlap): distinct;
//! 2. each rule names a subject the other does not, in otherwise the same words (another
//!    package, function, file, client, service): distinct;
//! 3. the same thing, given another member of a set of alternatives (tabs / spaces, npm /
//!    pnpm, merge / rebase): a conflict;
//! 4. the same thing, given another value of the same kind (30 s / 5 s, `<2` / `<1.26`,
//!    80 % / 90 %): a conflict;
//! 5. a negation head affirmed by the other rule (return None, not 0 / return 0, not None;
//!    commit the lock file / never commit it): a conflict;
//! 6. the same steps in the opposite order: a conflict;
//! 7. the rules read the same but their "when" names different subjects: distinct;
//! 8. similar enough: the same rule; in a band below: unsure (a [`Judge`] may decide).
//!
//! Precision and recall on the labelled pairs (`tests/fixtures/curation/`) are printed by
//! `cargo bench --bench curation` and kept in docs/rules.md; the thresholds were chosen on
//! the dev pairs only.

mod analyse;
pub mod embed;
pub mod eval;
pub(crate) mod lexicon;
pub mod scan;

use std::collections::HashMap;

use serde::Serialize;

pub use analyse::analyse;

/// What a term is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A word (stemmed, synonyms folded).
    Word,
    /// Code: an identifier, path, flag or operator, verbatim.
    Ident,
    /// A number with its unit and comparator (`s=<30`), or a setting's value (`tz:=utc`).
    Value,
}

/// One normalised term of a rule, with where and how it occurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Term {
    /// The token.
    pub text: String,
    /// Word, code or value.
    pub kind: Kind,
    /// It occurs affirmed.
    pub pos: bool,
    /// It occurs inside a negation.
    pub neg: bool,
    /// It is the first token of a negation ("not *0*", "never *commit*").
    pub head: bool,
    /// It is part of the earlier step of an order ("*X* before Y").
    pub early: bool,
    /// It is part of the later step.
    pub late: bool,
    /// It opens a clause, where an instruction's verb stands ("*List* the workflows").
    pub lead: bool,
}

/// The analysed form of a rule, as stored beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// The rule text's terms, sorted by text, one per text.
    pub terms: Vec<Term>,
    /// The order the words and code of the rule text came in: indices into `terms`.
    pub seq: Vec<u16>,
    /// The "when" text's tokens, in order.
    pub when: Vec<String>,
}

/// The version of the analysis: stored forms of another version are analysed again.
pub const ANALYSIS_VERSION: &str = "a3";

impl Analysis {
    /// The tokens the store indexes: every term of the rule text.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.text.as_str())
    }

    /// The term texts of a stored form, without decoding the rest (a quick overlap check).
    pub fn tokens_of(encoded: &str) -> impl Iterator<Item = &str> {
        encoded
            .split('\t')
            .nth(1)
            .unwrap_or_default()
            .split(' ')
            .filter_map(|item| item.split_once(':').map(|(_, text)| text))
    }

    /// A compact text form for storage, tab-separated: the version, the terms (`flags:text`,
    /// space separated), their order (indices), the "when" tokens (tokens never contain
    /// whitespace).
    pub fn encode(&self) -> String {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let mut flags = String::with_capacity(6);
                flags.push(match t.kind {
                    Kind::Word => 'w',
                    Kind::Ident => 'i',
                    Kind::Value => 'v',
                });
                for (on, c) in [
                    (t.pos, '+'),
                    (t.neg, '-'),
                    (t.head, 'h'),
                    (t.early, 'e'),
                    (t.late, 'l'),
                    (t.lead, 'v'),
                ] {
                    if on {
                        flags.push(c);
                    }
                }
                format!("{flags}:{}", t.text)
            })
            .collect();
        let seq: Vec<String> = self.seq.iter().map(|k| k.to_string()).collect();
        format!(
            "{ANALYSIS_VERSION}\t{}\t{}\t{}",
            terms.join(" "),
            seq.join(" "),
            self.when.join(" ")
        )
    }

    /// Reads [`Analysis::encode`]'s form; `None` for another version or a damaged value.
    pub fn decode(text: &str) -> Option<Analysis> {
        let mut fields = text.split('\t');
        if fields.next()? != ANALYSIS_VERSION {
            return None;
        }
        let terms_field = fields.next()?;
        let seq_field = fields.next()?;
        let when_field = fields.next()?;
        if fields.next().is_some() {
            return None;
        }
        let mut terms = Vec::new();
        for item in terms_field.split(' ').filter(|s| !s.is_empty()) {
            let (flags, text) = item.split_once(':')?;
            let mut chars = flags.chars();
            let kind = match chars.next()? {
                'w' => Kind::Word,
                'i' => Kind::Ident,
                'v' => Kind::Value,
                _ => return None,
            };
            let rest: String = chars.collect();
            terms.push(Term {
                text: text.to_string(),
                kind,
                pos: rest.contains('+'),
                neg: rest.contains('-'),
                head: rest.contains('h'),
                early: rest.contains('e'),
                late: rest.contains('l'),
                lead: rest.contains('v'),
            });
        }
        let mut seq = Vec::new();
        for k in seq_field.split(' ').filter(|s| !s.is_empty()) {
            let k: u16 = k.parse().ok()?;
            if usize::from(k) >= terms.len() {
                return None;
            }
            seq.push(k);
        }
        Some(Analysis {
            terms,
            seq,
            when: when_field
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// Where the decisions switch; the defaults were chosen on the labelled dev pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Below this weighted similarity (of what is not a substituted value or alternative)
    /// two rules are never related; the bound the candidate lookup is complete for.
    pub min: f64,
    /// At or above this weighted similarity two rules say the same thing.
    pub same: f64,
    /// Below [`Thresholds::same`] but with this much of the shorter rule covered, and at
    /// least [`Thresholds::min`] similar: the same rule said at more length.
    pub cover: f64,
    /// From this share of the words aligned in order, a swapped subject makes two rules
    /// distinct.
    pub template: f64,
    /// From this share aligned, any swapped word makes them distinct.
    pub tight: f64,
    /// From this share aligned, a swapped subject beside another value or alternative
    /// makes them distinct.
    pub loose: f64,
    /// Similarity of the rest from which another value or another alternative is a
    /// conflict.
    pub conflict: f64,
    /// Or this much of the shorter rule's rest covered.
    pub conflict_cover: f64,
    /// Overlap from which a polarity flip or a reversed order is a conflict.
    pub flip: f64,
    /// From this similarity the "when" texts are compared for different subjects.
    pub context: f64,
    /// Share of the "when" words aligned from which a swapped subject there counts.
    pub context_template: f64,
    /// The band below [`Thresholds::same`] where a judge is asked (when there is one); with
    /// a judge, the store looks up candidates down to it.
    pub unsure: f64,
    /// The share of a new rule's weight a stored rule must contain in exact terms to be
    /// looked up (without a judge): every merge and conflict of the dev pairs but one has
    /// at least this much.
    pub lookup: f64,
    /// Weight factor of the generic words of rules ("test", "code", "file").
    pub generic: f64,
    /// Weight factor of code (identifiers, paths).
    pub ident: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min: 0.2,
            same: 0.3,
            cover: 0.7,
            template: 0.55,
            tight: 0.7,
            loose: 0.35,
            conflict: 0.4,
            conflict_cover: 0.6,
            flip: 0.45,
            context: 0.9,
            context_template: 0.15,
            unsure: 0.25,
            lookup: 0.3,
            generic: 0.75,
            ident: 1.25,
        }
    }
}

/// How two rules relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// They say the same thing: merge.
    Same,
    /// Same subject, incompatible instruction: flag for review.
    Conflict,
    /// Related, not clearly the same: a judge may decide.
    Borderline,
    /// Unrelated or about different things.
    Distinct,
}

/// Why [`compare`] decided what it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Too little in common.
    Unrelated,
    /// Each names a subject the other does not.
    Subject,
    /// Another member of a set of alternatives.
    Choice,
    /// Another value of the same kind.
    Value,
    /// The instruction is negated in one and affirmed in the other.
    Flip,
    /// The same steps in the opposite order.
    Order,
    /// Their "when" names different subjects.
    Context,
    /// Similar enough.
    Similar,
    /// In the band where a judge may decide.
    Unsure,
}

/// The outcome of [`compare`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// How they relate.
    pub relation: Relation,
    /// Weighted Jaccard similarity of their terms (0..1).
    pub similarity: f64,
    /// Why.
    pub reason: Reason,
}

/// The rarity weight of a token that `df` of `docs` stored rules contain.
pub fn idf(docs: u64, df: u64) -> f64 {
    1.0 + ((docs as f64 + 1.0) / (df as f64 + 1.0)).ln()
}

/// How much a term counts, given its rarity weight: generic words less, code more.
pub fn term_weight(term: &Term, rarity: f64, t: &Thresholds) -> f64 {
    let lex = lexicon::lexicon();
    let factor = match term.kind {
        Kind::Ident => t.ident,
        Kind::Value => 1.0,
        Kind::Word if lex.generic.contains_key(term.text.as_str()) => t.generic,
        Kind::Word => 1.0,
    };
    rarity * factor
}

/// A value term's parts: (dimension, comparator direction, number or value).
fn value_parts(text: &str) -> (&str, i8, &str) {
    let (dim, rest) = text.split_once('=').unwrap_or(("", text));
    let (dir, num) = if let Some(n) = rest.strip_prefix("<=") {
        (-1, n)
    } else if let Some(n) = rest.strip_prefix(">=") {
        (1, n)
    } else if let Some(n) = rest.strip_prefix('<') {
        (-1, n)
    } else if let Some(n) = rest.strip_prefix('>') {
        (1, n)
    } else {
        (0, rest)
    };
    (dim, dir, num)
}

/// Whether two values are of one kind: the same unit, or a plain number and a share or a
/// count (`maxWorkers 2` / `50%`).
fn same_dimension(a: &str, b: &str) -> bool {
    a == b || (a.is_empty() && matches!(b, "%" | "x")) || (b.is_empty() && matches!(a, "%" | "x"))
}

/// Whether `terms` name the number of `value` anywhere (as a value or inside code): a rule
/// that mentions both numbers does not replace one with the other ("not 0" and
/// "`safe_divide(1, 0) is None`" agree on 0).
fn mentions_value(terms: &[Term], value: &str) -> bool {
    let num = value_parts(value).2;
    !num.is_empty()
        && terms.iter().any(|t| match t.kind {
            Kind::Value => value_parts(&t.text).2 == num,
            Kind::Ident => t.text == num,
            Kind::Word => false,
        })
}

fn values_match(a: &str, b: &str) -> bool {
    let (da, xa, na) = value_parts(a);
    let (db, xb, nb) = value_parts(b);
    da == db && na == nb && (xa == xb || xa == 0 || xb == 0)
}

/// Whether an unmatched term says *which thing* a rule is about (a package, function,
/// file, client, service) rather than how it is worded.
fn subject_like(t: &Term) -> bool {
    let lex = lexicon::lexicon();
    match t.kind {
        Kind::Value => false,
        Kind::Ident => true,
        Kind::Word => {
            !lex.generic.contains_key(t.text.as_str())
                && !lex.actions.contains_key(t.text.as_str())
                && t.text.len() >= 2
        }
    }
}

/// How far two unmatched terms still match: word forms of one root ("sender" / "send"),
/// the same code written longer (`std::mem::take` / `mem::take`), a word that is a part of
/// an identifier (`page.goto` / "goto"). 0 when they do not.
fn soft_match(x: &Term, y: &Term) -> f64 {
    match (x.kind, y.kind) {
        (Kind::Value, _) | (_, Kind::Value) => 0.0,
        (Kind::Word, Kind::Word) => {
            let (a, b) = (x.text.as_bytes(), y.text.as_bytes());
            let common = a.iter().zip(b).take_while(|(p, q)| p == q).count();
            let shorter = a.len().min(b.len());
            if (common == shorter && shorter >= 4) || common >= 5 {
                0.8
            } else {
                0.0
            }
        }
        (Kind::Ident, Kind::Ident) => {
            let bare = |s: &str| {
                s.chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
            };
            if bare(&x.text) == bare(&y.text) {
                return 1.0;
            }
            let (long, short) = if x.text.len() >= y.text.len() {
                (&x.text, &y.text)
            } else {
                (&y.text, &x.text)
            };
            let boundary = long.len() - short.len();
            let after_separator = boundary > 0 && long[..boundary].ends_with(['.', ':', '/']);
            if long.ends_with(short.as_str()) && after_separator {
                0.9
            } else {
                0.0
            }
        }
        (Kind::Ident, Kind::Word) | (Kind::Word, Kind::Ident) => {
            let (ident, word) = if x.kind == Kind::Ident {
                (x, y)
            } else {
                (y, x)
            };
            let parts = ident
                .text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|p| p.len() >= 3);
            let mut hit = false;
            for part in parts {
                let part_token = analyse::word_token(part);
                if part_token == word.text || part == word.text {
                    hit = true;
                }
            }
            if hit { 0.6 } else { 0.0 }
        }
    }
}

/// Tokens of each sequence left unaligned at the same place.
type Gap = (Vec<usize>, Vec<usize>);

/// The weighted longest common subsequence of two token sequences, and the gaps between
/// its matches: (tokens of `a`, tokens of `b`) left unaligned at the same place.
fn align(
    seq_a: &[usize],
    seq_b: &[usize],
    credit: &dyn Fn(usize, usize) -> f64,
) -> (f64, Vec<Gap>) {
    let (n, m) = (seq_a.len(), seq_b.len());
    let mut dp = vec![vec![0.0f64; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let c = credit(seq_a[i], seq_b[j]);
            let take = if c > 0.0 { c + dp[i + 1][j + 1] } else { 0.0 };
            dp[i][j] = take.max(dp[i + 1][j]).max(dp[i][j + 1]);
        }
    }
    let mut gaps = Vec::new();
    let (mut gap_a, mut gap_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        let c = credit(seq_a[i], seq_b[j]);
        if c > 0.0 && (dp[i][j] - (c + dp[i + 1][j + 1])).abs() < 1e-9 {
            if !gap_a.is_empty() || !gap_b.is_empty() {
                gaps.push((std::mem::take(&mut gap_a), std::mem::take(&mut gap_b)));
            }
            i += 1;
            j += 1;
        } else if (dp[i][j] - dp[i + 1][j]).abs() < 1e-9 {
            gap_a.push(seq_a[i]);
            i += 1;
        } else {
            gap_b.push(seq_b[j]);
            j += 1;
        }
    }
    gap_a.extend(&seq_a[i..]);
    gap_b.extend(&seq_b[j..]);
    if !gap_a.is_empty() || !gap_b.is_empty() {
        gaps.push((gap_a, gap_b));
    }
    (dp[0][0], gaps)
}

/// Compares two analysed rules. `rarity` gives a token's rarity weight in the store
/// ([`idf`]).
pub fn compare(
    a: &Analysis,
    b: &Analysis,
    rarity: &dyn Fn(&str) -> f64,
    t: &Thresholds,
) -> Verdict {
    let lex = lexicon::lexicon();
    let wa: Vec<f64> = a
        .terms
        .iter()
        .map(|x| term_weight(x, rarity(&x.text), t))
        .collect();
    let wb: Vec<f64> = b
        .terms
        .iter()
        .map(|x| term_weight(x, rarity(&x.text), t))
        .collect();
    // Each term's match in the other rule, with its credit (1 exact, less for a soft match).
    let mut ma: Vec<Option<(usize, f64)>> = vec![None; a.terms.len()];
    let mut mb: Vec<Option<(usize, f64)>> = vec![None; b.terms.len()];
    let (mut i, mut j) = (0, 0);
    while i < a.terms.len() && j < b.terms.len() {
        match a.terms[i].text.cmp(&b.terms[j].text) {
            std::cmp::Ordering::Equal => {
                ma[i] = Some((j, 1.0));
                mb[j] = Some((i, 1.0));
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    // Values match by meaning (`<2` and `2` do, `<80%` and `>80%` do not).
    for (i, x) in a.terms.iter().enumerate() {
        if ma[i].is_some() || x.kind != Kind::Value {
            continue;
        }
        if let Some(j) = (0..b.terms.len()).find(|&j| {
            mb[j].is_none()
                && b.terms[j].kind == Kind::Value
                && values_match(&x.text, &b.terms[j].text)
        }) {
            ma[i] = Some((j, 1.0));
            mb[j] = Some((i, 1.0));
        }
    }
    for (i, x) in a.terms.iter().enumerate() {
        if ma[i].is_some() {
            continue;
        }
        let best = (0..b.terms.len())
            .filter(|&j| mb[j].is_none())
            .map(|j| (j, soft_match(x, &b.terms[j])))
            .filter(|(_, c)| *c > 0.0)
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((j, c)) = best {
            ma[i] = Some((j, c));
            mb[j] = Some((i, c));
        }
    }
    let choice_of = |x: &Term| lex.choices.get(x.text.trim_start_matches('-')).copied();
    // Substitutions that are the point of a conflict: another alternative of one set,
    // another value of one kind. They are left out of the "rest" the rules share.
    let mut substituted_a = vec![false; a.terms.len()];
    let mut substituted_b = vec![false; b.terms.len()];
    let (mut choice, mut value) = (false, false);
    for (i, x) in a.terms.iter().enumerate() {
        if ma[i].is_some() {
            continue;
        }
        for (j, y) in b.terms.iter().enumerate() {
            if mb[j].is_some() {
                continue;
            }
            if let (Some(c), Some(d)) = (choice_of(x), choice_of(y))
                && c == d
            {
                choice = true;
                substituted_a[i] = true;
                substituted_b[j] = true;
            }
            if x.kind == Kind::Value
                && y.kind == Kind::Value
                && same_dimension(value_parts(&x.text).0, value_parts(&y.text).0)
                && !mentions_value(&b.terms, &x.text)
                && !mentions_value(&a.terms, &y.text)
            {
                value = true;
                substituted_a[i] = true;
                substituted_b[j] = true;
            }
        }
    }
    // A setting's value also stands as a word: `tz:=utc` and `utc`.
    let value_words = |terms: &[Term], subst: &[bool]| -> Vec<String> {
        terms
            .iter()
            .zip(subst)
            .filter(|(x, s)| **s && x.kind == Kind::Value)
            .filter_map(|(x, _)| {
                x.text
                    .split_once(":=")
                    .map(|(_, v)| v.trim_start_matches('!').to_string())
            })
            .collect()
    };
    for (terms, subst, matched) in [
        (&a.terms, &mut substituted_a, &ma),
        (&b.terms, &mut substituted_b, &mb),
    ] {
        let words = value_words(terms, subst);
        for (k, x) in terms.iter().enumerate() {
            if matched[k].is_none() && words.contains(&x.text) {
                subst[k] = true;
            }
        }
    }
    let mut shared = 0.0;
    let (mut only_a, mut only_b) = (0.0, 0.0);
    let (mut rest_a, mut rest_b) = (0.0, 0.0);
    for (i, m) in ma.iter().enumerate() {
        match m {
            Some((j, c)) => {
                shared += c * (wa[i] + wb[*j]) / 2.0;
                only_a += (1.0 - c) * wa[i];
                rest_a += (1.0 - c) * wa[i];
            }
            None => {
                only_a += wa[i];
                if !substituted_a[i] {
                    rest_a += wa[i];
                }
            }
        }
    }
    for (j, m) in mb.iter().enumerate() {
        match m {
            Some((_, c)) => {
                only_b += (1.0 - c) * wb[j];
                rest_b += (1.0 - c) * wb[j];
            }
            None => {
                only_b += wb[j];
                if !substituted_b[j] {
                    rest_b += wb[j];
                }
            }
        }
    }
    let ratio = |x: f64, y: f64| if y <= 0.0 { 0.0 } else { x / y };
    let similarity = ratio(shared, shared + only_a + only_b);
    let cover = ratio(shared, shared + only_a.min(only_b));
    let rest_similarity = ratio(shared, shared + rest_a + rest_b);
    let rest_cover = ratio(shared, shared + rest_a.min(rest_b));
    let verdict = |relation, reason| Verdict {
        relation,
        similarity,
        reason,
    };
    if rest_similarity < t.min && rest_cover < t.cover {
        return verdict(Relation::Distinct, Reason::Unrelated);
    }
    // Template: the same words in the same order with one part swapped.
    let seq_a: Vec<usize> = a.seq.iter().map(|k| usize::from(*k)).collect();
    let seq_b: Vec<usize> = b.seq.iter().map(|k| usize::from(*k)).collect();
    let credit = |i: usize, j: usize| match ma[i] {
        Some((k, c)) if k == j => c * (wa[i] + wb[j]) / 2.0,
        _ => 0.0,
    };
    let (aligned, gaps) = align(&seq_a, &seq_b, &credit);
    let seq_weight = |seq: &[usize], w: &[f64]| seq.iter().map(|k| w[*k]).sum::<f64>();
    let template = ratio(
        aligned,
        (seq_weight(&seq_a, &wa) + seq_weight(&seq_b, &wb)) / 2.0,
    );
    // A swapped verb ("list" / "look up") is wording; a swapped object is another thing.
    let unmatched_content =
        |terms: &[Term], m: &[Option<(usize, f64)>], subst: &[bool], k: usize| {
            m[k].is_none() && !subst[k] && terms[k].kind != Kind::Value && !terms[k].lead
        };
    let mut swapped = false;
    let mut swapped_subject = false;
    for (ga, gb) in &gaps {
        let xa: Vec<usize> = ga
            .iter()
            .copied()
            .filter(|k| unmatched_content(&a.terms, &ma, &substituted_a, *k))
            .collect();
        let xb: Vec<usize> = gb
            .iter()
            .copied()
            .filter(|k| unmatched_content(&b.terms, &mb, &substituted_b, *k))
            .collect();
        if !xa.is_empty() && !xb.is_empty() {
            swapped = true;
            if xa.iter().any(|k| subject_like(&a.terms[*k]))
                && xb.iter().any(|k| subject_like(&b.terms[*k]))
            {
                swapped_subject = true;
            }
        }
    }
    let ident_unmatched = |terms: &[Term], m: &[Option<(usize, f64)>], subst: &[bool]| {
        terms.iter().enumerate().any(|(k, x)| {
            x.kind == Kind::Ident && m[k].is_none() && !subst[k] && choice_of(x).is_none()
        })
    };
    let idents = ident_unmatched(&a.terms, &ma, &substituted_a)
        && ident_unmatched(&b.terms, &mb, &substituted_b);
    let subject =
        (swapped && template >= t.tight) || (swapped_subject && template >= t.template) || idents;
    if subject {
        return verdict(Relation::Distinct, Reason::Subject);
    }
    // Two orders ("X before Y") whose earlier steps share nothing at all: two instructions
    // for the same moment ("Run the tests before saying it is done" / "Summarise the
    // changes before saying it is done"). Steps that moved to the other side are an order
    // conflict, not this.
    let unmatched_steps = |terms: &[Term], m: &[Option<(usize, f64)>]| {
        let early: Vec<usize> = (0..terms.len()).filter(|&k| terms[k].early).collect();
        !early.is_empty() && terms.iter().any(|x| x.late) && early.iter().all(|&k| m[k].is_none())
    };
    if unmatched_steps(&a.terms, &ma) && unmatched_steps(&b.terms, &mb) {
        return verdict(Relation::Distinct, Reason::Subject);
    }
    // Another value or alternative claims the same thing: a swapped subject beside it, even
    // in a looser frame, says it is another thing ("Postgres 16" / "Redis 7").
    if (value || choice) && swapped_subject && template >= t.loose {
        return verdict(Relation::Distinct, Reason::Subject);
    }
    let related = rest_similarity >= t.conflict || rest_cover >= t.conflict_cover;
    if choice && related {
        return verdict(Relation::Conflict, Reason::Choice);
    }
    if value && related {
        return verdict(Relation::Conflict, Reason::Value);
    }
    // A flip: a negation's head that the other rule affirms, unless the two negate the same
    // things more than they disagree ("never hard-code the token in config files" / "do
    // not put the token in config files").
    let neg_only = |x: &Term| x.neg && !x.pos;
    let pos_only = |x: &Term| x.pos && !x.neg;
    let (mut flipped, mut agreed) = (0.0, 0.0);
    for (i, m) in ma.iter().enumerate() {
        if let Some((j, c)) = m {
            let (x, y) = (&a.terms[i], &b.terms[*j]);
            let w = c * (wa[i] + wb[*j]) / 2.0;
            if *c >= 0.6
                && ((neg_only(x) && pos_only(y) && x.head)
                    || (neg_only(y) && pos_only(x) && y.head))
            {
                flipped += w;
            } else if x.neg && y.neg {
                agreed += w;
            }
        }
    }
    if flipped > agreed && cover >= t.flip {
        return verdict(Relation::Conflict, Reason::Flip);
    }
    let earlier = |x: &Term| x.early && !x.late;
    let later = |x: &Term| x.late && !x.early;
    let telling = |x: &Term| x.kind != Kind::Value && x.text != "before" && x.text != "after";
    let (mut forward, mut backward) = (false, false);
    for (i, m) in ma.iter().enumerate() {
        if let Some((j, _)) = m {
            let (x, y) = (&a.terms[i], &b.terms[*j]);
            if telling(x) {
                forward |= earlier(x) && later(y);
                backward |= later(x) && earlier(y);
            }
        }
    }
    if forward && backward && cover >= t.flip {
        return verdict(Relation::Conflict, Reason::Order);
    }
    if similarity >= t.same || (cover >= t.cover && similarity >= t.min) {
        if similarity >= t.context && context_differs(a, b, rarity, t) {
            return verdict(Relation::Distinct, Reason::Context);
        }
        return verdict(Relation::Same, Reason::Similar);
    }
    if similarity >= t.unsure {
        return verdict(Relation::Borderline, Reason::Unsure);
    }
    verdict(Relation::Distinct, Reason::Unrelated)
}

/// Two "when" texts worded alike that name different subjects ("adding numpy" / "adding
/// pandas").
fn context_differs(
    a: &Analysis,
    b: &Analysis,
    rarity: &dyn Fn(&str) -> f64,
    t: &Thresholds,
) -> bool {
    if a.when.is_empty() || b.when.is_empty() {
        return false;
    }
    let term = |text: &String| Term {
        text: text.clone(),
        kind: if text.chars().all(|c| c.is_ascii_alphabetic()) {
            Kind::Word
        } else {
            Kind::Ident
        },
        pos: true,
        neg: false,
        head: false,
        early: false,
        late: false,
        lead: false,
    };
    let ta: Vec<Term> = a.when.iter().map(term).collect();
    let tb: Vec<Term> = b.when.iter().map(term).collect();
    let wa: Vec<f64> = ta
        .iter()
        .map(|x| term_weight(x, rarity(&x.text), t))
        .collect();
    let wb: Vec<f64> = tb
        .iter()
        .map(|x| term_weight(x, rarity(&x.text), t))
        .collect();
    let seq_a: Vec<usize> = (0..ta.len()).collect();
    let seq_b: Vec<usize> = (0..tb.len()).collect();
    let credit = |i: usize, j: usize| {
        if ta[i].text == tb[j].text {
            (wa[i] + wb[j]) / 2.0
        } else {
            0.0
        }
    };
    let (aligned, gaps) = align(&seq_a, &seq_b, &credit);
    let total = wa.iter().sum::<f64>().max(wb.iter().sum::<f64>());
    let in_other = |x: &Term, other: &[Term]| other.iter().any(|y| y.text == x.text);
    // The first word of a "when" is its activity ("Undoing" / "Reverting"): wording.
    aligned / total.max(1e-9) >= t.context_template
        && gaps.iter().any(|(ga, gb)| {
            ga.iter()
                .any(|k| *k > 0 && subject_like(&ta[*k]) && !in_other(&ta[*k], &tb))
                && gb
                    .iter()
                    .any(|k| *k > 0 && subject_like(&tb[*k]) && !in_other(&tb[*k], &ta))
        })
}

/// The share of `a`'s weight that `b` contains in exactly the same terms: what the
/// store's lookup can see (it is complete for rules at or above its bound).
pub fn overlap_share(
    a: &Analysis,
    b: &Analysis,
    rarity: &dyn Fn(&str) -> f64,
    t: &Thresholds,
) -> f64 {
    let mut total = 0.0;
    let mut shared = 0.0;
    for x in &a.terms {
        let w = term_weight(x, rarity(&x.text), t);
        total += w;
        if b.terms.binary_search_by(|y| y.text.cmp(&x.text)).is_ok() {
            shared += w;
        }
    }
    if total == 0.0 { 0.0 } else { shared / total }
}

/// How many of a rule's tokens, rarest first, must be looked up so that every stored rule
/// sharing at least `bound` of its weight shares one of them (weighted prefix filtering):
/// the tokens left out weigh less than `bound` of the whole. `weights` are sorted from the
/// heaviest.
pub fn probe_len(weights: &[f64], bound: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut rest = total;
    for (k, w) in weights.iter().enumerate() {
        if rest < bound * total - 1e-12 {
            return k;
        }
        rest -= w;
    }
    weights.len()
}

/// A rarity table: document frequencies over a set of analysed rules.
#[derive(Clone, Debug, Default)]
pub struct Rarity {
    /// How many rules.
    pub docs: u64,
    /// Rules containing each token.
    pub df: HashMap<String, u64>,
}

impl Rarity {
    /// The table of these rules' tokens.
    pub fn of<'a>(rules: impl IntoIterator<Item = &'a Analysis>) -> Rarity {
        let mut r = Rarity::default();
        for a in rules {
            r.docs += 1;
            for t in a.tokens() {
                *r.df.entry(t.to_string()).or_default() += 1;
            }
        }
        r
    }

    /// A token's weight ([`idf`]); one never seen counts as seen once.
    pub fn weight(&self, token: &str) -> f64 {
        idf(self.docs, self.df.get(token).copied().unwrap_or(1).max(1))
    }
}

/// A second opinion where the method is unsure (the teacher, or an embeddings endpoint).
pub trait Judge {
    /// Whether the two rule texts give the same instruction; `None` when it cannot tell.
    fn same_rule(&self, a: &str, b: &str) -> Option<bool>;

    /// How the two rule texts relate: the same rule, a conflict, or distinct (never
    /// borderline); `None` when it cannot tell. The store asks only [`Judge::same_rule`];
    /// the curation bench asks this to measure a judge that decides every pair it is shown.
    /// By default [`Judge::same_rule`]'s answer, which knows no conflicts.
    fn relation(&self, a: &str, b: &str) -> Option<Relation> {
        self.same_rule(a, b).map(|same| {
            if same {
                Relation::Same
            } else {
                Relation::Distinct
            }
        })
    }
}

#[cfg(test)]
mod tests;
