//! Evidence about rules, kept beside them in the store: the verdicts of rule validations
//! (the rule's originating failure rerun with and without it, `promptloop rules validate`)
//! and the results of `promptloop bench` runs, trial by trial, so an interrupted bench keeps
//! what it finished and `--resume` goes on.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{SqliteStore, StoreError, now};

/// What reruns said about a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The task passed more often with the rule than without it.
    Helpful,
    /// It passed as often either way, and the rule broke nothing.
    NoEffect,
    /// It passed less often with the rule, or the rule broke tests that passed without it.
    Harmful,
}

impl Verdict {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Helpful => "helpful",
            Verdict::NoEffect => "no_effect",
            Verdict::Harmful => "harmful",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "helpful" => Some(Verdict::Helpful),
            "no_effect" => Some(Verdict::NoEffect),
            "harmful" => Some(Verdict::Harmful),
            _ => None,
        }
    }

    /// In words: "helpful", "no effect", "harmful".
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Helpful => "helpful",
            Verdict::NoEffect => "no effect",
            Verdict::Harmful => "harmful",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// One validation of a rule, as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Sequence number (0 before it is recorded).
    pub seq: i64,
    /// The rule.
    pub rule_id: String,
    /// When (RFC 3339).
    pub at: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Reruns per side (with the rule, without it).
    pub trials: u32,
    /// Reruns with the rule that passed.
    pub with_passed: u32,
    /// Reruns without the rule that passed.
    pub without_passed: u32,
    /// Tests that failed with the rule and never without it.
    pub broken: Vec<String>,
    /// What was rerun and each rerun's result (task, failure, snapshot, trials).
    pub detail: serde_json::Value,
}

impl Validation {
    /// "helpful: passed 4/5 with it, 1/5 without" (and the tests it broke).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: passed {}/{} with it, {}/{} without",
            self.verdict, self.with_passed, self.trials, self.without_passed, self.trials
        );
        if !self.broken.is_empty() {
            s.push_str(&format!(
                "; broke {} that passed without it",
                self.broken.join(", ")
            ));
        }
        s
    }
}

/// A bench run, as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRunRow {
    /// Its id.
    pub id: String,
    /// The suite file, as given.
    pub suite: String,
    /// A hash of the suite file's text, so a resume notices an edited suite.
    pub suite_hash: String,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Finished, when every trial ran.
    pub finished_at: Option<String>,
    /// The options it ran with (arms and their rules, trials, …), as the bench wrote them.
    pub options: serde_json::Value,
}

/// One finished bench trial, as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchTrialRow {
    /// `train` (the learning pass of `--learn`) or `test`.
    pub phase: String,
    /// The task's id.
    pub task: String,
    /// The arm's name.
    pub arm: String,
    /// 0-based repetition.
    pub trial: u32,
    /// Whether the check passed.
    pub passed: bool,
    /// How the trial's run ended (`passed`, `failed`, `error`).
    pub outcome: String,
    /// The whole result, as the bench wrote it.
    pub data: serde_json::Value,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

type ValidationColumns = (i64, String, String, String, u32, u32, u32, String, String);

fn validation_from(row: ValidationColumns) -> Result<Validation, StoreError> {
    let (seq, rule_id, at, verdict, trials, with_passed, without_passed, broken, data) = row;
    Ok(Validation {
        verdict: Verdict::parse(&verdict).ok_or_else(|| {
            StoreError::Corrupt(format!("validation #{seq}: unknown verdict {verdict:?}"))
        })?,
        broken: from_json(&format!("validation #{seq}"), &broken)?,
        detail: from_json(&format!("validation #{seq}"), &data)?,
        seq,
        rule_id,
        at,
        trials,
        with_passed,
        without_passed,
    })
}

const VALIDATION_COLUMNS: &str =
    "seq, rule_id, at, verdict, trials, with_passed, without_passed, broken, data";

impl SqliteStore {
    /// Records a validation; returns its sequence number.
    pub fn record_validation(&self, v: &Validation) -> Result<i64, StoreError> {
        let at = if v.at.is_empty() { now() } else { v.at.clone() };
        self.conn().execute(
            "INSERT INTO rule_validations(rule_id, at, verdict, trials, with_passed,
                 without_passed, broken, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                v.rule_id,
                at,
                v.verdict.as_str(),
                v.trials,
                v.with_passed,
                v.without_passed,
                to_json(&v.broken)?,
                to_json(&v.detail)?,
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Every validation of `rule_id` (or of every rule), oldest first.
    pub fn validations(&self, rule_id: Option<&str>) -> Result<Vec<Validation>, StoreError> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {VALIDATION_COLUMNS} FROM rule_validations
             WHERE ?1 IS NULL OR rule_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([rule_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(validation_from(row?)?);
        }
        Ok(out)
    }

    /// The latest validation of each validated rule, by rule id.
    pub fn latest_validations(&self) -> Result<BTreeMap<String, Validation>, StoreError> {
        Ok(self
            .validations(None)?
            .into_iter()
            .map(|v| (v.rule_id.clone(), v))
            .collect())
    }

    /// Records a new bench run.
    pub fn start_bench(&self, run: &BenchRunRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO bench_runs(id, suite, suite_hash, started_at, finished_at, options)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                run.id,
                run.suite,
                run.suite_hash,
                run.started_at,
                run.finished_at,
                to_json(&run.options)?,
            ],
        )?;
        Ok(())
    }

