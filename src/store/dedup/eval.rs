//! Scoring the method on labelled pairs: the confusion matrix, merge and conflict
//! precision and recall. Used by `cargo bench --bench curation` and the tests.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Analysis, Judge, Rarity, Reason, Relation, Thresholds, Verdict, analyse, compare};

/// A rule as the labelled pairs give it.
#[derive(Clone, Debug, Deserialize)]
pub struct PairRule {
    /// The rule text.
    pub rule: String,
    /// When it applies.
    #[serde(default)]
    pub when: String,
    /// Why.
    #[serde(default)]
    pub why: String,
}

/// One labelled pair.
#[derive(Clone, Debug, Deserialize)]
pub struct Pair {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Topic (python, js, go, …).
    #[serde(default)]
    pub topic: String,
    /// `same`, `different` or `conflict`.
    pub label: String,
    /// What kind of pair (paraphrase, subject, value, choice, flip, order, …).
    #[serde(default)]
    pub kind: String,
    /// One rule.
    pub a: PairRule,
    /// The other.
    pub b: PairRule,
}

/// The true classes, in matrix order.
pub const LABELS: [&str; 3] = ["same", "different", "conflict"];

/// A confusion matrix: `counts[label][predicted]`, predicted in merge / apart / conflict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Confusion {
    /// Rows: same, different, conflict. Columns: merged, kept apart, held as conflict.
    pub counts: [[usize; 3]; 3],
}

impl Confusion {
    /// Counts a pair labelled `label` (`same`, `different` or `conflict`; anything else
    /// counts as `different`) that was predicted `predicted`.
    fn add(&mut self, label: &str, predicted: Relation) {
        let row = LABELS.iter().position(|l| *l == label).unwrap_or(1);
        let col = match predicted {
            Relation::Same => 0,
            Relation::Distinct | Relation::Borderline => 1,
            Relation::Conflict => 2,
        };
        self.counts[row][col] += 1;
    }

    /// Pairs counted.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    fn ratio(num: usize, den: usize) -> f64 {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    }

    /// Of the pairs merged, the share labelled same.
    pub fn merge_precision(&self) -> f64 {
        let merged: usize = (0..3).map(|r| self.counts[r][0]).sum();
        Self::ratio(self.counts[0][0], merged)
    }

    /// Of the pairs labelled same, the share merged.
    pub fn merge_recall(&self) -> f64 {
        Self::ratio(self.counts[0][0], self.counts[0].iter().sum())
    }

    /// Of the pairs held as conflicts, the share labelled conflict.
    pub fn conflict_precision(&self) -> f64 {
        let held: usize = (0..3).map(|r| self.counts[r][2]).sum();
        Self::ratio(self.counts[2][2], held)
    }

    /// Of the pairs labelled conflict, the share held as conflicts.
    pub fn conflict_recall(&self) -> f64 {
        Self::ratio(self.counts[2][2], self.counts[2].iter().sum())
    }

    /// The matrix as a table, with the four figures.
    pub fn table(&self, title: &str) -> String {
        let mut s = format!(
            "{title} ({} pairs)\n  {:<18} {:>7} {:>7} {:>9}\n",
            self.total(),
            "label \\ predicted",
            "merged",
            "apart",
            "conflict"
        );
        for (r, label) in LABELS.iter().enumerate() {
            s.push_str(&format!(
                "  {:<18} {:>7} {:>7} {:>9}\n",
                label, self.counts[r][0], self.counts[r][1], self.counts[r][2]
            ));
        }
        s.push_str(&format!(
            "  merge precision {:.3}  recall {:.3}   conflict precision {:.3}  recall {:.3}\n",
            self.merge_precision(),
            self.merge_recall(),
            self.conflict_precision(),
            self.conflict_recall()
        ));
        s
    }
}

/// One scored pair.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The pair.
    pub pair: Pair,
    /// The method's verdict (a against b).
    pub verdict: Verdict,
    /// The verdict the other way round, when it differs.
    pub reverse: Option<Verdict>,
    /// The smaller of the two exact-overlap shares ([`super::overlap_share`]): a related
    /// pair below the store's lookup bound would not be looked up from that side.
    pub reach: f64,
}

impl Scored {
    /// Whether the verdict agrees with the label.
    pub fn correct(&self) -> bool {
        matches!(
            (self.pair.label.as_str(), self.verdict.relation),
            ("same", Relation::Same)
                | ("conflict", Relation::Conflict)
                | ("different", Relation::Distinct | Relation::Borderline)
        )
    }
}

