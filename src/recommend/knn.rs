//! Rating prediction with scikit-surprise's `KNNBasic`, user- or item-based:
//!
//! r̂(u, i) = Σ sim(u, v) · r(v, i) / Σ sim(u, v) over the k users v most similar to u among
//! those who rated i, counting only positive similarities; with fewer than `min_k` of those
//! (or an unknown user or movie) the prediction is the global mean of the training ratings.
//! Predictions are clipped to 1–5. Item-based is the same on the transposed matrix.
//!
//! Similarities are Surprise's, over the ratings two users have in common: cosine
//! Σ r·r' / √(Σ r² · Σ r'²), or msd 1 / (1 + mean squared difference); pairs with fewer
//! than `min_support` common ratings get 0. Neighbour ties are broken as Surprise breaks
//! them (by the order the ratings came in: `heapq.nlargest` is stable), which matters with
//! cosine: two users with one movie in common have a similarity of exactly 1.

use serde::{Deserialize, Serialize};

use super::data::{Csr, Ratings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    Cosine,
    Msd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Based {
    User,
    Item,
}

/// `KNNBasic`'s parameters, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnOptions {
    pub k: usize,
    pub min_k: usize,
    pub similarity: Similarity,
    pub based: Based,
    pub min_support: usize,
}

impl Default for KnnOptions {
    fn default() -> Self {
        Self {
            k: 40,
            min_k: 1,
            similarity: Similarity::Msd,
            based: Based::User,
            min_support: 1,
        }
    }
}

/// Similarities of one profile (a row of the matrix, or a visitor's ratings) to every row
/// of the matrix whose columns are `columns`: one pass over the columns the profile has,
/// so the cost is the number of ratings shared, not rows × columns.
pub fn similarities(
    profile: &[(u32, f32)],
    columns: &Csr,
    rows: usize,
    similarity: Similarity,
    min_support: usize,
) -> Vec<f64> {
    // prods / squares of the profile / squares of the other row, and the count, per row.
    let mut acc = vec![[0.0f64; 3]; rows];
    let mut common = vec![0u32; rows];
    for &(column, mine) in profile {
        let mine = f64::from(mine);
        for &(row, theirs) in columns.row(column) {
            let theirs = f64::from(theirs);
            let a = &mut acc[row as usize];
            match similarity {
                Similarity::Cosine => {
                    a[0] += mine * theirs;
                    a[1] += mine * mine;
                    a[2] += theirs * theirs;
                }
                Similarity::Msd => a[0] += (mine - theirs) * (mine - theirs),
            }
            common[row as usize] += 1;
        }
    }
    acc.iter()
        .zip(&common)
        .map(|(a, &n)| {
            if n == 0 || (n as usize) < min_support {
                return 0.0;
            }
            match similarity {
                Similarity::Cosine => a[0] / (a[1] * a[2]).sqrt(),
                Similarity::Msd => 1.0 / (a[0] / f64::from(n) + 1.0),
            }
        })
        .collect()
}

/// A prediction and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub value: f64,
    /// Neighbours that contributed (positive similarity, among the k nearest).
    pub neighbours: usize,
    /// Fewer than `min_k` neighbours: `value` is the global mean.
    pub impossible: bool,
}

/// A trained `KNNBasic`: the ratings and, for every row (user, or movie when item-based),
/// its similarity to every other row (943² = 0.9 M numbers user-based).
pub struct KnnBasic<'a> {
    ratings: &'a Ratings,
    options: KnnOptions,
    sims: Vec<f64>,
    rows: usize,
}

impl<'a> KnnBasic<'a> {
    pub fn fit(ratings: &'a Ratings, options: KnnOptions) -> Self {
        let (row_major, columns, rows) = orient(ratings, options.based);
        let mut sims = Vec::with_capacity(rows * rows);
        for r in 0..rows as u32 {
            let mut row = similarities(
                row_major.row(r),
                columns,
                rows,
                options.similarity,
                options.min_support,
            );
            row[r as usize] = 1.0;
            sims.extend(row);
        }
        Self {
            ratings,
            options,
            sims,
            rows,
        }
    }

    /// The predicted rating of `item` by `user`.
    pub fn predict(&self, user: u32, item: u32) -> Prediction {
        let (x, y) = match self.options.based {
            Based::User => (user, item),
            Based::Item => (item, user),
        };
        let sims = (x as usize) < self.rows;
        let row = if sims {
            &self.sims[x as usize * self.rows..(x as usize + 1) * self.rows]
        } else {
            &[][..]
        };
        estimate(self.ratings, self.options, row, y)
    }
}

/// The matrix seen from the rows the similarities are between: (rows, their columns' raters,
/// row count).
fn orient(ratings: &Ratings, based: Based) -> (&Csr, &Csr, usize) {
    match based {
        Based::User => (&ratings.by_user, &ratings.by_item, ratings.users()),
        Based::Item => (&ratings.by_item, &ratings.by_user, ratings.items()),
    }
}

