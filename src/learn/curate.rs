//! The curator: the one place that changes rules *and* the files rendered from them.
//! Learn → store (dedup, merge, conflict) → render each target; approve, reject, retire,
//! edit → render; undo → revert the store change and the file.
//!
//! Rendering a target ([`Curator::sync`]) first compares the file's section with the body
//! last written there. A difference means a person edited it (or an older promptloop wrote
//! it): rules found there are folded into the store, rules removed by hand are retired, and
//! the edited body is kept in the log, so nothing the user wrote is lost; only then is the
//! section rendered again.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::rules::file::{self, ReplaceOutcome, RulesFileError};
use crate::rules::format::Rule;
use crate::store::dedup::{Judge, Relation};
use crate::store::render::{self, Budget, RenderedSection};
use crate::store::{
    FileChange, LearnOutcome, NewRule, Provenance, RuleEdit, RuleStore, Scope, Status, StoreChange,
    StoreError, now,
};

/// Errors of the curator: the store or a target file.
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A target file could not be read or written.
    #[error(transparent)]
    File(#[from] RulesFileError),
    /// Undo is not possible as asked.
    #[error("undo the last change to {target}: {reason}")]
    Undo {
        /// The target.
        target: String,
        /// Why not.
        reason: String,
    },
}

/// An instruction file rules are rendered into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// How rules name it: relative to the project when inside it, else absolute.
    pub key: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its budget.
    pub budget: Budget,
}

/// What rendering one target did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The target's key.
    pub target: String,
    /// The file was rewritten.
    pub written: bool,
    /// Rules shown.
    pub shown: Vec<String>,
    /// Active rules left out for the budget.
    pub hidden: usize,
    /// The user's own text leaves less room than the minimum section.
    pub over_budget: bool,
    /// What was folded in from a hand edit (one line each).
    pub folded: Vec<String>,
    /// Lines of the section that were neither rules nor promptloop's (kept in the log).
    pub foreign_lines: usize,
    /// The log entry of the write.
    pub log_seq: Option<i64>,
}

/// What [`Curator::learn`] did.
#[derive(Clone, Debug, Serialize)]
pub struct LearnReport {
    /// Added, merged or flagged as a conflict.
    pub outcome: LearnOutcome,
    /// Each target rendered.
    pub files: Vec<SyncReport>,
}

impl LearnReport {
    /// Whether a file now shows the rule and did not before this lesson.
    pub fn written(&self) -> bool {
        let id = self.outcome.id();
        self.files
            .iter()
            .any(|f| f.written && f.shown.iter().any(|s| s == id))
    }
}

/// Ties a store to the files rendered from it.
pub struct Curator<'a> {
    /// The store.
    pub store: &'a dyn RuleStore,
    /// The project (target keys are relative to it).
    pub project_dir: PathBuf,
    /// The budget of every target.
    pub budget: Budget,
    /// Review mode: learned rules are proposed, not written.
    pub review: bool,
    /// The second opinion for the borderline band, if enabled.
    pub judge: Option<&'a dyn Judge>,
    /// Rules without evidence leave the files this many days after they became active
    /// (they stay in the store); `None` keeps them (see `render::select_by_evidence`).
    pub unproven_max_age_days: Option<u32>,
}

