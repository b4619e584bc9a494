//! The arithmetic behind the figures that is not just "plot the numbers": Fig. 8.1's 2-D
//! coordinates recovered from published norms and cosines, and Fig. 6.2's least-squares trend.

use serde::Serialize;

use crate::error::{FigureError, Result};
use crate::schema::{Projection, ProjectionPoint};

/// One row of a Table-7.1-style report: a trajectory Δ = TO − FROM, its norm relative to the base
/// value of the parameter, and its cosines to the two reference trajectories.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CosineRow {
    pub label: String,
    pub from: String,
    pub to: String,
    pub rel_base: f64,
    pub cos_axis: f64,
    pub cos_toward: f64,
}

/// Fig. 8.1 coordinates from norms and cosines alone (the post publishes no vectors).
///
/// Let F = Δ_axis and P = Δ_toward, c = cos(F, P). The plane's basis is
///   e1 = F / ‖F‖,   e2 = (P − (P·e1) e1) / ‖P − (P·e1) e1‖,
/// so P/‖P‖ = c·e1 + √(1 − c²)·e2. For a trajectory Δ with r = ‖Δ‖/‖base‖, a = cos(Δ, F) and
/// b = cos(Δ, P), in units of ‖base‖:
///   x = Δ·e1 / ‖base‖ = r·a
///   Δ·P/‖P‖ / ‖base‖ = r·b = c·x + √(1 − c²)·y   ⇒   y = r·(b − c·a) / √(1 − c²).
/// (x, y) is the projection of Δ onto the plane; the part of Δ outside it is not shown, which is
/// why [`in_plane_fraction`] is reported next to each arrow. c is read from the axis row's cosine to
/// `toward` (equal to the toward row's cosine to `axis`; a mismatch beyond rounding is an error).
///
/// A trajectory whose FROM is another trajectory's TO starts at that trajectory's tip (recovery is
/// drawn from frozen_te's tip); all others start at the origin (base).
pub fn projection_from_cosines(
    rows: &[CosineRow],
    axis: &str,
    toward: &str,
    input: &str,
) -> Result<Projection> {
    let find = |label: &str| {
        rows.iter().find(|r| r.label == label).ok_or_else(|| {
            let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
            FigureError::invalid(
                input,
                format!(
                    "no trajectory `{label}` (have {}){}",
                    names.join(", "),
                    crate::schema::did_you_mean(label, &names)
                ),
            )
        })
    };
    let f = find(axis)?;
    let p = find(toward)?;
    let c = f.cos_toward;
    if (c - p.cos_axis).abs() > 0.011 {
        return Err(FigureError::invalid(
            input,
            format!(
                "cos({axis}, {toward}) is {} in `{axis}`'s row but {} in `{toward}`'s row",
                c, p.cos_axis
            ),
        ));
    }
    let s = (1.0 - c * c).sqrt();
    if s < 1e-6 {
        return Err(FigureError::invalid(
            input,
            format!("`{axis}` and `{toward}` are parallel (cos {c}); they do not span a plane"),
        ));
    }
    let delta: Vec<[f64; 2]> = rows
        .iter()
        .map(|r| {
            [
                r.rel_base * r.cos_axis,
                r.rel_base * (r.cos_toward - c * r.cos_axis) / s,
            ]
        })
        .collect();
    let mut points = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let origin = chain_origin(rows, &delta, i, input)?;
        points.push(ProjectionPoint {
            label: r.label.clone(),
            origin,
            tip: [origin[0] + delta[i][0], origin[1] + delta[i][1]],
        });
    }
    Ok(Projection {
        axis: axis.into(),
        toward: toward.into(),
        points,
        base: None,
    })
}

/// Tip of the chain of trajectories ending at row `i`'s FROM (origin when nothing ends there).
fn chain_origin(rows: &[CosineRow], delta: &[[f64; 2]], i: usize, input: &str) -> Result<[f64; 2]> {
    let mut at = [0.0, 0.0];
    let mut from = rows[i].from.as_str();
    for _ in 0..rows.len() {
        match rows.iter().position(|r| r.to == from) {
            None => return Ok(at),
            Some(j) => {
                at = [at[0] + delta[j][0], at[1] + delta[j][1]];
                from = rows[j].from.as_str();
            }
        }
    }
    Err(FigureError::invalid(
        input,
        format!(
            "trajectory `{}` starts in a cycle of FROM/TO labels",
            rows[i].label
        ),
    ))
}

/// ‖(x, y)‖ / r: how much of a trajectory's length lies in the projection plane (1 = all of it).
pub fn in_plane_fraction(dx: f64, dy: f64, rel_base: f64) -> f64 {
    if rel_base == 0.0 {
        1.0
    } else {
        (dx * dx + dy * dy).sqrt() / rel_base
    }
}

/// Ordinary least squares y = intercept + slope·x.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LinearFit {
    pub slope: f64,
    pub intercept: f64,
    pub r_squared: f64,
    pub n: usize,
}

