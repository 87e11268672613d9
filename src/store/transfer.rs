//! `promptloop store migrate`: a project's store copied into another, empty one (its SQLite
//! file into a team store on PostgreSQL, or back), every count checked afterwards. Team
//! rules belong to no project and are not copied.
//!
//! Order matters so that nothing is counted twice: the runs' events first (no rules exist
//! yet, so a passed run validates none again), then the failures (no rules yet, so no
//! recurrence is counted again), then the rules with their own counters and provenance, then
//! the rules' validations and feedback, then the file-change log (its `undone_by` links
//! renumbered).

use std::collections::HashMap;

use super::{FileChange, RuleFilter, RuleStore, Scope, StoreError};

/// What a store holds for one project, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Rules (every status; team rules of the target not counted).
    pub rules: usize,
    /// Their provenance entries.
    pub provenance: usize,
    /// The sum of their times learned.
    pub times_learned: u64,
    /// Failures.
    pub failures: usize,
    /// Runs.
    pub runs: usize,
    /// Attempts of those runs.
    pub attempts: usize,
    /// File-change log entries.
    pub file_changes: usize,
    /// Validations of its rules (`rules validate`).
    pub validations: usize,
    /// Feedback reports on its rules.
    pub feedback: u64,
}

/// Counts `store`'s content for its project.
pub fn counts(store: &dyn RuleStore) -> Result<Counts, StoreError> {
    let rules: Vec<_> = store
        .list(&RuleFilter::default())?
        .into_iter()
        .filter(|r| r.scope != Scope::Team)
        .collect();
    let runs = store.runs(usize::MAX >> 1)?;
    let mut attempts = 0;
    for run in &runs {
        attempts += store.attempts(&run.id)?.len();
    }
    let ids: std::collections::HashSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let validations = store
        .validations(None)?
        .into_iter()
        .filter(|v| ids.contains(v.rule_id.as_str()))
        .count();
    let feedback = store
        .all_feedback_counts()?
        .into_iter()
        .filter(|(id, _)| ids.contains(id.as_str()))
        .map(|(_, c)| u64::from(c.helped) + u64::from(c.misled))
        .sum();
    Ok(Counts {
        validations,
        feedback,
        rules: rules.len(),
        provenance: rules.iter().map(|r| r.provenance.len()).sum(),
        times_learned: rules.iter().map(|r| u64::from(r.times_learned)).sum(),
        failures: store.failures()?.len(),
        runs: runs.len(),
        attempts,
        file_changes: store.file_changes(None, usize::MAX >> 1)?.len(),
    })
}

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Migrated {
    /// The counts, equal in both stores.
    pub counts: Counts,
    /// Rules whose id was taken in the target and that got a new one: (old, new).
    pub renamed: Vec<(String, String)>,
}

/// Copies everything of `from` into `to`, which must hold nothing of this project yet;
/// then checks that both count the same.
pub fn migrate(from: &dyn RuleStore, to: &dyn RuleStore) -> Result<Migrated, StoreError> {
    let before = counts(to)?;
    if before != Counts::default() {
        return Err(StoreError::Invalid(format!(
            "migrate the store: the target already holds {} rules, {} failures and {} runs of \
             this project; migrate into an empty one (nothing was copied)",
            before.rules, before.failures, before.runs
        )));
    }
    let source = counts(from)?;
    // 1. Runs, by replaying their events in order.
    for (run_id, _, event) in from.events()? {
        to.record_event(&run_id, &event)?;
    }
    // 2. Failures.
    for failure in from.failures()? {
        to.save_failure(&failure)?;
    }
    // 3. Rules, as stored.
    let mut renamed = Vec::new();
    for rule in from.list(&RuleFilter::default())? {
        if rule.scope == Scope::Team {
            continue;
        }
        let id = to.insert(&rule)?;
        if id != rule.id {
            renamed.push((rule.id.clone(), id));
        }
    }
    // 4. The rules' validations and feedback, under their ids in the target.
    let id_in = |id: &str| -> String {
        renamed
            .iter()
            .find(|(old, _)| old == id)
            .map_or_else(|| id.to_string(), |(_, new)| new.clone())
    };
    let copied: std::collections::HashSet<String> = from
        .list(&RuleFilter::default())?
        .into_iter()
        .filter(|r| r.scope != Scope::Team)
        .map(|r| r.id)
        .collect();
    for v in from.validations(None)? {
        if copied.contains(&v.rule_id) {
            to.record_validation(&super::evidence::Validation {
                rule_id: id_in(&v.rule_id),
                ..v
            })?;
        }
    }
    for id in from.all_feedback_counts()?.into_keys() {
        if !copied.contains(&id) {
            continue;
        }
        let mut log = from.feedback_log(&id, usize::MAX >> 1)?;
        log.reverse();
        for entry in log {
            to.keep_feedback(&super::FeedbackEntry {
                rule_id: id_in(&id),
                ..entry
            })?;
        }
    }
    // 5. The file-change log, oldest first, its undo links renumbered.
    let mut log: Vec<FileChange> = from.file_changes(None, usize::MAX >> 1)?;
    log.reverse();
    let mut seqs: HashMap<i64, i64> = HashMap::new();
    for change in &log {
        let new = to.log_file_change(&FileChange {
            undone_by: None,
            ..change.clone()
        })?;
        seqs.insert(change.seq, new);
    }
    for change in &log {
        if let (Some(by), Some(seq)) = (change.undone_by, seqs.get(&change.seq))
            && let Some(new_by) = seqs.get(&by)
        {
            to.mark_undone(*seq, *new_by)?;
        }
    }
    let after = counts(to)?;
    if after != source {
        return Err(StoreError::Invalid(format!(
            "migrate the store: the counts differ after the copy (source {source:?}, target \
             {after:?})"
        )));
    }
    Ok(Migrated {
        counts: after,
        renamed,
    })
}
