//! Learning-rate schedules as multipliers of the base rate at optimiser step `s` (0-based: the
//! number of steps already taken), with `where = s / total` as in Meta's `sam3/train/optim`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// 1 throughout.
    #[default]
    Constant,
    /// Linear from 0 to 1 over `warmup` steps, then 1.
    LinearWarmup { warmup: usize },
    /// Linear warm-up, then cosine from 1 down to `min_factor` at the last step.
    Cosine {
        #[serde(default)]
        warmup: usize,
        #[serde(default)]
        min_factor: f64,
    },
    /// Meta's `InverseSquareRootParamScheduler`: warm-up, `1/√((s + timescale − warmup)/timescale)`
    /// after it, optional linear cool-down over the last `cooldown` steps.
    InverseSqrt {
        warmup: usize,
        #[serde(default)]
        cooldown: usize,
        timescale: usize,
    },
    /// Piecewise-linear through `(step, factor)` points, constant outside them (the post's
    /// match-then-boost: `[[0, 0], [50, 1], [400, 1], [600, 5], [2000, 5]]`).
    Piecewise { points: Vec<(usize, f64)> },
}

impl Schedule {
    pub fn check(&self) -> Result<(), String> {
        match self {
            Schedule::InverseSqrt { timescale: 0, .. } => Err("schedule: `timescale` must be at least 1".into()),
            Schedule::Piecewise { points } => {
                if points.is_empty() {
                    return Err("schedule: piecewise needs at least one point".into());
                }
                if points.windows(2).any(|w| w[1].0 <= w[0].0) {
                    return Err("schedule: piecewise points must have increasing steps".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The multiplier at step `s` of `total`.
    pub fn factor(&self, s: usize, total: usize) -> f64 {
        let warm = |w: usize| if w == 0 { 1.0 } else { (s as f64 / w as f64).min(1.0) };
        match self {
            Schedule::Constant => 1.0,
            Schedule::LinearWarmup { warmup } => warm(*warmup),
            Schedule::Cosine { warmup, min_factor } => {
                if s < *warmup {
                    return warm(*warmup);
                }
                let span = total.saturating_sub(*warmup).max(1) as f64;
                let p = ((s - warmup) as f64 / span).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
            Schedule::InverseSqrt { warmup, cooldown, timescale } => {
                let mut f = 1.0;
                if *warmup < s {
                    let shift = *timescale as f64 - *warmup as f64;
                    f /= ((s as f64 + shift) / *timescale as f64).sqrt();
                }
                if *warmup > 0 {
                    f *= (s as f64 / *warmup as f64).min(1.0);
                }
                if *cooldown > 0 {
                    f *= ((total as f64 - s as f64) / *cooldown as f64).min(1.0);
                }
                f
            }
            Schedule::Piecewise { points } => {
                if s <= points[0].0 {
                    return points[0].1;
                }
                for w in points.windows(2) {
                    let ((s0, f0), (s1, f1)) = (w[0], w[1]);
                    if s <= s1 {
                        return f0 + (f1 - f0) * (s - s0) as f64 / (s1 - s0) as f64;
                    }
                }
                points.last().expect("non-empty").1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_sqrt_follows_meta() {
        // Meta: lr/√((s + ts − w)/ts) after warm-up, ·min(1, s/w).
        let s = Schedule::InverseSqrt { warmup: 10, cooldown: 0, timescale: 20 };
        assert_eq!(s.factor(0, 100), 0.0);
        assert_eq!(s.factor(5, 100), 0.5);
        assert_eq!(s.factor(10, 100), 1.0);
        assert!((s.factor(30, 100) - 1.0 / (40.0f64 / 20.0).sqrt()).abs() < 1e-12);
        let c = Schedule::InverseSqrt { warmup: 0, cooldown: 10, timescale: 1 };
        assert!((c.factor(95, 100) - 0.5 / 96f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn match_then_boost() {
        let s = Schedule::Piecewise { points: vec![(0, 0.0), (50, 1.0), (400, 1.0), (600, 5.0), (2000, 5.0)] };
        assert_eq!(s.factor(25, 2000), 0.5);
        assert_eq!(s.factor(300, 2000), 1.0);
        assert_eq!(s.factor(500, 2000), 3.0);
        assert_eq!(s.factor(1999, 2000), 5.0);
        assert_eq!(s.factor(5000, 2000), 5.0);
    }

    #[test]
    fn cosine_ends_at_min() {
        let s = Schedule::Cosine { warmup: 10, min_factor: 0.1 };
        assert_eq!(s.factor(5, 110), 0.5);
        assert!((s.factor(10, 110) - 1.0).abs() < 1e-12);
        assert!((s.factor(60, 110) - 0.55).abs() < 1e-12);
        assert!((s.factor(110, 110) - 0.1).abs() < 1e-12);
    }
}
