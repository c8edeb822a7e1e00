//! Titles: MovieLens movies matched to the TMDB catalogue (by normalised title and year),
//! and a visitor's "Toy Story=5" matched to a MovieLens movie.
//!
//! MovieLens writes "Usual Suspects, The" and "City of Lost Children, The (Cité des enfants
//! perdus, La)"; TMDB writes "The Usual Suspects". A title is compared as its keys: the
//! whole title, the part before the parenthesis and the part inside it, each with a
//! trailing article moved to the front, lower-cased, accents and punctuation dropped.

use std::collections::HashMap;

use serde::Serialize;

use super::data::MlMovie;
use super::{RecommendError, Result};
use crate::catalogue::Movie;

const ARTICLES: [&str; 16] = [
    "the", "a", "an", "la", "le", "les", "l'", "il", "das", "der", "die", "el", "los", "las", "lo",
    "i",
];

/// "Usual Suspects, The" → "The Usual Suspects"; anything else unchanged.
pub fn article_first(title: &str) -> String {
    let title = title.trim();
    if let Some((head, tail)) = title.rsplit_once(", ") {
        let article = tail.trim();
        if ARTICLES.contains(&article.to_lowercase().as_str()) {
            let sep = if article.ends_with('\'') { "" } else { " " };
            return format!("{article}{sep}{head}");
        }
    }
    title.to_string()
}

/// The title as a person writes it: the article moved to the front, the parenthesis kept.
pub fn display_title(title: &str) -> String {
    match split_alternative(title) {
        (main, Some(alt)) => format!("{} ({})", article_first(main), article_first(alt)),
        (main, None) => article_first(main),
    }
}

/// ("Seven", Some("Se7en")) from "Seven (Se7en)".
fn split_alternative(title: &str) -> (&str, Option<&str>) {
    let title = title.trim();
    if let (Some(open), true) = (title.find(" ("), title.ends_with(')')) {
        return (&title[..open], Some(&title[open + 2..title.len() - 1]));
    }
    (title, None)
}

/// Lower case, accents folded, "&" as "and", punctuation dropped, single spaces.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars().flat_map(char::to_lowercase) {
        let ch = fold_accent(ch);
        if ch == '&' {
            out.push_str(" and ");
        } else if ch.is_alphanumeric() {
            out.push(ch);
        } else if ch.is_whitespace() || matches!(ch, '-' | '/' | ':') {
            out.push(' ');
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fold_accent(ch: char) -> char {
    match ch {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// The keys a MovieLens title is looked up under, most specific first.
pub fn title_keys(title: &str) -> Vec<String> {
    let (main, alt) = split_alternative(title);
    let mut keys = vec![
        normalise(&display_title(title)),
        normalise(&article_first(main)),
    ];
    if let Some(alt) = alt {
        keys.push(normalise(&article_first(alt)));
    }
    keys.retain(|k| !k.is_empty());
    keys.dedup();
    keys
}

/// How a MovieLens movie found its TMDB movie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    /// Same title, same year.
    Exact,
    /// Same title, release years one apart (the two sources date some films differently).
    NearYear,
}

/// The join of every MovieLens movie: `tmdb[i]` is the catalogue position of MovieLens
/// movie `i`'s match, or `None` (it keeps its MovieLens title).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Join {
    pub tmdb: Vec<Option<(usize, JoinKind)>>,
}

impl Join {
    pub fn count(&self, kind: JoinKind) -> usize {
        self.tmdb
            .iter()
            .filter(|m| matches!(m, Some((_, k)) if *k == kind))
            .count()
    }

    pub fn unmatched(&self) -> usize {
        self.tmdb.iter().filter(|m| m.is_none()).count()
    }
}

/// Matches each MovieLens movie to a catalogue movie with one of its keys and a year at
/// most one apart, the closest year winning (then the earlier key, then catalogue order).
/// A movie without a year in either source is not matched: a title alone is too weak.
pub fn join(movies: &[MlMovie], catalogue: &[Movie]) -> Join {
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, m) in catalogue.iter().enumerate() {
        by_key.entry(normalise(&m.title)).or_default().push(i);
    }
    let tmdb = movies
        .iter()
        .map(|ml| {
            let year = ml.year?;
            title_keys(&ml.title)
                .iter()
                .enumerate()
                .flat_map(|(rank, key)| {
                    by_key.get(key).into_iter().flatten().filter_map(move |&c| {
                        let gap = (catalogue[c].year? - year).abs();
                        (gap <= 1).then_some((gap, rank, c))
                    })
                })
                .min()
                .map(|(gap, _, c)| {
                    (
                        c,
                        if gap == 0 {
                            JoinKind::Exact
                        } else {
                            JoinKind::NearYear
                        },
                    )
                })
        })
        .collect();
    Join { tmdb }
}

