//! From ranked rules to a managed section's body, within a file's budget; and back, from a
//! section body (written by hand, or by an older promptloop) to rule entries.
//!
//! The store ranks (see [`StoredRule::value`]); this module decides how many of the ranked
//! rules fit and renders them. Writing the body into the file is `rules::file`'s job.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::StoredRule;
use super::evidence::{Validation, Verdict};
use crate::rules::format::{
    Label, Rule, one_line, parse_answer, parse_label, render_entry, source_phrase,
};

/// The first line of every rendered body, so a reader knows where the text comes from.
pub const MARKER: &str = "<!-- promptloop: rendered from its rule store; `promptloop rules list` shows every rule, `promptloop rules edit|retire ID` changes them -->";

/// A budget for a whole instruction file, the user's text included. Claude Code's advice
/// is to keep CLAUDE.md under about 200 lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Lines at most.
    pub lines: usize,
    /// Characters at most.
    pub chars: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            lines: 200,
            chars: 12_000,
        }
    }
}

/// When the user's own text leaves less room than this, the section still shows this many
/// rules (and says the file is over budget): an empty section would silently drop every rule.
pub const MIN_SHOWN: usize = 3;

/// A rendered section body and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedSection {
    /// The body (LF line endings), starting with a blank line after the heading.
    pub body: String,
    /// Ids of the rules shown, in file order.
    pub shown: Vec<String>,
    /// Active rules left out for the budget.
    pub hidden: usize,
    /// The file is over its budget anyway (the user's text alone nearly fills it).
    pub over_budget: bool,
}

/// What the renderer knows about the rules besides their counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Rules whose latest validation found them helpful ("proven").
    pub helpful: BTreeSet<String>,
    /// Active rules left out because they went without evidence too long.
    pub aged_out: usize,
    /// That time, in days (for the section's summary line).
    pub max_age_days: Option<u32>,
}

/// Whether a rule has evidence that it earns its place: a validation found it helpful, a
/// run passed after it was learned, it was learned more than once, its failure recurred,
/// or a person put it there (imported, written by hand).
pub fn has_evidence(rule: &StoredRule, helpful: &BTreeSet<String>) -> bool {
    helpful.contains(&rule.id)
        || rule.times_validated > 0
        || rule.times_learned > 1
        || rule.recurrences > 0
        || rule
            .provenance
            .iter()
            .any(|p| matches!(p.failure_type.as_str(), "import" | "imported" | "hand_edit"))
}

