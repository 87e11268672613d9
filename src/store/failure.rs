//! A failure as the store keeps it: its evidence, whether a rule came from it, and how often
//! it came back.

use serde::{Deserialize, Serialize};

use crate::failure::FailureContext;
use crate::rules::format::Rule;

/// Whether a failure still waits for a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStatus {
    /// No rule yet; `promptloop learn` will try again.
    Pending,
    /// A rule came from it.
    Learned,
}

/// A failure as kept on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredFailure {
    /// Pending or learned.
    pub status: FailureStatus,
    /// The failure with its evidence.
    pub context: FailureContext,
    /// Why the last analysis failed.
    pub last_error: Option<String>,
    /// Analyses tried.
    pub tries: u32,
    /// The rule learned from it.
    pub rule: Option<Rule>,
    /// The file the rule goes to (set when the failure is captured, so `promptloop learn`
    /// writes a pending failure's rule where its run or report meant it to go).
    pub rules_file: Option<String>,
    /// The teacher that answered.
    pub teacher: Option<String>,
    /// The teacher's whole answer (analysis and rule).
    pub teacher_answer: Option<String>,
    /// The failure's fingerprints (see `fingerprint`): one per failing test.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// On a learned failure: how often one of its fingerprints came back afterwards.
    #[serde(default)]
    pub recurrences: u32,
    /// On a learned failure: the id of the latest failure that repeated it.
    #[serde(default)]
    pub last_recurrence: Option<String>,
    /// On a new failure: the learned failure it repeats, if any.
    #[serde(default)]
    pub recurrence_of: Option<String>,
}

/// A learned failure that came back.
#[derive(Clone, Debug)]
pub struct Recurrence {
    /// The learned failure's id.
    pub original: String,
    /// The fingerprint they share.
    pub fingerprint: String,
    /// The rule learned from the original, if it was recorded.
    pub rule: Option<Rule>,
    /// Times it has recurred, this one included.
    pub count: u32,
}