/// The MovieLens movie a visitor means by `query`: "Toy Story", "toy story (1995)" or a
/// unique part of a title. An exact title wins over partial matches; several exact or
/// (without one) several partial matches are an error listing them.
pub fn find_movie(movies: &[MlMovie], query: &str) -> Result<u32> {
    let (text, year) = match split_alternative(query) {
        (text, Some(y)) if y.len() == 4 && y.parse::<i32>().is_ok() => (text, y.parse().ok()),
        _ => (query, None),
    };
    let wanted = normalise(&article_first(text));
    if wanted.is_empty() {
        return Err(RecommendError::NoMatch(query.to_string()));
    }
    let in_year = |m: &MlMovie| year.is_none() || m.year == year;
    let exact: Vec<u32> = (0..movies.len() as u32)
        .filter(|&i| {
            in_year(&movies[i as usize]) && title_keys(&movies[i as usize].title).contains(&wanted)
        })
        .collect();
    let found = if exact.is_empty() {
        (0..movies.len() as u32)
            .filter(|&i| {
                in_year(&movies[i as usize])
                    && title_keys(&movies[i as usize].title)
                        .iter()
                        .any(|k| contains_words(k, &wanted))
            })
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [] => Err(RecommendError::NoMatch(query.to_string())),
        [one] => Ok(*one),
        many => {
            let named = |i: u32| {
                let m = &movies[i as usize];
                match m.year {
                    Some(y) => format!("{} ({y})", display_title(&m.title)),
                    None => display_title(&m.title),
                }
            };
            let mut candidates: Vec<String> = many.iter().take(5).map(|&i| named(i)).collect();
            if many.len() > 5 {
                candidates.push("…".into());
            }
            Err(RecommendError::Ambiguous {
                query: query.to_string(),
                count: many.len(),
                candidates: candidates.join("; "),
                example: named(many[0]),
            })
        }
    }
}

/// Whether `needle`'s words appear in `hay` as whole words, in order.
fn contains_words(hay: &str, needle: &str) -> bool {
    format!(" {hay} ").contains(&format!(" {needle} "))
}