/// Orders and selects `ranked` (most valuable first) by evidence: rules proven helpful
/// first (in their ranked order), then the rest; rules without evidence whose activation
/// (or creation) is more than `max_age_days` before `now` are left out (they stay in the
/// store). Harmful rules never get here: validation retires them.
pub fn select_by_evidence(
    ranked: Vec<StoredRule>,
    verdicts: &BTreeMap<String, Validation>,
    max_age_days: Option<u32>,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> (Vec<StoredRule>, Evidence) {
    let helpful: BTreeSet<String> = verdicts
        .values()
        .filter(|v| v.verdict == Verdict::Helpful)
        .map(|v| v.rule_id.clone())
        .collect();
    let mut aged_out = 0;
    let kept: Vec<StoredRule> = ranked
        .into_iter()
        .filter(|r| {
            let Some(days) = max_age_days else {
                return true;
            };
            if has_evidence(r, &helpful) {
                return true;
            }
            let since = r.activated_at.as_deref().unwrap_or(&r.created_at);
            let old = chrono::DateTime::parse_from_rfc3339(since)
                .map(|t| now.signed_duration_since(t) > chrono::Duration::days(i64::from(days)))
                .unwrap_or(false);
            if old {
                aged_out += 1;
            }
            !old
        })
        .collect();
    let (mut proven, rest): (Vec<StoredRule>, Vec<StoredRule>) =
        kept.into_iter().partition(|r| helpful.contains(&r.id));
    proven.extend(rest);
    (
        proven,
        Evidence {
            helpful,
            aged_out,
            max_age_days,
        },
    )
}

/// Renders the most valuable of `ranked` (most valuable first) that fit in `budget`, given
/// the lines and characters of the file outside the section.
pub fn render_section(
    ranked: &[StoredRule],
    budget: Budget,
    outside_lines: usize,
    outside_chars: usize,
) -> RenderedSection {
    render_with_evidence(
        ranked,
        budget,
        outside_lines,
        outside_chars,
        &Evidence::default(),
    )
}

/// [`render_section`], with what is known of the rules' evidence: proven rules come first
/// in their category, and the summary line says how many are proven and how many aged out.
pub fn render_with_evidence(
    ranked: &[StoredRule],
    budget: Budget,
    outside_lines: usize,
    outside_chars: usize,
    evidence: &Evidence,
) -> RenderedSection {
    let heading_chars = crate::rules::file::SECTION_HEADING.chars().count() + 1;
    let fits = |body: &str| {
        let lines = outside_lines + 1 + body.matches('\n').count();
        let chars = outside_chars + heading_chars + body.chars().count();
        lines <= budget.lines && chars <= budget.chars
    };
    let all = body_for(ranked, ranked.len(), budget, evidence);
    if fits(&all.0) {
        return RenderedSection {
            body: all.0,
            shown: all.1,
            hidden: 0,
            over_budget: false,
        };
    }
    // The size grows with the number shown, so the largest prefix that fits is found by
    // bisection (each probe renders once).
    let (mut lo, mut hi) = (0usize, ranked.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&body_for(ranked, mid, budget, evidence).0) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut shown = lo;
    let mut over_budget = !fits(&body_for(ranked, shown, budget, evidence).0);
    if shown < MIN_SHOWN.min(ranked.len()) {
        shown = MIN_SHOWN.min(ranked.len());
        over_budget = true;
    }
    let (body, ids) = body_for(ranked, shown, budget, evidence);
    RenderedSection {
        body,
        shown: ids,
        hidden: ranked.len() - shown,
        over_budget,
    }
}

/// The body showing the first `n` of `ranked`, grouped by category (alphabetical, no
/// category first) and, within one, proven rules first, then oldest first, so a new rule
/// does not reorder the file.
fn body_for(
    ranked: &[StoredRule],
    n: usize,
    budget: Budget,
    evidence: &Evidence,
) -> (String, Vec<String>) {
    let mut groups: BTreeMap<String, Vec<&StoredRule>> = BTreeMap::new();
    for rule in &ranked[..n] {
        let category = rule
            .rule
            .category
            .as_deref()
            .map(|c| one_line(c.trim().trim_start_matches('#')))
            .unwrap_or_default();
        groups.entry(category).or_default().push(rule);
    }
    let mut out = String::from("\n");
    out.push_str(MARKER);
    out.push('\n');
    let mut ids = Vec::with_capacity(n);
    for (category, mut rules) in groups {
        let unproven = |r: &StoredRule| !evidence.helpful.contains(&r.id);
        rules.sort_by(|a, b| {
            (unproven(a), &a.created_at, &a.id).cmp(&(unproven(b), &b.created_at, &b.id))
        });
        out.push('\n');
        if !category.is_empty() {
            out.push_str("### ");
            out.push_str(&category);
            out.push('\n');
        }
        for (i, rule) in rules.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&entry(rule));
            ids.push(rule.id.clone());
        }
    }
    let hidden = ranked.len() - n;
    let proven = ids
        .iter()
        .filter(|id| evidence.helpful.contains(*id))
        .count();
    let mut summary = Vec::new();
    if proven > 0 {
        summary.push(format!(
            "{proven} of {n} rules here {} proven helpful by reruns (`promptloop rules validate`).",
            if proven == 1 { "is" } else { "are" }
        ));
    }
    if evidence.aged_out > 0 {
        summary.push(format!(
            "{} rule{} without evidence for {} days {} left out (still in the store).",
            evidence.aged_out,
            if evidence.aged_out == 1 { "" } else { "s" },
            evidence.max_age_days.unwrap_or(0),
            if evidence.aged_out == 1 { "is" } else { "are" },
        ));
    }
    if hidden > 0 {
        summary.push(format!(
            "{hidden} more learned rule{} kept in promptloop's store, over this file's budget \
             ({} lines, {} characters): `promptloop rules list` shows them.",
            if hidden == 1 { " is" } else { "s are" },
            budget.lines,
            budget.chars
        ));
    } else if !summary.is_empty() {
        summary.push("`promptloop rules list` shows every rule's evidence.".into());
    }
    if !summary.is_empty() {
        out.push_str(&format!("\n_{}_\n", summary.join(" ")));
    }
    (out, ids)
}