impl<'a> Curator<'a> {
    /// The curator the `rules:` settings describe (budget, review mode, ageing), without a
    /// judge: what commands other than the loop use.
    pub fn for_settings(
        store: &'a dyn RuleStore,
        project_dir: PathBuf,
        rules: &crate::settings::RulesSettings,
    ) -> Curator<'a> {
        Curator {
            store,
            project_dir,
            budget: Budget {
                lines: rules.budget.lines,
                chars: rules.budget.chars,
            },
            review: rules.review,
            judge: None,
            unproven_max_age_days: rules.unproven_max_age(),
        }
    }

    /// The target for a path (absolute, or relative to the project) or a stored key.
    pub fn target(&self, path_or_key: &Path) -> Target {
        let path = if path_or_key.is_absolute() {
            path_or_key.to_path_buf()
        } else {
            self.project_dir.join(path_or_key)
        };
        let key = match path.strip_prefix(&self.project_dir) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        };
        Target {
            key,
            path,
            budget: self.budget,
        }
    }

    /// Learns a rule into the store and renders `targets`.
    pub fn learn(
        &self,
        rule: &Rule,
        provenance: Provenance,
        scope: Scope,
        targets: &[Target],
    ) -> Result<LearnReport, CurateError> {
        let outcome = self.store.learn(
            NewRule {
                rule: rule.clone(),
                scope,
                targets: targets.iter().map(|t| t.key.clone()).collect(),
                provenance,
                status: if self.review {
                    Status::Proposed
                } else {
                    Status::Active
                },
            },
            self.judge,
        )?;
        let (reason, changes) = match &outcome {
            LearnOutcome::Added { id, status } => (
                format!("learned {id}"),
                vec![StoreChange {
                    rule_id: id.clone(),
                    status_before: None,
                    status_after: *status,
                    text_before: None,
                    merged: None,
                }],
            ),
            LearnOutcome::Merged { id, .. } => (format!("learned {id} again"), Vec::new()),
            LearnOutcome::Conflict { id, with } => {
                (format!("proposed {id} (contradicts {with})"), Vec::new())
            }
        };
        let mut files = Vec::new();
        for target in targets {
            files.push(self.sync(target, &reason, &changes)?);
        }
        Ok(LearnReport { outcome, files })
    }

    /// Every target the store knows, as [`Target`]s.
    pub fn known_targets(&self) -> Result<Vec<Target>, CurateError> {
        Ok(self
            .store
            .targets()?
            .iter()
            .map(|k| self.target(Path::new(k)))
            .collect())
    }

    /// Renders every known target (`promptloop rules render`).
    pub fn sync_all(
        &self,
        reason: &str,
        changes: &[StoreChange],
    ) -> Result<Vec<SyncReport>, CurateError> {
        let mut out = Vec::new();
        for target in self.known_targets()? {
            out.push(self.sync(&target, reason, changes)?);
        }
        Ok(out)
    }

    /// Changes a rule's status and renders every target.
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        note: Option<&str>,
        verb: &str,
    ) -> Result<(StoreChange, Vec<SyncReport>), CurateError> {
        let change = self.store.set_status(id, status, note)?;
        let reason = format!("{verb} {}", change.rule_id);
        let files = self.sync_all(&reason, std::slice::from_ref(&change))?;
        Ok((change, files))
    }

    /// Edits a rule and renders every target.
    pub fn edit(
        &self,
        id: &str,
        edit: &RuleEdit,
    ) -> Result<(StoreChange, Vec<SyncReport>), CurateError> {
        let change = self.store.edit(id, edit)?;
        let reason = format!("edited {}", change.rule_id);
        let files = self.sync_all(&reason, std::slice::from_ref(&change))?;
        Ok((change, files))
    }

    /// Logs store changes that changed no file (so `rules undo` can still take them back):
    /// an entry whose body before and after is the section as it is. `false` when the file
    /// has no section to log against.
    pub fn log_unchanged(
        &self,
        target: &Target,
        reason: &str,
        changes: &[StoreChange],
    ) -> Result<bool, CurateError> {
        let snap = file::read_section(&target.path)?;
        let Some(body) = snap.body else {
            return Ok(false);
        };
        let shown = render::parse_body(&body)
            .entries
            .into_iter()
            .filter_map(|e| e.id)
            .collect();
        self.store.log_file_change(&FileChange {
            seq: 0,
            target: target.key.clone(),
            at: now(),
            reason: reason.to_string(),
            old_body: Some(body.clone()),
            new_body: body,
            shown,
            hidden: 0,
            store_changes: changes.to_vec(),
            undone_by: None,
        })?;
        Ok(true)
    }

    /// Where this clone keeps the body it last wrote into `target`'s section, and the lock
    /// its renders of that target take: `.promptloop/rendered/` (`None` without a record
    /// folder).
    fn written_path(&self, target: &Target, ext: &str) -> Option<PathBuf> {
        let dir = self.project_dir.join(crate::store::DIR_NAME);
        if !dir.is_dir() {
            return None;
        }
        let name: String = target
            .key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Some(dir.join("rendered").join(format!("{name}.{ext}")))
    }

    /// The body this clone last wrote into `target`'s section, if it keeps one.
    fn written(&self, target: &Target) -> Option<String> {
        std::fs::read_to_string(self.written_path(target, "body")?).ok()
    }

    /// Keeps `body` as what this clone last wrote into `target` (a temporary file renamed, so
    /// a reader never sees half of it). A failure only costs the comparison: the store's log
    /// is used instead.
    fn remember(&self, target: &Target, body: &str) {
        let Some(path) = self.written_path(target, "body") else {
            return;
        };
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, body.as_bytes())?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!("keep the body written into {}: {e}", target.key);
        }
    }

    /// Serialises this clone's renders of `target` (read, fold, write, log), so the body a
    /// render finds is the one the last render logged. Held until dropped; `None` (no record
    /// folder, or a lock that cannot be taken) renders unlocked, as before.
    fn render_lock(&self, target: &Target) -> Option<std::fs::File> {
        let path = self.written_path(target, "lock")?;
        std::fs::create_dir_all(path.parent()?).ok()?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ok()?;
        match lock.lock() {
            Ok(()) => Some(lock),
            Err(e) => {
                tracing::warn!("lock {}: {e}", path.display());
                None
            }
        }
    }

    /// Renders one target from the store, folding a hand edit of its section in first.
    ///
    /// A hand edit is a section that differs from the body this clone last wrote (kept in
    /// `.promptloop/rendered/`, else the store's last logged body). With a team store the log
    /// also holds other clones' renders, so a section that is merely older than another
    /// clone's last render is not taken for a hand edit.
    pub fn sync(
        &self,
        target: &Target,
        reason: &str,
        changes: &[StoreChange],
    ) -> Result<SyncReport, CurateError> {
        let _lock = self.render_lock(target);
        // Another writer may change the file between our read and our write; the writer
        // notices (compare and swap) and we start over with what is there now.
        for _ in 0..5 {
            let snap = file::read_section(&target.path)?;
            let mut last = self
                .store
                .file_changes(Some(&target.key), 1)?
                .into_iter()
                .next();
            // What this clone last wrote is the baseline a hand edit is read against, when
            // this store logged it (an offline store, or the team store after offline work,
            // did not: then the store's own last render is).
            let mut written = self.written(target);
            if let (Some(ours), Some(logged)) = (&written, &last)
                && logged.new_body != *ours
            {
                match self
                    .store
                    .file_changes(Some(&target.key), 200)?
                    .into_iter()
                    .find(|c| c.new_body == *ours)
                {
                    Some(entry) => last = Some(entry),
                    None => written = None,
                }
            }
            if last.is_none() {
                written = None;
            }
            let mut report = SyncReport {
                target: target.key.clone(),
                written: false,
                shown: Vec::new(),
                hidden: 0,
                over_budget: false,
                folded: Vec::new(),
                foreign_lines: 0,
                log_seq: None,
            };
            if let Some(body) = &snap.body {
                let expected = written
                    .as_deref()
                    .or(last.as_ref().map(|c| c.new_body.as_str()));
                if expected != Some(body.as_str()) && !body.trim().is_empty() {
                    self.fold(target, body, last.as_ref(), &mut report)?;
                }
            }
            let (ranked, evidence) = render::select_by_evidence(
                self.store.ranked_for_target(&target.key)?,
                &self.store.verdicts()?,
                self.unproven_max_age_days,
                chrono::Local::now().fixed_offset(),
            );
            if ranked.is_empty() && snap.body.is_none() {
                // No rules and no section: nothing to create.
                return Ok(report);
            }
            let RenderedSection {
                body,
                shown,
                hidden,
                over_budget,
            } = plan_section(target, &snap, &ranked, &evidence);
            report.shown = shown.clone();
            report.hidden = hidden;
            report.over_budget = over_budget;
            if snap.body.as_deref() == Some(body.as_str()) {
                if written.as_deref() != Some(body.as_str()) {
                    self.remember(target, &body);
                }
                return Ok(report);
            }
            start_with_preamble(&target.path)?;
            match file::replace_section_body(&target.path, snap.body.as_deref(), &body)? {
                ReplaceOutcome::Changed => continue,
                ReplaceOutcome::Unchanged => {
                    self.remember(target, &body);
                    return Ok(report);
                }
                ReplaceOutcome::Written => {
                    self.remember(target, &body);
                    let seq = self.store.log_file_change(&FileChange {
                        seq: 0,
                        target: target.key.clone(),
                        at: now(),
                        reason: reason.to_string(),
                        old_body: snap.body.clone(),
                        new_body: body,
                        shown,
                        hidden,
                        store_changes: changes.to_vec(),
                        undone_by: None,
                    })?;
                    report.written = true;
                    report.log_seq = Some(seq);
                    return Ok(report);
                }
            }
        }
        Err(CurateError::File(RulesFileError::Write {
            path: target.path.clone(),
            source: std::io::Error::other("the file kept changing while it was being rendered"),
        }))
    }

    /// The section `target` would get if `ranked` (most valuable first) were its active
    /// rules, as [`Curator::sync`] would render it, without writing anything: what a page
    /// shows before a rule is approved or edited. `None` when the file would get no section.
    pub fn preview(
        &self,
        target: &Target,
        ranked: &[crate::store::StoredRule],
    ) -> Result<Option<RenderedSection>, CurateError> {
        let snap = file::read_section(&target.path)?;
        let (ranked, evidence) = render::select_by_evidence(
            ranked.to_vec(),
            &self.store.verdicts()?,
            self.unproven_max_age_days,
            chrono::Local::now().fixed_offset(),
        );
        if ranked.is_empty() && snap.body.is_none() {
            return Ok(None);
        }
        Ok(Some(plan_section(target, &snap, &ranked, &evidence)))
    }

    /// Folds a section body that promptloop did not write into the store, and logs it.
    fn fold(
        &self,
        target: &Target,
        body: &str,
        last: Option<&FileChange>,
        report: &mut SyncReport,
    ) -> Result<(), CurateError> {
        let parsed = render::parse_body(body);
        let (kind, source) = match last {
            None => (
                "imported",
                format!("{} (written before the store)", target.key),
            ),
            Some(_) => ("hand_edit", format!("a hand edit of {}", target.key)),
        };
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        // A rule the store has under another id (a section rendered from another store,
        // e.g. while the team store was unreachable) is that rule, not a new arrival.
        let stored_rules = self.store.list(&crate::store::RuleFilter::default())?;
        for entry in &parsed.entries {
            let known = match &entry.id {
                Some(id) => self.store.get(id).ok(),
                None => None,
            }
            .or_else(|| {
                stored_rules
                    .iter()
                    .find(|r| r.status != Status::Retired && r.rule == entry.rule)
                    .cloned()
            });
            match known {
                Some(stored) => {
                    seen.push(stored.id.clone());
                    if stored.rule != entry.rule {
                        let change = self.store.edit(
                            &stored.id,
                            &RuleEdit {
                                category: Some(entry.rule.category.clone().unwrap_or_default()),
                                rule: Some(entry.rule.rule.clone()),
                                when: Some(entry.rule.when.clone()),
                                why: Some(entry.rule.why.clone()),
                                targets: None,
                            },
                        )?;
                        report.folded.push(format!("{} edited by hand", stored.id));
                        changes.push(change);
                    }
                }
                None => {
                    let outcome = self.store.learn(
                        NewRule {
                            rule: entry.rule.clone(),
                            scope: Scope::Project,
                            targets: vec![target.key.clone()],
                            provenance: Provenance {
                                failure_type: kind.into(),
                                source: source.clone(),
                                learned_at: now(),
                                ..Provenance::default()
                            },
                            status: Status::Active,
                        },
                        self.judge,
                    )?;
                    seen.push(outcome.id().to_string());
                    match &outcome {
                        LearnOutcome::Added { id, status } => {
                            report
                                .folded
                                .push(format!("{id} added from {}", target.key));
                            changes.push(StoreChange {
                                rule_id: id.clone(),
                                status_before: None,
                                status_after: *status,
                                text_before: None,
                                merged: None,
                            });
                        }
                        LearnOutcome::Merged { id, .. } => {
                            report
                                .folded
                                .push(format!("{id} found again in {}", target.key));
                        }
                        LearnOutcome::Conflict { id, with } => report.folded.push(format!(
                            "{id} from {} contradicts {with}: proposed for review",
                            target.key
                        )),
                    }
                }
            }
        }
        if let Some(last) = last {
            for id in &last.shown {
                if seen.contains(id) {
                    continue;
                }
                if let Ok(stored) = self.store.get(id)
                    && stored.status == Status::Active
                {
                    let change = self.store.set_status(
                        id,
                        Status::Retired,
                        Some(&format!("removed from {} by hand", target.key)),
                    )?;
                    report
                        .folded
                        .push(format!("{id} retired (removed by hand)"));
                    changes.push(change);
                }
            }
        }
        report.foreign_lines = parsed.foreign.len();
        // The edited body goes into the log: `rules log` shows it, `rules undo` restores it.
        self.store.log_file_change(&FileChange {
            seq: 0,
            target: target.key.clone(),
            at: now(),
            reason: match last {
                None => "section found in the file: its rules were imported".into(),
                Some(_) => "section edited by hand: folded into the store".into(),
            },
            old_body: last.map(|c| c.new_body.clone()),
            new_body: body.to_string(),
            shown: seen,
            hidden: 0,
            store_changes: changes,
            undone_by: None,
        })?;
        Ok(())
    }

    /// Reverts the last change to `target`: its store changes are undone and the section's
    /// previous body is written back.
    pub fn undo(&self, target: &Target) -> Result<(FileChange, Vec<SyncReport>), CurateError> {
        let undo_err = |reason: String| CurateError::Undo {
            target: target.key.clone(),
            reason,
        };
        let last = self
            .store
            .file_changes(Some(&target.key), 1)?
            .into_iter()
            .next()
            .ok_or_else(|| undo_err("promptloop has not changed it".into()))?;
        let snap = file::read_section(&target.path)?;
        if snap.body.as_deref() != Some(last.new_body.as_str()) {
            return Err(undo_err(format!(
                "its section changed since promptloop's last change (#{}); run `promptloop \
                 rules render` to fold that edit in first",
                last.seq
            )));
        }
        let mut reverted = Vec::new();
        for change in last.store_changes.iter().rev() {
            if change.merged.is_some() {
                reverted.push(self.store.revert_merge(change)?);
            }
            if let Some(text) = &change.text_before {
                let back = self.store.edit(
                    &change.rule_id,
                    &RuleEdit {
                        category: Some(text.category.clone().unwrap_or_default()),
                        rule: Some(text.rule.clone()),
                        when: Some(text.when.clone()),
                        why: Some(text.why.clone()),
                        targets: None,
                    },
                )?;
                reverted.push(back);
            }
            let status = change.status_before.unwrap_or(Status::Retired);
            if status != change.status_after {
                let note = format!("undone (#{})", last.seq);
                reverted.push(
                    self.store
                        .set_status(&change.rule_id, status, Some(&note))?,
                );
            }
        }
        let old = last.old_body.clone().unwrap_or_default();
        match file::replace_section_body(&target.path, Some(&last.new_body), &old)? {
            ReplaceOutcome::Changed => {
                return Err(undo_err("the file changed while undoing; try again".into()));
            }
            ReplaceOutcome::Unchanged | ReplaceOutcome::Written => self.remember(target, &old),
        }
        let parsed = render::parse_body(&old);
        let entry = FileChange {
            seq: 0,
            target: target.key.clone(),
            at: now(),
            reason: format!("undo of #{} ({})", last.seq, last.reason),
            old_body: Some(last.new_body.clone()),
            new_body: old,
            shown: parsed.entries.iter().filter_map(|e| e.id.clone()).collect(),
            hidden: 0,
            store_changes: reverted.clone(),
            undone_by: None,
        };
        let seq = self.store.log_file_change(&entry)?;
        self.store.mark_undone(last.seq, seq)?;
        // The same store change may show in other files: bring them in line.
        let mut others = Vec::new();
        if !reverted.is_empty() {
            for other in self.known_targets()? {
                if other.key != target.key {
                    others.push(self.sync(&other, &format!("undo of #{}", last.seq), &reverted)?);
                }
            }
        }
        Ok((FileChange { seq, ..entry }, others))
    }
}

