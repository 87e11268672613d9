//! `promptloop rules dedup`: merges and conflicts among the rules already stored (for stores
//! filled before the current method, or by imports), found with the same lookup and method
//! as a new rule, and applied on request.
//!
//! Same rules are grouped; each group keeps one rule (active first, then the most valuable,
//! then the oldest) and the others that are the same as it are merged into it: their counts,
//! provenance and targets move to the rule kept, and they are retired with a note naming
//! it. A rule that contradicts an older active rule is held for review (proposed, with the
//! note and `conflicts_with` a learned conflict gets). Nothing is deleted; `rules undo`
//! takes an applied dedup back.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::store::dedup::{self, Reason, Relation};
use crate::store::{RuleFilter, RuleStore, Status, StoreChange, StoreError, StoredRule};

/// One rule to merge into another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedMerge {
    /// The rule kept.
    pub keep: String,
    /// The rule merged into it.
    pub absorb: String,
    /// How alike (weighted similarity).
    pub similarity: f64,
    /// The kept rule's text.
    pub keep_text: String,
    /// The merged rule's text.
    pub absorb_text: String,
}

/// One rule to hold for review.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedConflict {
    /// The newer rule, to be proposed.
    pub id: String,
    /// The older active rule it contradicts.
    pub with: String,
    /// Why it is a conflict (value, choice, flip, order).
    pub reason: Reason,
    /// The newer rule's text.
    pub text: String,
    /// The older rule's text.
    pub with_text: String,
}

/// What `rules dedup` would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Rules compared (active and proposed).
    pub rules: usize,
    /// Merges, grouped by the rule kept.
    pub merges: Vec<PlannedMerge>,
    /// Conflicts to hold for review.
    pub conflicts: Vec<PlannedConflict>,
}

fn rank(r: &StoredRule) -> (u8, std::cmp::Reverse<u64>, String, String) {
    let status = match r.status {
        Status::Active => 0,
        Status::Proposed => 1,
        Status::Retired => 2,
    };
    (
        status,
        std::cmp::Reverse(r.value()),
        r.created_at.clone(),
        r.id.clone(),
    )
}

fn find(parent: &mut BTreeMap<String, String>, x: &str) -> String {
    let mut root = x.to_string();
    while let Some(p) = parent.get(&root).filter(|p| **p != root) {
        root = p.clone();
    }
    root
}

/// Finds the merges and conflicts among the active and proposed rules of `store`.
pub fn plan(store: &dyn RuleStore) -> Result<Plan, StoreError> {
    let rules = store.list(&RuleFilter {
        statuses: vec![Status::Active, Status::Proposed],
        target: None,
    })?;
    let by_id: BTreeMap<&str, &StoredRule> = rules.iter().map(|r| (r.id.as_str(), r)).collect();
    // Each unordered pair once, with the verdict of the side that found it first.
    let mut pairs: BTreeMap<(String, String), dedup::Verdict> = BTreeMap::new();
    for r in &rules {
        let analysis = dedup::analyse(&r.rule.rule, &r.rule.when);
        for (c, verdict) in store.relations(&analysis, &r.rule.rule, None)? {
            if c.id == r.id || !by_id.contains_key(c.id.as_str()) {
                continue;
            }
            if !matches!(verdict.relation, Relation::Same | Relation::Conflict) {
                continue;
            }
            let key = if r.id < c.id {
                (r.id.clone(), c.id.clone())
            } else {
                (c.id.clone(), r.id.clone())
            };
            pairs.entry(key).or_insert(verdict);
        }
    }
    // Groups of the same rule; each keeps its best rule, and merges those the same as it.
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    for ((a, b), v) in &pairs {
        if v.relation == Relation::Same {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra, rb);
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<&StoredRule>> = BTreeMap::new();
    for r in &rules {
        if parent.contains_key(&r.id) || parent.values().any(|p| *p == r.id) {
            groups.entry(find(&mut parent, &r.id)).or_default().push(r);
        }
    }
    let mut merges = Vec::new();
    let mut absorbed: BTreeSet<String> = BTreeSet::new();
    for members in groups.values() {
        let Some(keep) = members.iter().min_by_key(|r| rank(r)) else {
            continue;
        };
        for other in members.iter().filter(|r| r.id != keep.id) {
            let key = if keep.id < other.id {
                (keep.id.clone(), other.id.clone())
            } else {
                (other.id.clone(), keep.id.clone())
            };
            // Only what is the same as the rule kept: sameness does not chain.
            if let Some(v) = pairs.get(&key).filter(|v| v.relation == Relation::Same) {
                merges.push(PlannedMerge {
                    keep: keep.id.clone(),
                    absorb: other.id.clone(),
                    similarity: v.similarity,
                    keep_text: keep.rule.rule.clone(),
                    absorb_text: other.rule.rule.clone(),
                });
                absorbed.insert(other.id.clone());
            }
        }
    }
    let mut conflicts = Vec::new();
    let mut flagged: BTreeSet<String> = BTreeSet::new();
    for ((a, b), v) in &pairs {
        if v.relation != Relation::Conflict || absorbed.contains(a) || absorbed.contains(b) {
            continue;
        }
        let (Some(ra), Some(rb)) = (by_id.get(a.as_str()), by_id.get(b.as_str())) else {
            continue;
        };
        if ra.status != Status::Active || rb.status != Status::Active {
            continue;
        }
        let (older, newer) = if (ra.created_at.as_str(), ra.id.as_str())
            <= (rb.created_at.as_str(), rb.id.as_str())
        {
            (ra, rb)
        } else {
            (rb, ra)
        };
        if flagged.contains(&newer.id) || flagged.contains(&older.id) {
            continue;
        }
        flagged.insert(newer.id.clone());
        conflicts.push(PlannedConflict {
            id: newer.id.clone(),
            with: older.id.clone(),
            reason: v.reason,
            text: newer.rule.rule.clone(),
            with_text: older.rule.rule.clone(),
        });
    }
    Ok(Plan {
        rules: rules.len(),
        merges,
        conflicts,
    })
}

/// Applies a plan: the store changes, for the log (so `rules undo` can take them back).
pub fn apply(store: &dyn RuleStore, plan: &Plan) -> Result<Vec<StoreChange>, StoreError> {
    let mut changes = Vec::new();
    for m in &plan.merges {
        changes.extend(store.merge_rules(&m.keep, &m.absorb)?);
    }
    for c in &plan.conflicts {
        changes.push(store.flag_conflict(&c.id, &c.with)?);
    }
    Ok(changes)
}
