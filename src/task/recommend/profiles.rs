//! Example profiles the page offers as a start: a few well-known MovieLens 100K movies
//! each, rated as a fan of one kind of film would. They name movies by title and year as
//! the recs part shows them, and are resolved against the part the page has, so a part
//! built from other data simply offers the profiles it can resolve.

use serde::{Deserialize, Serialize};

use super::Rated;
use crate::recommend::part::PartMovie;

/// A profile as written here: (title, year, stars).
pub struct ExampleProfile {
    pub name: &'static str,
    pub ratings: &'static [(&'static str, i32, f32)],
}

pub const EXAMPLE_PROFILES: &[ExampleProfile] = &[
    ExampleProfile {
        name: "Family animation",
        ratings: &[
            ("Toy Story", 1995, 5.0),
            ("Aladdin", 1992, 5.0),
            ("The Lion King", 1994, 4.0),
            ("Beauty and the Beast", 1991, 4.0),
        ],
    },
    ExampleProfile {
        name: "Space and science fiction",
        ratings: &[
            ("Star Wars", 1977, 5.0),
            ("The Empire Strikes Back", 1980, 5.0),
            ("Alien", 1979, 4.0),
            ("The Terminator", 1984, 4.0),
            ("Blade Runner", 1982, 4.0),
        ],
    },
    ExampleProfile {
        name: "Crime and thrillers",
        ratings: &[
            ("Fargo", 1996, 5.0),
            ("Pulp Fiction", 1994, 5.0),
            ("The Usual Suspects", 1995, 4.0),
            ("Reservoir Dogs", 1992, 4.0),
            ("The Silence of the Lambs", 1991, 4.0),
        ],
    },
    ExampleProfile {
        name: "Romance",
        ratings: &[
            ("Sleepless in Seattle", 1993, 5.0),
            ("When Harry Met Sally...", 1989, 5.0),
            ("Pretty Woman", 1990, 4.0),
            ("Sense and Sensibility", 1995, 4.0),
        ],
    },
];

/// A profile with its movies as numbers of the recs part, as the page receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedProfile {
    pub name: String,
    pub ratings: Vec<Rated>,
}

/// The example profiles whose every movie is in `movies` (matched on title and year).
pub fn example_profiles(movies: &[PartMovie]) -> Vec<ResolvedProfile> {
    EXAMPLE_PROFILES
        .iter()
        .filter_map(|profile| {
            let ratings = profile
                .ratings
                .iter()
                .map(|&(title, year, stars)| {
                    let movie = movies
                        .iter()
                        .position(|m| m.title == title && m.year == Some(year))?;
                    Some(Rated {
                        movie: movie as u32,
                        stars,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(ResolvedProfile {
                name: profile.name.to_string(),
                ratings,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movie(title: &str, year: i32) -> PartMovie {
        PartMovie {
            title: title.into(),
            year: Some(year),
            tmdb: None,
        }
    }

    #[test]
    fn profiles_resolve_by_title_and_year_or_are_left_out() {
        let mut movies: Vec<PartMovie> = EXAMPLE_PROFILES[0]
            .ratings
            .iter()
            .rev()
            .map(|&(t, y, _)| movie(t, y))
            .collect();
        let resolved = example_profiles(&movies);
        assert_eq!(
            resolved.len(),
            1,
            "only the first profile's movies are there"
        );
        assert_eq!(resolved[0].name, EXAMPLE_PROFILES[0].name);
        assert_eq!(
            resolved[0].ratings[0],
            Rated {
                movie: 3,
                stars: 5.0
            }
        );
        // Another year is another movie.
        movies[0].year = Some(1900);
        assert!(example_profiles(&movies).is_empty());
        for profile in EXAMPLE_PROFILES {
            assert!(profile.ratings.iter().all(|r| (1.0..=5.0).contains(&r.2)));
        }
    }
}