/// The body of `target`'s section rendered from `ranked` within its budget. Text in the
/// section that is not a rule promptloop can read (a note, a rule without When/Why written by
/// hand) is the user's: it stays, verbatim, above the rendered rules, and counts against the
/// budget like the text outside.
fn plan_section(
    target: &Target,
    snap: &file::SectionSnapshot,
    ranked: &[crate::store::StoredRule],
    evidence: &render::Evidence,
) -> RenderedSection {
    let foreign = snap
        .body
        .as_deref()
        .map(|b| render::parse_body(b).foreign)
        .unwrap_or_default();
    let foreign_chars: usize = foreign.iter().map(|l| l.chars().count() + 1).sum();
    let mut section = render::render_with_evidence(
        ranked,
        target.budget,
        snap.outside_lines + foreign.len(),
        snap.outside_chars + foreign_chars,
        evidence,
    );
    if !foreign.is_empty() {
        section.body = format!("\n{}\n{}", foreign.join("\n"), section.body);
    }
    section
}

/// How the loop keeps what it learns (from `rules:` in the settings).
#[derive(Clone, Debug, Default)]
pub struct Curation {
    /// Review mode: learned rules are proposed, not written.
    pub review: bool,
    /// Project or global.
    pub scope: Scope,
    /// Each target file's budget.
    pub budget: Budget,
    /// Ask the teacher about borderline duplicates.
    pub judge: bool,
    /// Ask an embeddings endpoint instead (preferred over the teacher when set).
    pub embeddings: Option<crate::store::dedup::embed::EmbeddingsConfig>,
    /// The user's store, for global rules.
    pub user_db: Option<PathBuf>,
    /// Days rules without evidence stay in the files (`None`: for ever).
    pub unproven_max_age_days: Option<u32>,
}