/// Reads labelled pairs, one JSON object a line (either this format, or the older one with
/// `a` and `b` as plain rule texts and `distinct` for `different`).
pub fn read_pairs(text: &str) -> Result<Vec<Pair>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let rule = |v: &serde_json::Value| -> Option<PairRule> {
            match v {
                serde_json::Value::String(s) => Some(PairRule {
                    rule: s.clone(),
                    when: String::new(),
                    why: String::new(),
                }),
                other => serde_json::from_value(other.clone()).ok(),
            }
        };
        let (Some(a), Some(b)) = (rule(&value["a"]), rule(&value["b"])) else {
            return Err(format!("line {}: no rules a and b", n + 1));
        };
        let label = match value["label"].as_str() {
            Some("distinct") => "different".to_string(),
            Some(l @ ("same" | "different" | "conflict")) => l.to_string(),
            other => return Err(format!("line {}: unknown label {other:?}", n + 1)),
        };
        out.push(Pair {
            id: value["id"].as_str().unwrap_or_default().to_string(),
            topic: value["topic"].as_str().unwrap_or_default().to_string(),
            label,
            kind: value["kind"]
                .as_str()
                .or(value["split"].as_str())
                .unwrap_or_default()
                .to_string(),
            a,
            b,
        });
    }
    Ok(out)
}

/// Scores `pairs` with the rarity of their own rules (as a store holding them would weigh
/// them): the confusion matrix and every pair's verdict.
pub fn score(pairs: &[Pair], t: &Thresholds) -> (Confusion, Vec<Scored>) {
    score_with(pairs, t, None)
}

/// [`score`] with a judge asked about the pairs the method is unsure of, as the store asks
/// it at insert: one it says are the same rule is merged.
pub fn score_with(
    pairs: &[Pair],
    t: &Thresholds,
    judge: Option<&dyn Judge>,
) -> (Confusion, Vec<Scored>) {
    let analysed: Vec<(Analysis, Analysis)> = pairs
        .iter()
        .map(|p| (analyse(&p.a.rule, &p.a.when), analyse(&p.b.rule, &p.b.when)))
        .collect();
    let rarity = Rarity::of(analysed.iter().flat_map(|(a, b)| [a, b]));
    let weight = |token: &str| rarity.weight(token);
    let mut confusion = Confusion::default();
    let mut scored = Vec::with_capacity(pairs.len());
    for (p, (a, b)) in pairs.iter().zip(&analysed) {
        let mut verdict = compare(a, b, &weight, t);
        let back = compare(b, a, &weight, t);
        if verdict.relation == Relation::Borderline
            && judge.is_some_and(|j| j.same_rule(&p.a.rule, &p.b.rule) == Some(true))
        {
            verdict.relation = Relation::Same;
        }
        confusion.add(&p.label, verdict.relation);
        let reach =
            super::overlap_share(a, b, &weight, t).min(super::overlap_share(b, a, &weight, t));
        scored.push(Scored {
            pair: p.clone(),
            verdict,
            reverse: (back.relation != verdict.relation).then_some(back),
            reach,
        });
    }
    (confusion, scored)
}

/// What candidates found by meaning could add: for each cosine bound, the confusion matrix
/// when every pair the method keeps apart for want of shared words (unrelated or unsure,
/// not a different subject or context) is merged if its texts' embeddings are at least
/// that similar. `similarity` gives the cosine of two rule texts (`None`: not known, the
/// verdict stands).
pub fn embedding_ceiling(
    scored: &[Scored],
    similarity: &dyn Fn(&str, &str) -> Option<f64>,
    bounds: &[f64],
) -> Vec<(f64, Confusion)> {
    let cosines: Vec<Option<f64>> = scored
        .iter()
        .map(|s| {
            let apart = matches!(
                s.verdict.relation,
                Relation::Distinct | Relation::Borderline
            ) && matches!(s.verdict.reason, Reason::Unrelated | Reason::Unsure);
            if apart {
                similarity(&s.pair.a.rule, &s.pair.b.rule)
            } else {
                None
            }
        })
        .collect();
    bounds
        .iter()
        .map(|&bound| {
            let mut confusion = Confusion::default();
            for (s, cos) in scored.iter().zip(&cosines) {
                let relation = match cos {
                    Some(c) if *c >= bound => Relation::Same,
                    _ => s.verdict.relation,
                };
                confusion.add(&s.pair.label, relation);
            }
            (bound, confusion)
        })
        .collect()
}

/// A judge deciding the pairs `decides` picks, the method the rest: the confusion matrix
/// and how many pairs the judge was asked about. A pair the judge cannot tell about keeps
/// the method's verdict.
pub fn judged(
    scored: &[Scored],
    judge: &dyn Judge,
    decides: &dyn Fn(&Scored) -> bool,
) -> (Confusion, usize) {
    let mut confusion = Confusion::default();
    let mut asked = 0;
    for s in scored {
        let mut relation = s.verdict.relation;
        if decides(s) {
            asked += 1;
            if let Some(r) = judge.relation(&s.pair.a.rule, &s.pair.b.rule) {
                relation = r;
            }
        }
        confusion.add(&s.pair.label, relation);
    }
    (confusion, asked)
}