/// One rule as a markdown entry, with its id on the Source line. The category heading is
/// left out: the section groups rules under one heading per category.
pub fn entry(rule: &StoredRule) -> String {
    let first = rule.provenance.first();
    let when = first
        .map(|p| p.learned_at.as_str())
        .unwrap_or(rule.created_at.as_str());
    let from = first.map_or_else(|| "promptloop".to_string(), source_of);
    let uncategorised = Rule {
        category: None,
        ..rule.rule.clone()
    };
    render_entry(
        &uncategorised,
        &format!("{from} · {}", rule.id),
        &short_time(when),
    )
}

/// "test failure", "planning error (reported by hand)", or the import's own words.
fn source_of(p: &super::Provenance) -> String {
    match p.failure_type.as_str() {
        "imported" | "hand_edit" | "import" => p.source.clone(),
        kind => source_phrase(kind, &p.source),
    }
}

/// `2026-11-24 21:40` from an RFC 3339 time (anything else is shown as it is).
fn short_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// A rule entry found in a section body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedEntry {
    /// The id on its Source line, if any.
    pub id: Option<String>,
    /// The rule.
    pub rule: Rule,
}

/// What a section body holds: rule entries, and lines that are neither entries nor
/// promptloop's own (a person's notes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedBody {
    /// Entries in file order.
    pub entries: Vec<ParsedEntry>,
    /// Other non-blank lines.
    pub foreign: Vec<String>,
}

/// Reads the entries of a section body (rendered by promptloop, written by an older
/// version, or edited by hand).
pub fn parse_body(body: &str) -> ParsedBody {
    let lines: Vec<&str> = body.lines().collect();
    let mut parsed = ParsedBody::default();
    let mut category: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(heading) = trimmed.strip_prefix("### ") {
            category = Some(heading.trim().to_string());
            i += 1;
            continue;
        }
        if matches!(parse_label(line), Some((Label::Rule, _))) {
            let mut j = i + 1;
            while j < lines.len()
                && !matches!(parse_label(lines[j]), Some((Label::Rule, _)))
                && !lines[j].trim_start().starts_with('#')
                && !lines[j].trim().is_empty()
            {
                j += 1;
            }
            let mut chunk = String::new();
            if let Some(c) = &category {
                chunk.push_str(&format!("### {c}\n"));
            }
            for l in &lines[i..j] {
                chunk.push_str(l);
                chunk.push('\n');
            }
            if let Ok(rule) = parse_answer(&chunk) {
                parsed.entries.push(ParsedEntry {
                    id: find_id(&chunk),
                    rule,
                });
            } else {
                parsed
                    .foreign
                    .extend(lines[i..j].iter().map(|l| l.to_string()));
            }
            i = j;
            continue;
        }
        let ours = trimmed.is_empty()
            || trimmed.starts_with("<!-- promptloop")
            || (trimmed.starts_with('_') && trimmed.contains("promptloop rules list"));
        if !ours {
            parsed.foreign.push(line.to_string());
        }
        i += 1;
    }
    parsed
}

