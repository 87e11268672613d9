//! What one event of a run changes in the run and attempt rows, read from its JSON once, so
//! each backend only writes it in its own SQL.

use serde_json::Value;

/// The row change an event makes.
#[derive(Debug, PartialEq)]
pub(crate) enum RowUpdate<'e> {
    /// `run.started`: the run's row.
    RunStarted {
        task: &'e str,
        agent: Option<&'e str>,
        teacher: Option<&'e str>,
        rules_file: Option<&'e str>,
        /// From the run id, else now.
        started_at: String,
    },
    /// `attempt.started`: the attempt's row.
    AttemptStarted { attempt: Option<i64> },
    /// `agent.finished`.
    AgentFinished {
        attempt: Option<i64>,
        status: Option<&'e str>,
        changed_files: i64,
    },
    /// `tests.finished`.
    TestsFinished {
        attempt: Option<i64>,
        outcome: Option<&'e str>,
        failing: i64,
    },
    /// `failure.captured`.
    FailureCaptured {
        attempt: Option<i64>,
        failure_id: Option<&'e str>,
    },
    /// `rule.learned`: the attempt whose failure it came from names the rule.
    RuleLearned {
        failure_id: Option<&'e str>,
        rule_id: Option<&'e str>,
    },
    /// `attempt.reverted`.
    AttemptReverted { attempt: Option<i64> },
    /// `run.finished`; a passed run validates the rules it learned.
    RunFinished {
        outcome: Option<&'e str>,
        attempts: i64,
        rules_learned: i64,
        pending: i64,
        cost_usd: f64,
        duration_ms: Option<i64>,
        message: Option<&'e str>,
    },
    /// Any other event: kept, no row changes.
    Nothing,
}

/// A run id made by `record::new_id` starts with its local start time.
fn started_from_run_id(id: &str) -> Option<String> {
    let stamp = id.get(..15)?;
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    Some(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// The event's `type` (`unknown` without one) and the row change it makes.
pub(crate) fn read<'e>(run_id: &str, event: &'e Value) -> (&'e str, RowUpdate<'e>) {
    let text = |key: &str| event.get(key).and_then(|v| v.as_str());
    let int = |key: &str| event.get(key).and_then(|v| v.as_u64()).unwrap_or(0) as i64;
    let count = |key: &str| {
        event
            .get(key)
            .and_then(|v| v.as_array())
            .map_or(0, |a| a.len() as i64)
    };
    let attempt = event.get("attempt").and_then(|v| v.as_i64());
    let kind = text("type").unwrap_or("unknown");
    let update = match kind {
        "run.started" => RowUpdate::RunStarted {
            task: text("task").unwrap_or_default(),
            agent: text("agent"),
            teacher: text("teacher"),
            rules_file: text("rules_file"),
            started_at: started_from_run_id(run_id).unwrap_or_else(super::now),
        },
        "attempt.started" => RowUpdate::AttemptStarted { attempt },
        "agent.finished" => RowUpdate::AgentFinished {
            attempt,
            status: event
                .get("outcome")
                .and_then(|o| o.get("status"))
                .and_then(|s| s.as_str()),
            changed_files: count("changed_files"),
        },
        "tests.finished" => RowUpdate::TestsFinished {
            attempt,
            outcome: event
                .get("tests")
                .and_then(|t| t.get("outcome"))
                .and_then(|s| s.as_str()),
            failing: count("failing"),
        },
        "failure.captured" => RowUpdate::FailureCaptured {
            attempt,
            failure_id: text("failure_id"),
        },
        "rule.learned" => RowUpdate::RuleLearned {
            failure_id: text("failure_id"),
            rule_id: text("rule_id"),
        },
        "attempt.reverted" => RowUpdate::AttemptReverted { attempt },
        "run.finished" => RowUpdate::RunFinished {
            outcome: text("outcome"),
            attempts: int("attempts"),
            rules_learned: int("rules_learned"),
            pending: int("pending"),
            cost_usd: event
                .get("cost_usd")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0),
            duration_ms: event
                .get("duration_ms")
                .and_then(|v| v.as_u64())
                .map(|v| v as i64),
            message: text("message"),
        },
        _ => RowUpdate::Nothing,
    };
    (kind, update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_read_into_the_row_changes_they_make() {
        let e = json!({"type": "tests.finished", "attempt": 2,
                       "tests": {"outcome": "failed"}, "failing": ["a", "b", "c"]});
        assert_eq!(
            read("r", &e),
            (
                "tests.finished",
                RowUpdate::TestsFinished {
                    attempt: Some(2),
                    outcome: Some("failed"),
                    failing: 3
                }
            )
        );
        let e = json!({"type": "run.started", "task": "Fix it"});
        match read("20261203-101500-abcd", &e).1 {
            RowUpdate::RunStarted {
                task, started_at, ..
            } => {
                assert_eq!(task, "Fix it");
                assert_eq!(started_at, "2026-12-03T10:15:00");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read("r", &json!({})), ("unknown", RowUpdate::Nothing));
    }
}