/// `KNNBasic.estimate` for the row whose similarities are `sims` (empty: unknown) and
/// column `y`: the k most similar rows that rated `y`, stable in rating order on ties.
pub fn estimate(ratings: &Ratings, options: KnnOptions, sims: &[f64], y: u32) -> Prediction {
    let (_, columns, _) = orient(ratings, options.based);
    let mut neighbours: Vec<(f64, f32)> = columns
        .row(y)
        .iter()
        .filter_map(|&(x2, r)| sims.get(x2 as usize).map(|&s| (s, r)))
        .collect();
    // A stable sort keeps the rating order among equal similarities, as Surprise does.
    neighbours.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut sum_sim, mut sum_ratings, mut used) = (0.0, 0.0, 0);
    for &(sim, r) in neighbours.iter().take(options.k) {
        if sim > 0.0 {
            sum_sim += sim;
            sum_ratings += sim * f64::from(r);
            used += 1;
        }
    }
    if used < options.min_k.max(1) || sum_sim <= 0.0 {
        return Prediction {
            value: ratings.global_mean,
            neighbours: 0,
            impossible: true,
        };
    }
    Prediction {
        value: (sum_ratings / sum_sim).clamp(1.0, 5.0),
        neighbours: used,
        impossible: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rating;
    use super::*;

    fn r(user: u32, item: u32, value: f32) -> Rating {
        Rating { user, item, value }
    }

    /// Three users with ratings (a fourth without), three rated movies (a fourth unrated).
    fn fixture() -> Ratings {
        Ratings::new(
            4,
            4,
            &[
                r(0, 0, 5.0),
                r(0, 1, 3.0),
                r(1, 0, 4.0),
                r(1, 1, 3.0),
                r(1, 2, 2.0),
                r(2, 0, 1.0),
                r(2, 2, 5.0),
            ],
        )
        .unwrap()
    }

    #[test]
    fn cosine_and_msd_are_over_common_ratings() {
        let m = fixture();
        let cos = similarities(m.by_user.row(0), &m.by_item, 4, Similarity::Cosine, 1);
        // users 0 and 1 share movies 0, 1: (20 + 9) / √(34 · 25)
        assert!((cos[1] - 29.0 / (34.0f64 * 25.0).sqrt()).abs() < 1e-12);
        // users 0 and 2 share only movie 0: cosine of one pair is exactly 1
        assert_eq!(cos[2], 1.0);
        assert_eq!(cos[3], 0.0);
        let msd = similarities(m.by_user.row(0), &m.by_item, 4, Similarity::Msd, 1);
        // squared differences 1 and 0 over 2 common: 1 / (0.5 + 1)
        assert!((msd[1] - 1.0 / 1.5).abs() < 1e-12);
        assert!((msd[2] - 1.0 / 17.0).abs() < 1e-12);
        let strict = similarities(m.by_user.row(0), &m.by_item, 4, Similarity::Msd, 2);
        assert_eq!(strict[2], 0.0);
        assert!(strict[1] > 0.0);
    }

    #[test]
    fn predicts_weighted_mean_of_k_nearest_and_falls_back() {
        let m = fixture();
        let options = KnnOptions {
            similarity: Similarity::Msd,
            ..KnnOptions::default()
        };
        let knn = KnnBasic::fit(&m, options);
        // user 0, movie 2: raters 1 (msd 2/3, rated 2) and 2 (1/17, rated 5)
        let p = knn.predict(0, 2);
        let want = (2.0 / 3.0 * 2.0 + 5.0 / 17.0) / (2.0 / 3.0 + 1.0 / 17.0);
        assert!((p.value - want).abs() < 1e-12 && p.neighbours == 2);
        // k = 1 keeps the nearest only
        let knn1 = KnnBasic::fit(&m, KnnOptions { k: 1, ..options });
        assert!((knn1.predict(0, 2).value - 2.0).abs() < 1e-12);
        // min_k = 3 cannot be met: the global mean
        let knn3 = KnnBasic::fit(
            &m,
            KnnOptions {
                min_k: 3,
                ..options
            },
        );
        let p = knn3.predict(0, 2);
        assert!(p.impossible && (p.value - 23.0 / 7.0).abs() < 1e-12);
        // nobody rated movie 3, user 3 rated nothing, user 99 does not exist
        assert!(knn.predict(0, 3).impossible);
        assert!(knn.predict(3, 0).impossible);
        assert!(knn.predict(99, 0).impossible);
    }

    #[test]
    fn item_based_is_the_transpose() {
        let m = fixture();
        let options = KnnOptions {
            based: Based::Item,
            similarity: Similarity::Cosine,
            ..KnnOptions::default()
        };
        let knn = KnnBasic::fit(&m, options);
        // user 2, movie 1: user 2 rated movies 0 (1) and 2 (5); sim(1, 0) over users 0, 1 =
        // (15 + 12) / √(18 · 41); sim(1, 2) over user 1 alone = 1.
        let s10 = 27.0 / (18.0f64 * 41.0).sqrt();
        let want = (s10 * 1.0 + 5.0) / (s10 + 1.0);
        assert!((knn.predict(2, 1).value - want).abs() < 1e-12);
    }

    #[test]
    fn ties_keep_rating_order() {
        // users 1 and 2 are both at cosine 1 from user 0; with k = 1 the one who rated movie
        // 1 first (user 2, listed first) is the neighbour.
        let m = Ratings::new(
            3,
            2,
            &[
                r(0, 0, 4.0),
                r(2, 0, 2.0),
                r(1, 0, 3.0),
                r(2, 1, 5.0),
                r(1, 1, 1.0),
            ],
        )
        .unwrap();
        let options = KnnOptions {
            k: 1,
            similarity: Similarity::Cosine,
            ..KnnOptions::default()
        };
        assert_eq!(KnnBasic::fit(&m, options).predict(0, 1).value, 5.0);
    }
}