/// The loop's write path: a learned rule goes into the project's store (or the user's, for
/// global scope), is deduplicated there, and the rules file is rendered from the store.
pub fn learn_for_loop(
    curation: &Curation,
    project_store: &dyn RuleStore,
    project_dir: &Path,
    rules_files: &[PathBuf],
    rule: &Rule,
    provenance: Provenance,
    teacher: Option<&dyn crate::teacher::Teacher>,
) -> Result<LearnReport, CurateError> {
    let user_store;
    let store: &dyn RuleStore = match (curation.scope, &curation.user_db) {
        (Scope::Global, Some(path)) => {
            user_store = crate::store::SqliteStore::open(path)?;
            &user_store
        }
        _ => project_store,
    };
    let judge = teacher.map(|teacher| TeacherJudge { teacher });
    // One embeddings judge per insert: its call budget is per insert. An endpoint that
    // cannot be set up leaves the method alone (dedup never fails a learn).
    let embedder = curation
        .embeddings
        .clone()
        .and_then(|config| crate::store::dedup::embed::EmbeddingJudge::new(config).ok());
    let curator = Curator {
        store,
        project_dir: project_dir.to_path_buf(),
        budget: curation.budget,
        review: curation.review,
        judge: match (&embedder, &judge, curation.judge) {
            (Some(e), _, _) => Some(e as &dyn Judge),
            (None, Some(j), true) => Some(j as &dyn Judge),
            _ => None,
        },
        unproven_max_age_days: curation.unproven_max_age_days,
    };
    let targets: Vec<Target> = rules_files.iter().map(|f| curator.target(f)).collect();
    curator.learn(rule, provenance, curation.scope, &targets)
}