impl LinearFit {
    pub fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
}

pub fn least_squares(xs: &[f64], ys: &[f64]) -> Option<LinearFit> {
    let n = xs.len();
    if n < 2 || ys.len() != n {
        return None;
    }
    let mx = xs.iter().sum::<f64>() / n as f64;
    let my = ys.iter().sum::<f64>() / n as f64;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r_squared = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Some(LinearFit {
        slope,
        intercept: my - slope * mx,
        r_squared,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, from: &str, to: &str, r: f64, a: f64, b: f64) -> CosineRow {
        CosineRow {
            label: label.into(),
            from: from.into(),
            to: to.into(),
            rel_base: r,
            cos_axis: a,
            cos_toward: b,
        }
    }

    /// Build explicit 3-D vectors, compute their norms/cosines, and check the derived 2-D
    /// coordinates equal the vectors' projections computed directly with Gram–Schmidt.
    #[test]
    fn matches_direct_projection_of_explicit_vectors() {
        let base_norm = 2.0;
        let f = [1.5, 0.2, -0.3];
        let p = [-0.4, 1.1, 0.7];
        let v = [0.3, -0.8, 1.9];
        let dot = |a: &[f64; 3], b: &[f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let norm = |a: &[f64; 3]| dot(a, a).sqrt();
        let cos = |a: &[f64; 3], b: &[f64; 3]| dot(a, b) / (norm(a) * norm(b));
        let rows = vec![
            row("f", "base", "f", norm(&f) / base_norm, 1.0, cos(&f, &p)),
            row("p", "base", "p", norm(&p) / base_norm, cos(&p, &f), 1.0),
            row(
                "v",
                "base",
                "v",
                norm(&v) / base_norm,
                cos(&v, &f),
                cos(&v, &p),
            ),
        ];
        let proj = projection_from_cosines(&rows, "f", "p", "t").unwrap();
        let e1: Vec<f64> = f.iter().map(|x| x / norm(&f)).collect();
        let pe1 = p[0] * e1[0] + p[1] * e1[1] + p[2] * e1[2];
        let mut w = [p[0] - pe1 * e1[0], p[1] - pe1 * e1[1], p[2] - pe1 * e1[2]];
        let wn = norm(&w);
        w.iter_mut().for_each(|x| *x /= wn);
        for (vec, pt) in [f, p, v].iter().zip(&proj.points) {
            let x = (vec[0] * e1[0] + vec[1] * e1[1] + vec[2] * e1[2]) / base_norm;
            let y = dot(vec, &w) / base_norm;
            assert!(
                (pt.tip[0] - x).abs() < 1e-12 && (pt.tip[1] - y).abs() < 1e-12,
                "{pt:?} vs ({x}, {y})"
            );
            assert_eq!(pt.origin, [0.0, 0.0]);
        }
    }

    #[test]
    fn chained_and_degenerate() {
        let rows = vec![
            row("a", "base", "A", 1.0, 1.0, 0.0),
            row("b", "base", "B", 1.0, 0.0, 1.0),
            row("c", "A", "C", 0.5, 1.0, 0.0),
        ];
        let proj = projection_from_cosines(&rows, "a", "b", "t").unwrap();
        assert_eq!(proj.points[2].origin, [1.0, 0.0]);
        assert_eq!(proj.points[2].tip, [1.5, 0.0]);
        let par = vec![
            row("a", "base", "A", 1.0, 1.0, 1.0),
            row("b", "base", "B", 1.0, 1.0, 1.0),
        ];
        let e = projection_from_cosines(&par, "a", "b", "in.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("parallel") && e.starts_with("in.csv"), "{e}");
        let e = projection_from_cosines(&rows, "a", "bb", "in.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `b`"), "{e}");
    }

    #[test]
    fn least_squares_exact_line_and_known_data() {
        let f = least_squares(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]).unwrap();
        assert!(
            (f.slope - 2.0).abs() < 1e-12
                && (f.intercept - 1.0).abs() < 1e-12
                && (f.r_squared - 1.0).abs() < 1e-12
        );
        // x = 1..4, y = 2, 4, 5, 4, by hand: x̄ = 2.5, ȳ = 3.75, Sxx = 5, Sxy = 3.5, Syy = 4.75
        // ⇒ slope 0.7, intercept 2.0, r² = 3.5² / (5 · 4.75) = 12.25 / 23.75.
        let f = least_squares(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 4.0]).unwrap();
        assert!((f.slope - 0.7).abs() < 1e-12, "{f:?}");
        assert!((f.intercept - 2.0).abs() < 1e-12, "{f:?}");
        assert!((f.r_squared - 12.25 / 23.75).abs() < 1e-12, "{f:?}");
        assert!(least_squares(&[1.0, 1.0], &[0.0, 2.0]).is_none());
    }
}