/// Scores per value of a key (topic or kind), for the report.
pub fn by<F: Fn(&Pair) -> String>(scored: &[Scored], key: F) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in scored {
        let e = out.entry(key(&s.pair)).or_default();
        e.0 += usize::from(s.correct());
        e.1 += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dev pairs (the ones the method is tuned on).
    fn dev_pairs() -> Vec<Pair> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/curation/dev.jsonl"
        ))
        .unwrap();
        read_pairs(&text).unwrap()
    }

    /// A judge that calls every pair it is asked about the same rule, and counts them.
    struct Yes(std::cell::Cell<usize>);

    impl Judge for Yes {
        fn same_rule(&self, _: &str, _: &str) -> Option<bool> {
            self.0.set(self.0.get() + 1);
            Some(true)
        }
    }

    #[test]
    fn a_judge_is_asked_about_the_unsure_pairs_only_and_merges_those_it_calls_the_same() {
        let pairs = dev_pairs();
        let t = Thresholds::default();
        let (_, alone) = score(&pairs, &t);
        let unsure = alone
            .iter()
            .filter(|s| s.verdict.relation == Relation::Borderline)
            .count();
        assert!(unsure > 0);
        let yes = Yes(std::cell::Cell::new(0));
        let (_, judged) = score_with(&pairs, &t, Some(&yes));
        assert_eq!(yes.0.get(), unsure);
        for (a, j) in alone.iter().zip(&judged) {
            match a.verdict.relation {
                Relation::Borderline => assert_eq!(j.verdict.relation, Relation::Same),
                other => assert_eq!(j.verdict.relation, other),
            }
        }
    }

    #[test]
    fn the_embedding_ceiling_merges_only_pairs_kept_apart_for_want_of_words() {
        let pairs = dev_pairs();
        let (alone, scored) = score(&pairs, &Thresholds::default());
        let asked = std::cell::Cell::new(0);
        // Every pair is "0.9 similar": at 0.85 all unrelated or unsure pairs merge, at 0.95
        // none does.
        let similar = |_: &str, _: &str| {
            asked.set(asked.get() + 1);
            Some(0.9)
        };
        let ceiling = embedding_ceiling(&scored, &similar, &[0.85, 0.95]);
        let overruled = scored
            .iter()
            .filter(|s| {
                matches!(
                    s.verdict.relation,
                    Relation::Distinct | Relation::Borderline
                ) && matches!(s.verdict.reason, Reason::Unrelated | Reason::Unsure)
            })
            .count();
        assert!(overruled > 0);
        assert_eq!(asked.get(), overruled);
        assert_eq!(ceiling[1].1, alone);
        let merged = |c: &Confusion| (0..3).map(|r| c.counts[r][0]).sum::<usize>();
        assert_eq!(merged(&ceiling[0].1), merged(&alone) + overruled);
        assert_eq!(ceiling[0].1.total(), alone.total());
    }

    /// A judge that answers `relation` for every pair and counts the questions.
    struct Always(Option<Relation>, std::cell::Cell<usize>);

    impl Judge for Always {
        fn same_rule(&self, _: &str, _: &str) -> Option<bool> {
            unreachable!("the bench asks for the relation")
        }

        fn relation(&self, _: &str, _: &str) -> Option<Relation> {
            self.1.set(self.1.get() + 1);
            self.0
        }
    }

    #[test]
    fn a_judge_that_decides_overrules_the_method_on_the_pairs_picked_only() {
        let pairs = dev_pairs();
        let (alone, scored) = score(&pairs, &Thresholds::default());
        let picked = |s: &Scored| s.verdict.relation == Relation::Same;
        let merged = scored.iter().filter(|s| picked(s)).count();
        assert!(merged > 0);
        // Every merge turned into a conflict; nothing else moves.
        let conflict = Always(Some(Relation::Conflict), std::cell::Cell::new(0));
        let (c, asked) = judged(&scored, &conflict, &picked);
        assert_eq!((asked, conflict.1.get()), (merged, merged));
        for label in 0..3 {
            assert_eq!(c.counts[label][0], 0);
            assert_eq!(
                c.counts[label][2],
                alone.counts[label][2] + alone.counts[label][0]
            );
            assert_eq!(c.counts[label][1], alone.counts[label][1]);
        }
        // A judge that cannot tell leaves the method's verdicts.
        let mute = Always(None, std::cell::Cell::new(0));
        let (c, asked) = judged(&scored, &mute, &|_| true);
        assert_eq!((asked, mute.1.get()), (pairs.len(), pairs.len()));
        assert_eq!(c, alone);
    }
}