/// The teacher as judge of whether two rules say the same thing (the borderline band only).
pub struct TeacherJudge<'t> {
    /// The teacher asked.
    pub teacher: &'t dyn crate::teacher::Teacher,
}

const JUDGE_SYSTEM: &str = "You curate the rules a coding agent follows. Two rules are the \
same when following one means following the other: same subject, same instruction, possibly \
in other words. They are different when they name different functions, files, values or \
tools, or give opposite instructions. Answer with one word: SAME or DIFFERENT.";

/// The three-way question ([`Judge::relation`]), worded as the labelled pairs' labels are.
const RELATION_SYSTEM: &str = "You curate the rules a coding agent follows. Compare two \
rules. SAME: following one means following the other (the same subject, instruction and \
values, possibly in other words). CONFLICT: the same subject and concern, but they cannot \
both be followed (an opposite instruction, another value for the same setting, another \
choice among the same alternatives, or the opposite order of two steps). DIFFERENT: \
anything else (another subject, such as another package, function, file, client, service \
or branch, or a compatible instruction about the same subject). Answer with one word: \
SAME, CONFLICT or DIFFERENT.";

impl TeacherJudge<'_> {
    /// The first word of the teacher's answer to `system` about the two rules (redacted
    /// before they are sent), upper-cased; `None` when the teacher cannot answer.
    fn ask(&self, system: &str, a: &str, b: &str) -> Option<String> {
        let redactor = crate::redact::Redactor::get();
        let lesson = crate::teacher::Lesson {
            system: system.to_string(),
            user: format!(
                "Rule A: {}\nRule B: {}",
                redactor.redact(a).text,
                redactor.redact(b).text
            ),
            failure_type: "dedup_judge".to_string(),
            prompt_name: "dedup_judge".to_string(),
            parts: crate::teacher::prompt::LessonParts::default(),
            known_rules: Vec::new(),
        };
        // Built from JSON so fields added to FailureContext later default to empty.
        let failure: crate::failure::FailureContext = serde_json::from_value(serde_json::json!({
            "id": "dedup-judge", "failure_type": "dedup_judge", "source": "promptloop",
            "task": "", "project_dir": "", "run_id": null, "attempt": null,
            "captured_at": now(), "test_command": null, "tests": [], "failing_ids": [],
            "test_summary": "", "diff": "", "agent_status": null, "agent_message": null,
            "description": null, "context": null,
        }))
        .ok()?;
        let reply = self
            .teacher
            .ask(&lesson, &failure, None, &crate::process::CancelToken::new())
            .ok()?;
        reply
            .text
            .split(|c: char| !c.is_ascii_alphabetic())
            .find(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
    }
}

