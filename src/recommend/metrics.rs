//! Accuracy of predicted ratings (RMSE, MAE) and quality of top-N lists (HR@N, NDCG@N,
//! P@N), each averaged as the references average them: rating errors over test ratings,
//! ranking metrics over test users.

use serde::Serialize;

/// RMSE and MAE of (predicted, actual) pairs; `None` for no pairs.
pub fn rating_errors(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (mut sq, mut abs, mut n) = (0.0, 0.0, 0usize);
    for (predicted, actual) in pairs {
        let e = predicted - actual;
        sq += e * e;
        abs += e.abs();
        n += 1;
    }
    (n > 0).then(|| ((sq / n as f64).sqrt(), abs / n as f64))
}

/// Hit rate, NDCG and precision at N, summed over users until [`RankingMetrics::mean`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RankingMetrics {
    pub users: usize,
    pub hit_rate: f64,
    pub ndcg: f64,
    pub precision: f64,
}

impl RankingMetrics {
    /// Adds one user's list: `list` the top N recommended, `relevant(item)` whether the
    /// user's held-out ratings hold it, `relevant_count` how many they hold. NDCG uses
    /// binary gains, 1 / log2(rank + 1), over the ideal list of min(N, relevant) hits.
    pub fn add(
        &mut self,
        list: &[u32],
        n: usize,
        relevant_count: usize,
        relevant: impl Fn(u32) -> bool,
    ) {
        if relevant_count == 0 || n == 0 {
            return;
        }
        let mut hits = 0usize;
        let mut dcg = 0.0;
        for (rank, &item) in list.iter().take(n).enumerate() {
            if relevant(item) {
                hits += 1;
                dcg += 1.0 / (rank as f64 + 2.0).log2();
            }
        }
        let ideal: f64 = (0..relevant_count.min(n))
            .map(|rank| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        self.users += 1;
        self.hit_rate += f64::from(u8::from(hits > 0));
        self.ndcg += dcg / ideal;
        self.precision += hits as f64 / n as f64;
    }

    /// The per-user means.
    pub fn mean(&self) -> RankingMetrics {
        let n = self.users.max(1) as f64;
        RankingMetrics {
            users: self.users,
            hit_rate: self.hit_rate / n,
            ndcg: self.ndcg / n,
            precision: self.precision / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_errors_by_hand() {
        let (rmse, mae) = rating_errors([(3.0, 4.0), (5.0, 2.0)]).unwrap();
        assert!((rmse - 5.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(mae, 2.0);
        assert_eq!(rating_errors([]), None);
    }

    #[test]
    fn ranking_metrics_by_hand() {
        let mut m = RankingMetrics::default();
        // relevant {7, 9}; list hits 7 at rank 2 (of 3)
        m.add(&[1, 7, 2], 3, 2, |i| i == 7 || i == 9);
        // no hit
        m.add(&[1, 2, 3], 3, 1, |i| i == 5);
        // a user with nothing held out does not count
        m.add(&[1, 2, 3], 3, 0, |_| false);
        let mean = m.mean();
        assert_eq!(mean.users, 2);
        assert_eq!(mean.hit_rate, 0.5);
        assert!((mean.precision - (1.0 / 3.0) / 2.0).abs() < 1e-12);
        let ndcg = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((mean.ndcg - ndcg / 2.0).abs() < 1e-12);
    }
}
