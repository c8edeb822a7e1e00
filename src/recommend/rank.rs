//! Top-N lists over every movie a user has not rated, three ways:
//!
//! - [`most_popular`]: by number of ratings, the baseline every list must beat.
//! - [`ItemNeighbours`]: item-based KNN. Each movie keeps its `k` nearest movies by cosine
//!   over who rated them (the same as `implicit`'s `CosineRecommender`); a profile's score
//!   for a movie is Σ weight(rating) · sim over the rated movies whose lists hold it. The
//!   lists are derived data (no user's ratings can be read back from them), so this is what
//!   the page ships and runs, and each recommendation names the rated movies it came from.
//! - [`user_knn`]: user-based KNN. The `k` users most like the profile (cosine over which
//!   movies they rated) vote for their movies by similarity. It needs every user's ratings,
//!   so it stays in the CLI and the evaluation.

use serde::{Deserialize, Serialize};

use super::data::Ratings;
use super::{RecommendError, Result};

/// One recommended movie, its score and what it came from: rated movies (item-KNN) or
/// similar users (user-KNN) with their share of the score, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub item: u32,
    pub score: f64,
    pub because: Vec<(u32, f64)>,
}

/// The page's item-KNN: neighbours kept per movie (what the bundle ships) and how its
/// ratings weigh; chosen by `index-builder recommend-eval` (docs/evaluation.md).
pub const PAGE_NEIGHBOURS: usize = 10;
pub const PAGE_WEIGHTING: Weighting = Weighting::Binary;

/// How many sources a recommendation names.
pub const BECAUSE_MAX: usize = 3;

/// How a rating weighs in a profile's scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Every rated movie counts 1: the rating says the movie was seen.
    Binary,
    /// rating − pivot: above the pivot pulls neighbours up, below pushes them down.
    Centered(f32),
    /// Seen and liked (3★ and up) counts 1, as `Binary`; 2★ counts −½ and 1★ −1, so a
    /// visitor's dislikes push their neighbours down instead of up.
    Liked,
}

impl Weighting {
    fn weight(self, rating: f32) -> f64 {
        match self {
            Weighting::Binary => 1.0,
            Weighting::Centered(pivot) => f64::from(rating - pivot),
            Weighting::Liked if rating >= 3.0 => 1.0,
            Weighting::Liked => f64::from(rating - 3.0) / 2.0,
        }
    }
}

/// Movie numbers by number of ratings (most first; ties by number), without `seen`.
pub fn most_popular(popularity: &[u32], seen: &[u32], n: usize) -> Vec<Recommendation> {
    let mut order: Vec<u32> = (0..popularity.len() as u32)
        .filter(|i| !seen.contains(i))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(popularity[i as usize]));
    order
        .into_iter()
        .take(n)
        .map(|item| Recommendation {
            item,
            score: f64::from(popularity[item as usize]),
            because: Vec::new(),
        })
        .collect()
}

/// Ratings per movie.
pub fn popularity(ratings: &Ratings) -> Vec<u32> {
    (0..ratings.items() as u32)
        .map(|i| ratings.by_item.row(i).len() as u32)
        .collect()
}

/// Each movie's nearest movies, and every movie's popularity (for profiles the lists
/// cannot fill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemNeighbours {
    /// `lists[i]`: (movie, cosine), most similar first, `i` itself left out.
    pub lists: Vec<Vec<(u32, f32)>>,
    pub popularity: Vec<u32>,
}

