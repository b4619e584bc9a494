//! Small statistics: mean, sample SD, average ranks and Spearman's ρ with ties.

/// Arithmetic mean (NaN for an empty slice).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n − 1); `None` with fewer than two values.
pub fn sd(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = mean(v);
    Some((v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// Ranks 1..=n in ascending order; tied values share the average of the ranks they span.
/// NaN sorts last (the caller should not pass it).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) hold ranks i+1..=j+1; each gets their mean.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation; `None` for fewer than two pairs, unequal lengths or a constant side.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

/// Spearman's ρ: Pearson's correlation of the average ranks (correct with ties, where the
/// 1 − 6Σd²/(n(n²−1)) shortcut is not); `None` when it is undefined (see [`pearson`]).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    pearson(&average_ranks(a), &average_ranks(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn mean_and_sample_sd() {
        assert!(close(mean(&[1.0, 2.0, 6.0]), 3.0));
        // deviations −2, −1, 3: Σ² = 14, / (3 − 1) = 7.
        assert!(close(sd(&[1.0, 2.0, 6.0]).unwrap(), 7f64.sqrt()));
        assert_eq!(sd(&[5.0]), None);
        assert_eq!(sd(&[]), None);
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(average_ranks(&[30.0, 10.0, 20.0]), vec![3.0, 1.0, 2.0]);
        // 2.0 twice spans ranks 2 and 3 → 2.5 each.
        assert_eq!(average_ranks(&[1.0, 2.0, 2.0, 3.0]), vec![1.0, 2.5, 2.5, 4.0]);
        // Three-way tie at the top: ranks 2, 3, 4 → 3.
        assert_eq!(average_ranks(&[0.5, 7.0, 0.1, 7.0, 7.0]), vec![2.0, 4.0, 1.0, 4.0, 4.0]);
        assert_eq!(average_ranks(&[4.0, 4.0]), vec![1.5, 1.5]);
    }

    #[test]
    fn spearman_without_ties_matches_the_d_squared_formula() {
        // ranks of b: 1 3 2 5 4; d = 0 −1 1 −1 1; Σd² = 4; ρ = 1 − 6·4 / (5·24) = 0.8.
        let a = [10.0, 20.0, 30.0, 40.0, 50.0];
        let b = [1.0, 3.0, 2.0, 5.0, 4.0];
        assert!(close(spearman(&a, &b).unwrap(), 0.8));
        assert!(close(spearman(&a, &a).unwrap(), 1.0));
        let rev: Vec<f64> = a.iter().rev().copied().collect();
        assert!(close(spearman(&a, &rev).unwrap(), -1.0));
        // Monotone transforms do not change it.
        let sq: Vec<f64> = b.iter().map(|x| x * x * x).collect();
        assert!(close(spearman(&a, &sq).unwrap(), 0.8));
    }

    #[test]
    fn spearman_with_ties_is_pearson_of_average_ranks() {
        // a ranks 1, 2.5, 2.5, 4 (mean 2.5): deviations −1.5, 0, 0, 1.5; b ranks 1..4: −1.5, −.5, .5, 1.5.
        // cov = 2.25 + 2.25 = 4.5; Σa² = 4.5; Σb² = 5 → ρ = 4.5 / √22.5 = 3/√10.
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(close(rho, 3.0 / 10f64.sqrt()), "{rho}");
        // The no-ties shortcut would give 1 − 6·0.5/60 = 0.95 here: the tie correction matters.
        assert!((rho - 0.95).abs() > 1e-3);
        // Ties on both sides: a ranks 1.5 1.5 3 4, b ranks 1 2.5 2.5 4.
        // a dev −1 −1 .5 1.5 (Σ² 4.5); b dev −1.5 0 0 1.5 (Σ² 4.5); cov 1.5 + 0 + 0 + 2.25 = 3.75 → 3.75/4.5.
        let rho = spearman(&[5.0, 5.0, 6.0, 9.0], &[0.0, 1.0, 1.0, 2.0]).unwrap();
        assert!(close(rho, 3.75 / 4.5), "{rho}");
    }

    #[test]
    fn spearman_is_undefined_for_constant_or_mismatched_input() {
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
    }
}