/// The `r-xxxxxx` id on a Source line.
fn find_id(chunk: &str) -> Option<String> {
    let source = chunk
        .lines()
        .find(|l| l.contains("**Source**"))
        .unwrap_or_default();
    source
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| {
            w.len() >= 8
                && w.len() <= 10
                && w.starts_with("r-")
                && w[2..].chars().all(|c| c.is_ascii_hexdigit())
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Provenance, Scope, Status};

    fn rule(i: usize, category: Option<&str>) -> StoredRule {
        StoredRule {
            id: format!("r-{i:06x}"),
            rule: Rule {
                category: category.map(str::to_string),
                rule: format!("Rule number {i} says something specific"),
                when: "When it applies".into(),
                why: "Because it matters".into(),
            },
            scope: Scope::Project,
            targets: vec!["CLAUDE.md".into()],
            status: Status::Active,
            note: None,
            conflicts_with: None,
            created_at: format!("2026-01-01T00:00:{:02}+00:00", i % 60),
            updated_at: String::new(),
            activated_at: None,
            last_learned_at: String::new(),
            times_learned: 1,
            recurrences: 0,
            times_validated: 0,
            provenance: vec![Provenance {
                failure_type: "test_failure".into(),
                source: "pytest".into(),
                learned_at: "2026-01-01T10:00:00+00:00".into(),
                ..Provenance::default()
            }],
        }
    }

    #[test]
    fn budget_is_kept_and_the_rest_is_counted() {
        let ranked: Vec<StoredRule> = (0..50).map(|i| rule(i, Some("Cat"))).collect();
        let budget = Budget {
            lines: 60,
            chars: 100_000,
        };
        let r = render_section(&ranked, budget, 10, 100);
        let total = 10 + 1 + r.body.matches('\n').count();
        assert!(total <= 60, "{total}");
        assert!(r.hidden > 0 && r.shown.len() + r.hidden == 50);
        assert!(
            r.body
                .contains(&format!("_{} more learned rules are kept", r.hidden))
        );
        // The most valuable (first ranked) are the ones shown.
        assert_eq!(r.shown[0], "r-000000");
        assert!(!r.over_budget);
    }

    #[test]
    fn rendered_entries_parse_back_with_their_ids() {
        let ranked = vec![rule(1, Some("A")), rule(2, None)];
        let r = render_section(&ranked, Budget::default(), 0, 0);
        let parsed = parse_body(&r.body);
        assert!(parsed.foreign.is_empty(), "{:?}", parsed.foreign);
        let ids: Vec<_> = parsed
            .entries
            .iter()
            .map(|e| e.id.clone().unwrap())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"r-000001".to_string()));
        let a = parsed
            .entries
            .iter()
            .find(|e| e.id.as_deref() == Some("r-000001"))
            .unwrap();
        assert_eq!(a.rule.category.as_deref(), Some("A"));
        assert_eq!(a.rule.rule, "Rule number 1 says something specific");
    }

    fn validation(id: &str, verdict: Verdict) -> Validation {
        Validation {
            seq: 1,
            rule_id: id.into(),
            at: String::new(),
            verdict,
            trials: 3,
            with_passed: 3,
            without_passed: 0,
            broken: Vec::new(),
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn proven_rules_come_first_and_rules_without_evidence_age_out() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00+00:00").unwrap();
        let at = |days_ago: i64| (now - chrono::Duration::days(days_ago)).to_rfc3339();
        let mut old_helpful = rule(1, None);
        old_helpful.activated_at = Some(at(200));
        let mut old_unproven = rule(2, None);
        old_unproven.activated_at = Some(at(100));
        let mut recent = rule(3, None);
        recent.activated_at = Some(at(10));
        let mut old_relearned = rule(4, None);
        old_relearned.activated_at = Some(at(300));
        old_relearned.times_learned = 2;
        let mut old_imported = rule(5, None);
        old_imported.activated_at = Some(at(300));
        old_imported.provenance[0].failure_type = "import".into();
        let ranked = vec![
            old_unproven.clone(),
            recent.clone(),
            old_relearned.clone(),
            old_helpful.clone(),
            old_imported.clone(),
        ];
        let verdicts: BTreeMap<String, Validation> = [
            (
                "r-000001".to_string(),
                validation("r-000001", Verdict::Helpful),
            ),
            (
                "r-000003".to_string(),
                validation("r-000003", Verdict::NoEffect),
            ),
        ]
        .into_iter()
        .collect();
        let (kept, evidence) = select_by_evidence(ranked.clone(), &verdicts, Some(90), now);
        let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r-000001", "r-000003", "r-000004", "r-000005"]);
        assert_eq!(evidence.aged_out, 1);
        // Without an age limit every rule stays, the proven one still first.
        let (all, none_aged) = select_by_evidence(ranked, &verdicts, None, now);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].id, "r-000001");
        assert_eq!(none_aged.aged_out, 0);
        let r = render_with_evidence(&kept, Budget::default(), 0, 0, &evidence);
        assert!(
            r.body.contains(
                "_1 of 4 rules here is proven helpful by reruns (`promptloop rules validate`). \
                 1 rule without evidence for 90 days is left out (still in the store). \
                 `promptloop rules list` shows every rule's evidence._"
            ),
            "{}",
            r.body
        );
        // The proven rule comes first in its category, though it is not the oldest.
        assert_eq!(r.shown[0], "r-000001");
        // The summary line is promptloop's own, not text of the user's.
        assert!(parse_body(&r.body).foreign.is_empty());
        // No evidence at all: the section reads as before.
        let plain = render_section(&kept, Budget::default(), 0, 0);
        assert!(!plain.body.contains("proven"), "{}", plain.body);
    }

    #[test]
    fn notes_by_hand_are_foreign() {
        let parsed = parse_body("\nMy own note\n- **Rule**: X\n- **When**: Y\n- **Why**: Z\n");
        assert_eq!(parsed.foreign, vec!["My own note".to_string()]);
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].id, None);
    }
}