    /// Replaces a bench run's options (the rules `--learn` learned are added to them).
    pub fn update_bench_options(
        &self,
        id: &str,
        options: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE bench_runs SET options = ?2 WHERE id = ?1",
            params![id, to_json(options)?],
        )?;
        Ok(())
    }

    /// Marks a bench run finished.
    pub fn finish_bench(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE bench_runs SET finished_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    /// A bench run by id; with `None`, the latest one of `suite` that did not finish.
    pub fn bench_run(
        &self,
        id: Option<&str>,
        suite: &str,
    ) -> Result<Option<BenchRunRow>, StoreError> {
        self.bench_run_where(
            "(?1 IS NOT NULL AND id = ?1) OR (?1 IS NULL AND suite = ?2 AND finished_at IS NULL)",
            params![id, suite],
        )
    }

    /// The bench run started last, finished or not.
    pub fn latest_bench_run(&self) -> Result<Option<BenchRunRow>, StoreError> {
        self.bench_run_where("1", params![])
    }

    fn bench_run_where(
        &self,
        condition: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Option<BenchRunRow>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!(
                    "SELECT id, suite, suite_hash, started_at, finished_at, options FROM bench_runs
                     WHERE {condition} ORDER BY started_at DESC, id DESC LIMIT 1"
                ),
                params,
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(id, suite, suite_hash, started_at, finished_at, options)| {
                Ok(BenchRunRow {
                    options: from_json(&format!("bench run {id}"), &options)?,
                    id,
                    suite,
                    suite_hash,
                    started_at,
                    finished_at,
                })
            },
        )
        .transpose()
    }

    /// Records one finished trial (a trial recorded twice keeps the first result).
    pub fn record_bench_trial(
        &self,
        bench_id: &str,
        trial: &BenchTrialRow,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO bench_trials(bench_id, phase, task, arm, trial, passed,
                 outcome, finished_at, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                bench_id,
                trial.phase,
                trial.task,
                trial.arm,
                trial.trial,
                trial.passed,
                trial.outcome,
                now(),
                to_json(&trial.data)?,
            ],
        )?;
        Ok(())
    }

    /// The finished trials of a bench run, in the order they finished.
    pub fn bench_trials(&self, bench_id: &str) -> Result<Vec<BenchTrialRow>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT phase, task, arm, trial, passed, outcome, data FROM bench_trials
             WHERE bench_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([bench_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (phase, task, arm, trial, passed, outcome, data) = row?;
            out.push(BenchTrialRow {
                data: from_json(&format!("bench trial {task}/{arm}/{trial}"), &data)?,
                phase,
                task,
                arm,
                trial,
                passed,
                outcome,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validations_and_bench_trials_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let v = Validation {
            seq: 0,
            rule_id: "r-000001".into(),
            at: String::new(),
            verdict: Verdict::Harmful,
            trials: 3,
            with_passed: 0,
            without_passed: 0,
            broken: vec!["tests/test_a.py::test_b".into()],
            detail: serde_json::json!({"task": "t"}),
        };
        let seq = store.record_validation(&v).unwrap();
        let again = Validation {
            verdict: Verdict::Helpful,
            with_passed: 3,
            broken: Vec::new(),
            ..v.clone()
        };
        store.record_validation(&again).unwrap();
        let all = store.validations(Some("r-000001")).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].seq, seq);
        assert_eq!(all[0].broken, v.broken);
        let latest = store.latest_validations().unwrap();
        assert_eq!(latest["r-000001"].verdict, Verdict::Helpful);
        assert!(all[0].summary().contains("broke tests/test_a.py::test_b"));

        let run = BenchRunRow {
            id: "b1".into(),
            suite: "suite.yaml".into(),
            suite_hash: "h".into(),
            started_at: now(),
            finished_at: None,
            options: serde_json::json!({"trials": 2}),
        };
        store.start_bench(&run).unwrap();
        assert_eq!(store.bench_run(None, "suite.yaml").unwrap(), Some(run));
        let trial = BenchTrialRow {
            phase: "test".into(),
            task: "t".into(),
            arm: "none".into(),
            trial: 0,
            passed: true,
            outcome: "passed".into(),
            data: serde_json::json!({"attempts": 1}),
        };
        store.record_bench_trial("b1", &trial).unwrap();
        store
            .record_bench_trial(
                "b1",
                &BenchTrialRow {
                    passed: false,
                    ..trial.clone()
                },
            )
            .unwrap();
        assert_eq!(store.bench_trials("b1").unwrap(), vec![trial]);
        store.finish_bench("b1").unwrap();
        assert_eq!(store.bench_run(None, "suite.yaml").unwrap(), None);
        assert!(store.bench_run(Some("b1"), "").unwrap().is_some());
    }
}