/// "Toy Story=5" → ("Toy Story", 5.0), the rating checked to be on the 1–5 scale.
pub fn parse_rating_arg(arg: &str) -> Result<(String, f32)> {
    let (title, value) = arg
        .rsplit_once('=')
        .ok_or_else(|| RecommendError::BadRatingArgument(arg.to_string()))?;
    let title = title.trim();
    if title.is_empty() {
        return Err(RecommendError::BadRatingArgument(arg.to_string()));
    }
    let value: f32 = value
        .trim()
        .parse()
        .map_err(|_| RecommendError::RatingOutOfRange {
            title: title.to_string(),
            value: value.trim().to_string(),
        })?;
    Ok((title.to_string(), super::check_rating(title, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ml(title: &str, year: i32) -> MlMovie {
        MlMovie {
            id: String::new(),
            title: title.into(),
            year: Some(year),
            genres: vec![],
        }
    }

    fn tmdb(title: &str, year: i32) -> Movie {
        Movie {
            id: title.into(),
            title: title.into(),
            year: Some(year),
            tagline: None,
            overview: String::new(),
            genres: vec![],
        }
    }

    #[test]
    fn titles_normalise_with_articles_in_front() {
        assert_eq!(display_title("Usual Suspects, The"), "The Usual Suspects");
        assert_eq!(
            display_title("City of Lost Children, The (Cité des enfants perdus, La)"),
            "The City of Lost Children (La Cité des enfants perdus)"
        );
        assert_eq!(
            article_first("Homme et une femme, Un"),
            "Homme et une femme, Un"
        );
        assert_eq!(
            normalise("Star Wars: Episode IV – A New Hope"),
            "star wars episode iv a new hope"
        );
        assert_eq!(normalise("Cité & Co."), "cite and co");
        assert_eq!(
            title_keys("Seven (Se7en)"),
            ["seven se7en", "seven", "se7en"]
        );
    }

    #[test]
    fn join_by_title_and_year_keeps_the_unmatched() {
        let movies = [
            ml("Usual Suspects, The", 1995),
            ml("Seven (Se7en)", 1995),
            ml("Heat", 1995),
            ml("Heat", 1972),
            ml("Nowhere", 1990),
        ];
        let catalogue = [
            tmdb("Se7en", 1995),
            tmdb("The Usual Suspects", 1995),
            tmdb("Heat", 1996),
        ];
        let j = join(&movies, &catalogue);
        assert_eq!(j.tmdb[0], Some((1, JoinKind::Exact)));
        assert_eq!(j.tmdb[1], Some((0, JoinKind::Exact)));
        assert_eq!(j.tmdb[2], Some((2, JoinKind::NearYear)));
        assert_eq!(j.tmdb[3], None);
        assert_eq!(
            (
                j.count(JoinKind::Exact),
                j.count(JoinKind::NearYear),
                j.unmatched()
            ),
            (2, 1, 2)
        );
    }

    #[test]
    fn finds_a_movie_or_says_why_not() {
        let movies = [
            ml("Toy Story", 1995),
            ml("Heat", 1995),
            ml("Heat and Dust", 1983),
            ml("Star Wars", 1977),
            ml("Star Trek: Generations", 1994),
        ];
        assert_eq!(find_movie(&movies, "toy story").unwrap(), 0);
        assert_eq!(find_movie(&movies, "Heat").unwrap(), 1);
        assert_eq!(find_movie(&movies, "heat and dust (1983)").unwrap(), 2);
        assert_eq!(find_movie(&movies, "Generations").unwrap(), 4);
        assert_eq!(
            find_movie(&movies, "Casablanca"),
            Err(RecommendError::NoMatch("Casablanca".into()))
        );
        let err = find_movie(&movies, "star").unwrap_err().to_string();
        assert!(
            err.contains("matches 2 movies") && err.contains("Star Wars (1977)"),
            "{err}"
        );
        assert!(find_movie(&movies, "  ").is_err());
    }

    #[test]
    fn rating_arguments() {
        assert_eq!(
            parse_rating_arg("Toy Story=5").unwrap(),
            ("Toy Story".into(), 5.0)
        );
        assert_eq!(parse_rating_arg("2 + 2 = 4=3").unwrap().0, "2 + 2 = 4");
        assert!(matches!(
            parse_rating_arg("Toy Story"),
            Err(RecommendError::BadRatingArgument(_))
        ));
        assert!(matches!(
            parse_rating_arg("Toy Story=6"),
            Err(RecommendError::RatingOutOfRange { .. })
        ));
        assert!(matches!(
            parse_rating_arg("Toy Story=five"),
            Err(RecommendError::RatingOutOfRange { .. })
        ));
        assert!(matches!(
            parse_rating_arg("=4"),
            Err(RecommendError::BadRatingArgument(_))
        ));
    }
}