impl Judge for TeacherJudge<'_> {
    fn same_rule(&self, a: &str, b: &str) -> Option<bool> {
        match self.ask(JUDGE_SYSTEM, a, b)?.as_str() {
            "SAME" => Some(true),
            "DIFFERENT" => Some(false),
            _ => None,
        }
    }

    fn relation(&self, a: &str, b: &str) -> Option<Relation> {
        match self.ask(RELATION_SYSTEM, a, b)?.as_str() {
            "SAME" => Some(Relation::Same),
            "CONFLICT" => Some(Relation::Conflict),
            "DIFFERENT" => Some(Relation::Distinct),
            _ => None,
        }
    }
}

/// A new file whose form needs a preamble (a Cursor `.mdc` rule needs its front matter) is
/// created with it before the section is written; an existing file is never touched here.
fn start_with_preamble(path: &Path) -> Result<(), CurateError> {
    let Some(preamble) = crate::rules::FileForm::of(path).preamble() else {
        return Ok(());
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| {
            CurateError::File(RulesFileError::Write {
                path: path.to_path_buf(),
                source,
            })
        })?;
    }
    // create_new: only a file that does not exist yet is created, never one a user wrote.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            use std::io::Write;
            file.write_all(format!("{preamble}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| {
                    CurateError::File(RulesFileError::Write {
                        path: path.to_path_buf(),
                        source,
                    })
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CurateError::File(RulesFileError::Write {
            path: path.to_path_buf(),
            source,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A teacher that gives one answer (or fails) and keeps the lessons it was sent.
    struct Scripted {
        answer: Option<&'static str>,
        sent: RefCell<Vec<crate::teacher::Lesson>>,
    }

    impl crate::teacher::Teacher for Scripted {
        fn name(&self) -> String {
            "scripted".to_string()
        }

        fn ask(
            &self,
            lesson: &crate::teacher::Lesson,
            _failure: &crate::failure::FailureContext,
            _follow_up: Option<(&str, &str)>,
            _cancel: &crate::process::CancelToken,
        ) -> Result<crate::teacher::TeacherReply, crate::teacher::TeacherError> {
            self.sent.borrow_mut().push(lesson.clone());
            match self.answer {
                Some(text) => Ok(crate::teacher::TeacherReply {
                    text: text.to_string(),
                    model: None,
                    input_tokens: None,
                    output_tokens: None,
                }),
                None => Err(crate::teacher::TeacherError::NotConfigured(
                    "down".to_string(),
                )),
            }
        }
    }

    fn scripted(answer: Option<&'static str>) -> Scripted {
        Scripted {
            answer,
            sent: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn the_teacher_judge_sends_both_rules_redacted() {
        let secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
        let teacher = scripted(Some("SAME"));
        let judge = TeacherJudge { teacher: &teacher };
        let a = format!("Never commit the key {secret}.");
        let b = format!("Keep {secret} out of git.");
        assert_eq!(judge.same_rule(&a, &b), Some(true));
        assert_eq!(judge.relation(&a, &b), Some(Relation::Same));
        let sent = teacher.sent.borrow();
        assert_eq!(sent.len(), 2);
        for lesson in sent.iter() {
            assert!(!lesson.user.contains(secret), "{}", lesson.user);
            assert!(lesson.user.starts_with("Rule A: Never commit the key "));
            assert!(lesson.user.contains("\nRule B: Keep "), "{}", lesson.user);
        }
        assert_eq!(sent[0].system, JUDGE_SYSTEM);
        assert_eq!(sent[1].system, RELATION_SYSTEM);
    }

    #[test]
    fn the_teacher_judge_reads_the_first_word_and_abstains_on_anything_else() {
        let cases: [(Option<&'static str>, Option<bool>, Option<Relation>); 6] = [
            (Some("same."), Some(true), Some(Relation::Same)),
            (
                Some("**DIFFERENT** - another file"),
                Some(false),
                Some(Relation::Distinct),
            ),
            (
                Some("Conflict: opposite values"),
                None,
                Some(Relation::Conflict),
            ),
            (Some("They are the same"), None, None),
            (Some(""), None, None),
            (None, None, None),
        ];
        for (answer, same, relation) in cases {
            let teacher = scripted(answer);
            let judge = TeacherJudge { teacher: &teacher };
            assert_eq!(judge.same_rule("a", "b"), same, "{answer:?}");
            assert_eq!(judge.relation("a", "b"), relation, "{answer:?}");
        }
    }
}