impl ItemNeighbours {
    /// The `k` nearest of every movie by cosine over binary "who rated it" vectors,
    /// |U_i ∩ U_j| / √(|U_i| · |U_j|): one pass over each user's pairs of movies.
    pub fn build(ratings: &Ratings, k: usize) -> Self {
        let items = ratings.items();
        let popularity = popularity(ratings);
        let mut common = vec![0u32; items];
        let mut touched = Vec::new();
        let lists = (0..items as u32)
            .map(|i| {
                for &(user, _) in ratings.by_item.row(i) {
                    for &(j, _) in ratings.by_user.row(user) {
                        if common[j as usize] == 0 {
                            touched.push(j);
                        }
                        common[j as usize] += 1;
                    }
                }
                let mut list: Vec<(u32, f32)> = touched
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| {
                        let n =
                            f64::from(popularity[i as usize]) * f64::from(popularity[j as usize]);
                        (j, (f64::from(common[j as usize]) / n.sqrt()) as f32)
                    })
                    .collect();
                for &j in &touched {
                    common[j as usize] = 0;
                }
                touched.clear();
                list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(k);
                list
            })
            .collect();
        Self { lists, popularity }
    }

    pub fn items(&self) -> usize {
        self.lists.len()
    }

    /// The top `n` unrated movies for `profile` ((movie, rating) pairs), each with the rated
    /// movies that contributed most. When the neighbour lists give fewer than `n` movies a
    /// positive score, the most popular unrated ones fill the list (with no sources).
    pub fn recommend(
        &self,
        profile: &[(u32, f32)],
        weighting: Weighting,
        n: usize,
    ) -> Result<Vec<Recommendation>> {
        if profile.is_empty() {
            return Err(RecommendError::NoRatings);
        }
        let mut scores = vec![0.0f64; self.items()];
        let mut sources: Vec<Vec<(u32, f64)>> = vec![Vec::new(); self.items()];
        for &(rated, rating) in profile {
            let list = self
                .lists
                .get(rated as usize)
                .ok_or(RecommendError::UnknownMovie {
                    index: rated as usize,
                    count: self.items(),
                })?;
            super::check_rating(&format!("movie {rated}"), rating)?;
            let weight = weighting.weight(rating);
            for &(j, sim) in list {
                let share = weight * f64::from(sim);
                scores[j as usize] += share;
                sources[j as usize].push((rated, share));
            }
        }
        let seen: Vec<u32> = profile.iter().map(|p| p.0).collect();
        let order = top_unseen(&scores, &seen, n);
        let mut out: Vec<Recommendation> = order
            .into_iter()
            .map(|item| {
                let mut because = std::mem::take(&mut sources[item as usize]);
                because.retain(|s| s.1 > 0.0);
                because.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                because.truncate(BECAUSE_MAX);
                Recommendation {
                    item,
                    score: scores[item as usize],
                    because,
                }
            })
            .collect();
        if out.len() < n {
            let mut taken = seen;
            taken.extend(out.iter().map(|r| r.item));
            out.extend(most_popular(&self.popularity, &taken, n - out.len()));
        }
        Ok(out)
    }
}

/// User-based top-N: the `k` users nearest to `profile` by cosine over which movies they
/// rated (|common| / √(|mine| · |theirs|)), `exclude` (the profile's own user) left out;
/// each unrated movie scores Σ sim over the neighbours who rated it. Sources are the
/// neighbours (user numbers) who rated it, nearest first.
pub fn user_knn(
    ratings: &Ratings,
    profile: &[(u32, f32)],
    exclude: Option<u32>,
    k: usize,
    n: usize,
) -> Result<Vec<Recommendation>> {
    if profile.is_empty() {
        return Err(RecommendError::NoRatings);
    }
    let mut common = vec![0u32; ratings.users()];
    for &(item, rating) in profile {
        if item as usize >= ratings.items() {
            return Err(RecommendError::UnknownMovie {
                index: item as usize,
                count: ratings.items(),
            });
        }
        super::check_rating(&format!("movie {item}"), rating)?;
        for &(user, _) in ratings.by_item.row(item) {
            common[user as usize] += 1;
        }
    }
    let mine = profile.len() as f64;
    let mut neighbours: Vec<(u32, f64)> = (0..ratings.users() as u32)
        .filter(|&v| common[v as usize] > 0 && Some(v) != exclude)
        .map(|v| {
            let theirs = ratings.by_user.row(v).len() as f64;
            (v, f64::from(common[v as usize]) / (mine * theirs).sqrt())
        })
        .collect();
    neighbours.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    neighbours.truncate(k);
    let mut scores = vec![0.0f64; ratings.items()];
    let mut sources: Vec<Vec<(u32, f64)>> = vec![Vec::new(); ratings.items()];
    for &(v, sim) in &neighbours {
        for &(item, _) in ratings.by_user.row(v) {
            scores[item as usize] += sim;
            if sources[item as usize].len() < BECAUSE_MAX {
                sources[item as usize].push((v, sim));
            }
        }
    }
    let seen: Vec<u32> = profile.iter().map(|p| p.0).collect();
    let order = top_unseen(&scores, &seen, n);
    let mut out: Vec<Recommendation> = order
        .into_iter()
        .map(|item| Recommendation {
            item,
            score: scores[item as usize],
            because: std::mem::take(&mut sources[item as usize]),
        })
        .collect();
    if out.len() < n {
        let mut taken = seen;
        taken.extend(out.iter().map(|r| r.item));
        out.extend(most_popular(&popularity(ratings), &taken, n - out.len()));
    }
    Ok(out)
}

