//! Minimum-cost one-to-one assignment on a dense rectangular matrix, following
//! `scipy.optimize.linear_sum_assignment` step by step (shortest augmenting paths after
//! D. F. Crouse, "On implementing 2D rectangular assignment algorithms", 2016), so that on ties it
//! picks the same assignment scipy picks — which matters for the TP count at each IoU threshold.

/// Solve `min Σ cost[r][c]` over one-to-one assignments of `min(rows, cols)` pairs.
/// `cost` is row-major `rows × cols` with finite entries. Returns `(row, col)` pairs sorted by row.
pub fn linear_sum_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(cost.len(), rows * cols, "cost matrix must be rows*cols");
    assert!(
        cost.iter().all(|c| c.is_finite()),
        "cost matrix entries must be finite"
    );
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    // Like scipy: solve a wide problem (rows ≤ cols), transposing a tall one.
    let transpose = cols < rows;
    let (nr, nc) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |i: usize, j: usize| {
        if transpose {
            cost[j * cols + i]
        } else {
            cost[i * cols + j]
        }
    };
    // scipy shifts the matrix to be non-negative before solving.
    let min = cost.iter().copied().fold(f64::INFINITY, f64::min);
    let c: Vec<f64> = (0..nr)
        .flat_map(|i| (0..nc).map(move |j| (i, j)))
        .map(|(i, j)| at(i, j) - min)
        .collect();

    const NONE: usize = usize::MAX;
    let mut u = vec![0.0f64; nr];
    let mut v = vec![0.0f64; nc];
    let mut spc = vec![f64::INFINITY; nc]; // shortest path costs
    let mut path = vec![NONE; nc];
    let mut col4row = vec![NONE; nr];
    let mut row4col = vec![NONE; nc];
    let mut sr = vec![false; nr];
    let mut sc = vec![false; nc];
    let mut remaining: Vec<usize> = Vec::with_capacity(nc);

    for cur_row in 0..nr {
        // Shortest augmenting path from cur_row.
        let mut min_val = 0.0f64;
        remaining.clear();
        // Reverse order: a constant matrix then yields the identity assignment (as in scipy).
        remaining.extend((0..nc).rev());
        sr.fill(false);
        sc.fill(false);
        spc.fill(f64::INFINITY);
        let mut i = cur_row;
        let sink = loop {
            let mut index = NONE;
            let mut lowest = f64::INFINITY;
            sr[i] = true;
            for (it, &j) in remaining.iter().enumerate() {
                let r = min_val + c[i * nc + j] - u[i] - v[j];
                if r < spc[j] {
                    path[j] = i;
                    spc[j] = r;
                }
                // On equal cost prefer a column that ends the path (a free column).
                if spc[j] < lowest || (spc[j] == lowest && row4col[j] == NONE) {
                    lowest = spc[j];
                    index = it;
                }
            }
            min_val = lowest;
            let j = remaining[index];
            sc[j] = true;
            let last = remaining.len() - 1;
            remaining[index] = remaining[last];
            remaining.truncate(last);
            if row4col[j] == NONE {
                break j;
            }
            i = row4col[j];
        };

        // Update the dual variables.
        u[cur_row] += min_val;
        for r in 0..nr {
            if sr[r] && r != cur_row {
                u[r] += min_val - spc[col4row[r]];
            }
        }
        for j in 0..nc {
            if sc[j] {
                v[j] -= min_val - spc[j];
            }
        }
        // Augment along the path.
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur_row {
                break;
            }
        }
    }

    let mut pairs: Vec<(usize, usize)> = if transpose {
        (0..nr).map(|i| (col4row[i], i)).collect()
    } else {
        (0..nr).map(|i| (i, col4row[i])).collect()
    };
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn brute_force_min(cost: &[f64], rows: usize, cols: usize) -> f64 {
        // Enumerate injective maps from the smaller side into the larger one.
        fn rec(
            k: usize,
            small: usize,
            large: usize,
            used: &mut Vec<bool>,
            f: &dyn Fn(usize, usize) -> f64,
        ) -> f64 {
            if k == small {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..large {
                if !used[j] {
                    used[j] = true;
                    best = best.min(f(k, j) + rec(k + 1, small, large, used, f));
                    used[j] = false;
                }
            }
            best
        }
        if rows <= cols {
            rec(0, rows, cols, &mut vec![false; cols], &|i, j| {
                cost[i * cols + j]
            })
        } else {
            rec(0, cols, rows, &mut vec![false; rows], &|j, i| {
                cost[i * cols + j]
            })
        }
    }

    #[test]
    fn optimal_against_brute_force_on_random_matrices() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for trial in 0..600 {
            let rows = rng.random_range(0..=6);
            let cols = rng.random_range(0..=6);
            // Half the trials draw from a coarse grid to create many ties.
            let coarse = trial % 2 == 0;
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| {
                    if coarse {
                        rng.random_range(0..4) as f64 * -0.25
                    } else {
                        -rng.random::<f64>()
                    }
                })
                .collect();
            let pairs = linear_sum_assignment(&cost, rows, cols);
            assert_eq!(pairs.len(), rows.min(cols));
            let mut seen_r = vec![false; rows];
            let mut seen_c = vec![false; cols];
            for &(r, c) in &pairs {
                assert!(!seen_r[r] && !seen_c[c], "not one-to-one");
                seen_r[r] = true;
                seen_c[c] = true;
            }
            let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
            let best = brute_force_min(&cost, rows, cols);
            assert!(
                (total - best).abs() < 1e-12,
                "trial {trial}: {total} vs optimum {best} for {rows}x{cols}"
            );
        }
    }

    #[test]
    fn constant_matrix_gives_identity() {
        assert_eq!(
            linear_sum_assignment(&[1.0; 9], 3, 3),
            vec![(0, 0), (1, 1), (2, 2)]
        );
        assert_eq!(linear_sum_assignment(&[0.0; 6], 3, 2), vec![(0, 0), (1, 1)]);
    }
}
