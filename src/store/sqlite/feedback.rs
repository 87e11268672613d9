//! Feedback on rules: an agent or a person says a rule helped or misled (`rule_feedback`
//! over MCP). Each report is a row of `rule_feedback` (migration 3), kept beside the rule's
//! own evidence; the counts rank search results.

use std::collections::HashMap;

use rusqlite::params;
use serde::Serialize;

use super::SqliteStore;
use crate::store::{StoreError, now};

/// How often a rule was said to have helped or misled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeedbackCounts {
    /// Reports that it helped.
    pub helped: u32,
    /// Reports that it misled (or did not help).
    pub misled: u32,
}

/// One report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedbackEntry {
    /// Sequence number.
    pub seq: i64,
    /// The rule.
    pub rule_id: String,
    /// It helped (true) or misled (false).
    pub helped: bool,
    /// Why, in the reporter's words.
    pub note: Option<String>,
    /// Who reported it (`mcp`).
    pub source: String,
    /// When (RFC 3339).
    pub at: String,
}

impl SqliteStore {
    /// Records that the rule with this id (or unique prefix) helped or misled; returns its
    /// full id and its counts after the report. An unknown id is [`StoreError::NotFound`].
    pub fn add_feedback(
        &self,
        id: &str,
        helped: bool,
        note: Option<&str>,
        source: &str,
    ) -> Result<(String, FeedbackCounts), StoreError> {
        let tx = self.write_tx()?;
        let rule_id = self.resolve(id)?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        tx.execute(
            "INSERT INTO rule_feedback(rule_id, helped, note, source, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rule_id, helped, note, source, now()],
        )?;
        let counts = counts_of(&tx, &rule_id)?;
        tx.commit()?;
        Ok((rule_id, counts))
    }

    /// The counts for one rule (by its full id).
    pub fn feedback_counts(&self, rule_id: &str) -> Result<FeedbackCounts, StoreError> {
        counts_of(&self.conn, rule_id)
    }

    /// The counts of every rule that has feedback.
    pub fn all_feedback_counts(&self) -> Result<HashMap<String, FeedbackCounts>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT rule_id, SUM(helped), SUM(1 - helped) FROM rule_feedback GROUP BY rule_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                FeedbackCounts {
                    helped: r.get::<_, i64>(1)?.max(0) as u32,
                    misled: r.get::<_, i64>(2)?.max(0) as u32,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` reports on one rule (by its full id), newest first.
    pub fn feedback_log(
        &self,
        rule_id: &str,
        limit: usize,
    ) -> Result<Vec<FeedbackEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, rule_id, helped, note, source, at FROM rule_feedback
             WHERE rule_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![rule_id, limit as i64], |r| {
            Ok(FeedbackEntry {
                seq: r.get(0)?,
                rule_id: r.get(1)?,
                helped: r.get(2)?,
                note: r.get(3)?,
                source: r.get(4)?,
                at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn counts_of(conn: &rusqlite::Connection, rule_id: &str) -> Result<FeedbackCounts, StoreError> {
    let (helped, misled): (i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(helped), 0), COALESCE(SUM(1 - helped), 0) FROM rule_feedback
         WHERE rule_id = ?1",
        [rule_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(FeedbackCounts {
        helped: helped.max(0) as u32,
        misled: misled.max(0) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format::Rule;
    use crate::store::{NewRule, Provenance, RuleStore, Scope, Status};

    fn store_with_rule() -> (tempfile::TempDir, SqliteStore, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let outcome = store
            .learn(
                NewRule {
                    rule: Rule {
                        category: None,
                        rule: "Return None from safe_divide when the divisor is zero".into(),
                        when: "Writing safe_* helpers".into(),
                        why: "0 looks like a valid result".into(),
                    },
                    scope: Scope::Project,
                    targets: vec!["CLAUDE.md".into()],
                    provenance: Provenance {
                        failure_type: "test_failure".into(),
                        source: "pytest".into(),
                        learned_at: now(),
                        ..Provenance::default()
                    },
                    status: Status::Active,
                },
                None,
            )
            .unwrap();
        let id = outcome.id().to_string();
        (dir, store, id)
    }

    #[test]
    fn feedback_is_counted_per_rule_and_logged_newest_first() {
        let (_dir, store, id) = store_with_rule();
        assert_eq!(
            store.feedback_counts(&id).unwrap(),
            FeedbackCounts::default()
        );
        let short = id.trim_start_matches("r-")[..4].to_string();
        let (full, counts) = store
            .add_feedback(&short, true, Some(" fixed it "), "mcp")
            .unwrap();
        assert_eq!(full, id);
        assert_eq!(
            counts,
            FeedbackCounts {
                helped: 1,
                misled: 0
            }
        );
        let (_, counts) = store.add_feedback(&id, false, Some("  "), "mcp").unwrap();
        assert_eq!(
            counts,
            FeedbackCounts {
                helped: 1,
                misled: 1
            }
        );
        let log = store.feedback_log(&id, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert!(!log[0].helped);
        assert_eq!(log[0].note, None, "a blank note is not kept");
        assert_eq!(log[1].note.as_deref(), Some("fixed it"));
        let all = store.all_feedback_counts().unwrap();
        assert_eq!(
            all.get(&id),
            Some(&FeedbackCounts {
                helped: 1,
                misled: 1
            })
        );
    }

    #[test]
    fn feedback_on_an_unknown_rule_is_refused_and_nothing_is_written() {
        let (_dir, store, _id) = store_with_rule();
        let err = store
            .add_feedback("r-ffffff", true, None, "mcp")
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        assert!(store.all_feedback_counts().unwrap().is_empty());
    }
}