/// The `n` items with the highest positive score that are not in `seen`, best first; equal
/// scores go to the lower item number, so a list is the same on every run and platform.
fn top_unseen(scores: &[f64], seen: &[u32], n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32)
        .filter(|&j| scores[j as usize] > 0.0 && !seen.contains(&j))
        .collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    order.truncate(n);
    order
}

#[cfg(test)]
mod tests {
    use super::super::Rating;
    use super::*;

    fn r(user: u32, item: u32) -> Rating {
        Rating {
            user,
            item,
            value: 4.0,
        }
    }

    /// Movies 0 and 1 are always seen together; 2 with 0 once; 3 by one user alone.
    fn fixture() -> Ratings {
        Ratings::new(
            4,
            5,
            &[
                r(0, 0),
                r(0, 1),
                r(1, 0),
                r(1, 1),
                r(1, 2),
                r(2, 2),
                r(3, 3),
                r(2, 0),
                r(2, 1),
            ],
        )
        .unwrap()
    }

    #[test]
    fn popularity_ranks_unseen_movies() {
        let pop = popularity(&fixture());
        assert_eq!(pop, [3, 3, 2, 1, 0]);
        let items: Vec<u32> = most_popular(&pop, &[0], 3).iter().map(|r| r.item).collect();
        assert_eq!(items, [1, 2, 3]);
    }

    #[test]
    fn item_neighbours_are_cosine_of_raters() {
        let nb = ItemNeighbours::build(&fixture(), 2);
        // 0 and 1: raters {0, 1, 2} both: cosine 1; 0 and 2: common {1, 2}: 2 / √(3 · 2)
        assert_eq!(nb.lists[0][0], (1, 1.0));
        assert!((nb.lists[0][1].1 - (2.0 / 6.0f32.sqrt())).abs() < 1e-6);
        assert_eq!(nb.lists[0].len(), 2);
        assert!(nb.lists[4].is_empty());
        assert!(nb.lists[3].is_empty());
    }

    #[test]
    fn profile_scores_name_their_sources_and_fill_with_popular() {
        let nb = ItemNeighbours::build(&fixture(), 3);
        let recs = nb.recommend(&[(0, 5.0)], Weighting::Binary, 3).unwrap();
        assert_eq!(recs[0].item, 1);
        assert_eq!(recs[0].because, vec![(0, 1.0)]);
        assert_eq!(recs[1].item, 2);
        // movie 3 is no neighbour of 0: it comes from popularity, with no sources
        assert_eq!((recs[2].item, recs[2].because.len()), (3, 0));
        // a 1-star rating centred at 3 pushes its neighbours down instead
        let recs = nb
            .recommend(&[(0, 1.0), (3, 5.0)], Weighting::Centered(3.0), 2)
            .unwrap();
        assert!(recs.iter().all(|r| r.because.iter().all(|b| b.0 != 0)));
        assert_eq!(
            nb.recommend(&[], Weighting::Binary, 3),
            Err(RecommendError::NoRatings)
        );
        assert!(matches!(
            nb.recommend(&[(9, 3.0)], Weighting::Binary, 3),
            Err(RecommendError::UnknownMovie { index: 9, .. })
        ));
        assert!(matches!(
            nb.recommend(&[(0, 6.0)], Weighting::Binary, 3),
            Err(RecommendError::RatingOutOfRange { .. })
        ));
    }

    #[test]
    fn user_knn_votes_by_similarity() {
        let m = fixture();
        // user 0 rated {0, 1}; user 1 {0, 1, 2}: 2/√6; user 2 {2, 0, 1}: 2/√6; user 3 none
        let recs = user_knn(&m, &[(0, 4.0), (1, 4.0)], Some(0), 2, 2).unwrap();
        assert_eq!(recs[0].item, 2);
        assert!((recs[0].score - 4.0 / 6.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            recs[0].because.iter().map(|b| b.0).collect::<Vec<_>>(),
            [1, 2]
        );
        // then the most popular unseen movie (3), since no neighbour rated it
        assert_eq!(recs[1].item, 3);
        assert_eq!(
            user_knn(&m, &[], None, 2, 2),
            Err(RecommendError::NoRatings)
        );
    }
}
