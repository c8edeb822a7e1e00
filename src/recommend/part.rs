//! What the page gets from MovieLens: the bundle's `recs` part. GroupLens's terms forbid
//! redistributing the ratings, so this holds only what is derived from them and cannot be
//! turned back into anyone's ratings: each movie's nearest movies with their cosine
//! similarity, each movie's number of ratings, and the movies' titles (with the TMDB id of
//! the ones that joined, for overviews and taglines). Everything the page's recommender
//! needs ([`ItemNeighbours::recommend`]) and nothing more.

use serde::{Deserialize, Serialize};

use super::join::{display_title, Join};
use super::rank::{ItemNeighbours, Recommendation, Weighting, PAGE_WEIGHTING};
use super::{Dataset, Ratings, RecommendError, Result};
use crate::catalogue::Movie;

pub const FORMAT: &str = "marquee-recs";
pub const VERSION: u32 = 1;

/// A movie as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartMovie {
    /// "The Usual Suspects" (the article in front).
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// The TMDB catalogue's id, when the title joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmdb: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecsPart {
    pub format: String,
    pub version: u32,
    /// Where the numbers come from, shown by the page.
    pub source: String,
    pub movies: Vec<PartMovie>,
    pub neighbours: ItemNeighbours,
    pub weighting: Weighting,
}

/// The GroupLens citation the page shows with the recommendations.
pub const CITATION: &str =
    "MovieLens 100K (GroupLens): F. Maxwell Harper and Joseph A. Konstan. 2015. \
The MovieLens Datasets: History and Context. ACM TiiS 5, 4, Article 19.";

impl RecsPart {
    /// The part for `dataset`'s ratings, `k` neighbours per movie, titles joined to `tmdb`.
    pub fn build(dataset: &Dataset, join: &Join, tmdb: &[Movie], k: usize) -> Result<Self> {
        let ratings = Ratings::new(dataset.users.len(), dataset.movies.len(), &dataset.ratings)?;
        let movies = dataset
            .movies
            .iter()
            .enumerate()
            .map(|(i, m)| PartMovie {
                title: display_title(&m.title),
                year: m.year,
                tmdb: join
                    .tmdb
                    .get(i)
                    .copied()
                    .flatten()
                    .and_then(|(c, _)| tmdb.get(c))
                    .map(|t| t.id.clone()),
            })
            .collect();
        Ok(Self {
            format: FORMAT.into(),
            version: VERSION,
            source: CITATION.into(),
            movies,
            neighbours: ItemNeighbours::build(&ratings, k),
            weighting: PAGE_WEIGHTING,
        })
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| RecommendError::Data(format!("recs part: {e}")))
    }

    /// Reads a part, refusing another format or version and lists that point past the
    /// movies (a corrupted or mismatched file).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let part: RecsPart = serde_json::from_slice(bytes)
            .map_err(|e| RecommendError::Data(format!("recs part: {e}")))?;
        if part.format != FORMAT || part.version != VERSION {
            return Err(RecommendError::Data(format!(
                "recs part is {} version {}; this build reads {FORMAT} version {VERSION}",
                part.format, part.version
            )));
        }
        let n = part.movies.len();
        let lists = &part.neighbours.lists;
        if lists.len() != n
            || part.neighbours.popularity.len() != n
            || lists
                .iter()
                .flatten()
                .any(|&(j, s)| j as usize >= n || !s.is_finite())
        {
            return Err(RecommendError::Data(
                "recs part: neighbour lists do not match its movies".into(),
            ));
        }
        Ok(part)
    }

    /// The page's top `n` for `profile`, as the evaluation measured it.
    pub fn recommend(&self, profile: &[(u32, f32)], n: usize) -> Result<Vec<Recommendation>> {
        self.neighbours.recommend(profile, self.weighting, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::join::join;

    const ITEMS: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\n\
        1\tToy Story\t1995\n2\tUsual Suspects, The\t1995\n3\tFargo\t1996\n";
    const INTER: &str = "user_id:token\titem_id:token\trating:float\n\
        7\t1\t5\n7\t2\t4\n8\t1\t3\n8\t3\t2\n9\t2\t1\n9\t3\t5\n";

    #[test]
    fn part_round_trips_and_holds_no_ratings() {
        let d = Dataset::parse(ITEMS, INTER).unwrap();
        let tmdb = [Movie {
            id: "629".into(),
            title: "The Usual Suspects".into(),
            year: Some(1995),
            tagline: None,
            overview: String::new(),
            genres: vec![],
        }];
        let part = RecsPart::build(&d, &join(&d.movies, &tmdb), &tmdb, 10).unwrap();
        assert_eq!(part.movies[1].title, "The Usual Suspects");
        assert_eq!(part.movies[1].tmdb.as_deref(), Some("629"));
        assert_eq!(part.movies[0].tmdb, None);
        let json = String::from_utf8(part.to_json().unwrap()).unwrap();
        // no user id and no rating value travels: only similarities and counts
        assert!(!json.contains("\"7\"") && !json.contains("user"), "{json}");
        let back = RecsPart::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, part);
        let recs = back.recommend(&[(0, 5.0)], 2).unwrap();
        assert_eq!(recs[0].because[0].0, 0);
        let ratings = Ratings::new(3, 3, &d.ratings).unwrap();
        let direct = ItemNeighbours::build(&ratings, 10).recommend(&[(0, 5.0)], PAGE_WEIGHTING, 2);
        assert_eq!(Ok(recs), direct);
    }

    #[test]
    fn refuses_other_versions_and_broken_lists() {
        let d = Dataset::parse(ITEMS, INTER).unwrap();
        let mut part = RecsPart::build(&d, &Join::default(), &[], 10).unwrap();
        part.version = 99;
        assert!(RecsPart::from_json(&part.to_json().unwrap())
            .unwrap_err()
            .to_string()
            .contains("version 99"));
        part.version = VERSION;
        part.neighbours.lists[0].push((42, 0.5));
        assert!(RecsPart::from_json(&part.to_json().unwrap()).is_err());
        assert!(RecsPart::from_json(b"{").is_err());
    }
}
