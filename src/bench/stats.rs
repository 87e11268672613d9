//! Intervals for pass rates: Wilson's score interval for one proportion, and Newcombe's
//! hybrid score interval for the difference of two (his method 10), both at 95 %.
//!
//! Wilson's interval stays inside [0, 1] and keeps close to its nominal coverage for the
//! small trial counts a bench runs (5 of 5 passed is [0.57, 1], not [1, 1]). Newcombe's
//! interval for p₁ − p₂ is built from the two Wilson intervals, so it inherits that.

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion with its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Successes.
    pub passed: u32,
    /// Trials.
    pub trials: u32,
    /// passed / trials (0 without trials).
    pub rate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// Wilson's score interval for `passed` of `trials`; without trials it is [0, 1].
pub fn wilson(passed: u32, trials: u32) -> Rate {
    if trials == 0 {
        return Rate {
            passed,
            trials,
            rate: 0.0,
            low: 0.0,
            high: 1.0,
        };
    }
    let n = f64::from(trials);
    let p = f64::from(passed.min(trials)) / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Rate {
        passed,
        trials,
        rate: p,
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    }
}

/// The difference `a − b` of two pass rates with Newcombe's 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Difference {
    /// a.rate − b.rate.
    pub diff: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Difference {
    /// Whether the interval leaves out 0: the arms differ beyond chance at 95 %.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Newcombe's hybrid score interval for `a.rate − b.rate`.
pub fn difference(a: &Rate, b: &Rate) -> Difference {
    let d = a.rate - b.rate;
    let low = d - ((a.rate - a.low).powi(2) + (b.high - b.rate).powi(2)).sqrt();
    let high = d + ((a.high - a.rate).powi(2) + (b.rate - b.low).powi(2)).sqrt();
    Difference {
        diff: d,
        low: low.max(-1.0),
        high: high.min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), Table I: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605;
        // 0/20 → 0–0.1611; 1/29 → 0.0061–0.1718.
        for (x, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let r = wilson(x, n);
            assert!(close(r.low, lo) && close(r.high, hi), "{x}/{n}: {r:?}");
        }
        let all = wilson(5, 5);
        assert!(close(all.low, 0.5655) && all.high == 1.0, "{all:?}");
        assert_eq!(wilson(0, 0).high, 1.0);
    }

    #[test]
    fn newcombe_difference_matches_published_values() {
        // Newcombe (1998b), method 10, examples: 56/70 − 48/80 → 0.0524–0.3339;
        // 9/10 − 3/10 → 0.1705–0.8090; 10/10 − 0/10 → 0.6075–1.
        for (a, n, b, m, lo, hi) in [
            (56, 70, 48, 80, 0.0524, 0.3339),
            (9, 10, 3, 10, 0.1705, 0.8090),
            (10, 10, 0, 10, 0.6075, 1.0),
        ] {
            let d = difference(&wilson(a, n), &wilson(b, m));
            assert!(
                close(d.low, lo) && close(d.high, hi),
                "{a}/{n} − {b}/{m}: {d:?}"
            );
            assert!(d.significant());
        }
        let none = difference(&wilson(1, 2), &wilson(1, 2));
        assert!(!none.significant() && none.diff == 0.0);
    }
}
