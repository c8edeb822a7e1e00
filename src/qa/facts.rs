//! What the Ask tab knows about a movie: TMDB 5000's movies file joined with its credits file
//! on `movies.id = credits.movie_id` (joining on the title duplicates rows), reduced to the
//! facts the documents and the questions use. The credits file is 40 MB of JSON, almost all
//! of it crew members no question asks about; this keeps the director(s), writers, composer
//! and the top-billed cast with their characters.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Cast members kept per movie, in billing order: questions ask about the leads, and each
/// one adds a sentence to every document.
pub const TOP_CAST: usize = 6;
/// Keywords kept per movie (TMDB lists up to a few dozen, the first are the most specific).
pub const TOP_KEYWORDS: usize = 8;

/// One cast member and the character they play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub actor: String,
    pub character: String,
}

/// The facts of one movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieFacts {
    /// The catalogue id (TMDB id), as the movies part spells it.
    pub id: String,
    pub title: String,
    pub year: Option<i32>,
    /// Minutes; `None` when the file says 0 or nothing.
    pub runtime: Option<u32>,
    pub genres: Vec<String>,
    pub keywords: Vec<String>,
    pub overview: String,
    pub directors: Vec<String>,
    pub writers: Vec<String>,
    pub composers: Vec<String>,
    pub cast: Vec<Role>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct CastEntry {
    name: String,
    #[serde(default)]
    character: String,
    #[serde(default)]
    order: i64,
}

#[derive(Deserialize)]
struct CrewEntry {
    name: String,
    #[serde(default)]
    job: String,
}

/// The credits of one movie, reduced.
#[derive(Debug, Clone, Default, PartialEq)]
struct Credits {
    directors: Vec<String>,
    writers: Vec<String>,
    composers: Vec<String>,
    cast: Vec<Role>,
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    let name = name.trim();
    if !name.is_empty() && !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn reduce_credits(cast_json: &str, crew_json: &str) -> std::result::Result<Credits, String> {
    let mut cast: Vec<CastEntry> =
        serde_json::from_str(cast_json).map_err(|e| format!("cast: {e}"))?;
    let crew: Vec<CrewEntry> = serde_json::from_str(crew_json).map_err(|e| format!("crew: {e}"))?;
    cast.sort_by_key(|c| c.order);
    let mut credits = Credits::default();
    for member in &crew {
        match member.job.as_str() {
            "Director" => push_unique(&mut credits.directors, &member.name),
            "Screenplay" | "Writer" => push_unique(&mut credits.writers, &member.name),
            "Original Music Composer" => push_unique(&mut credits.composers, &member.name),
            _ => {}
        }
    }
    // Some movies credit their composer only as "Music".
    if credits.composers.is_empty() {
        for member in crew.iter().filter(|m| m.job == "Music") {
            push_unique(&mut credits.composers, &member.name);
        }
    }
    for entry in cast {
        if credits.cast.len() == TOP_CAST {
            break;
        }
        let actor = entry.name.trim();
        if actor.is_empty() || credits.cast.iter().any(|r| r.actor == actor) {
            continue;
        }
        credits.cast.push(Role {
            actor: actor.to_string(),
            character: entry.character.trim().to_string(),
        });
    }
    Ok(credits)
}

fn names(json: &str, limit: usize) -> Vec<String> {
    serde_json::from_str::<Vec<Named>>(json)
        .map(|list| {
            let mut out = Vec::new();
            for n in list {
                push_unique(&mut out, &n.name);
            }
            out.truncate(limit);
            out
        })
        .unwrap_or_default()
}

fn header_index(header: &csv::StringRecord, name: &str, file: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| Error::MissingColumn {
            column: format!("{name} ({file})"),
            available: header.iter().collect::<Vec<_>>().join(", "),
        })
}

/// What joining the two files did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FactsReport {
    pub movies: usize,
    pub with_credits: usize,
    /// Credits rows that could not be read (bad JSON, bad CSV): skipped, counted.
    pub bad_credits: usize,
}

/// Reads TMDB's movies and credits files and joins them by id. Movies without credits keep
/// their movies-file facts; a credits row that cannot be read is counted and skipped.
pub fn read_tmdb(movies: impl Read, credits: impl Read) -> Result<(Vec<MovieFacts>, FactsReport)> {
    let mut report = FactsReport::default();
    let mut by_id: HashMap<String, Credits> = HashMap::new();
    let mut reader = csv::Reader::from_reader(credits);
    let header = reader
        .headers()
        .map_err(|e| Error::Catalogue(format!("credits file: {e}")))?
        .clone();
    let (id, cast, crew) = (
        header_index(&header, "movie_id", "credits")?,
        header_index(&header, "cast", "credits")?,
        header_index(&header, "crew", "credits")?,
    );
    for record in reader.records() {
        let Ok(record) = record else {
            report.bad_credits += 1;
            continue;
        };
        let field = |i: usize| record.get(i).unwrap_or_default();
        match reduce_credits(field(cast), field(crew)) {
            Ok(credits) => {
                by_id.insert(field(id).trim().to_string(), credits);
            }
            Err(_) => report.bad_credits += 1,
        }
    }

    let mut reader = csv::Reader::from_reader(movies);
    let header = reader
        .headers()
        .map_err(|e| Error::Catalogue(format!("movies file: {e}")))?
        .clone();
    let col = |name: &str| header_index(&header, name, "movies");
    let (id, title, date, runtime, genres, keywords, overview) = (
        col("id")?,
        col("title")?,
        col("release_date")?,
        col("runtime")?,
        col("genres")?,
        col("keywords")?,
        col("overview")?,
    );
    let mut out = Vec::new();
    for record in reader.records().flatten() {
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        if field(id).is_empty() || field(title).is_empty() {
            continue;
        }
        let credits = by_id.remove(field(id));
        report.with_credits += usize::from(credits.is_some());
        let credits = credits.unwrap_or_default();
        out.push(MovieFacts {
            id: field(id).to_string(),
            title: field(title).to_string(),
            year: field(date).get(..4).and_then(|y| y.parse().ok()),
            runtime: field(runtime)
                .parse::<f64>()
                .ok()
                .filter(|m| *m >= 1.0 && *m < 10_000.0)
                .map(|m| m.round() as u32),
            genres: names(field(genres), usize::MAX),
            keywords: names(field(keywords), TOP_KEYWORDS),
            overview: field(overview).to_string(),
            directors: credits.directors,
            writers: credits.writers,
            composers: credits.composers,
            cast: credits.cast,
        });
    }
    report.movies = out.len();
    Ok((out, report))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MOVIES: &str = "id,title,release_date,runtime,genres,keywords,overview\n\
        348,Alien,1979-05-25,117.0,\"[{\"\"id\"\": 27, \"\"name\"\": \"\"Horror\"\"}, {\"\"id\"\": 878, \"\"name\"\": \"\"Science Fiction\"\"}]\",\"[{\"\"id\"\": 1, \"\"name\"\": \"\"android\"\"}]\",\"During its return to the earth, commercial spaceship Nostromo intercepts a distress signal.\"\n\
        9,Nobody,,0,[],[],\n";

    pub(crate) const CREDITS: &str = "movie_id,title,cast,crew\n\
        348,Alien,\"[{\"\"character\"\": \"\"Ellen Ripley\"\", \"\"name\"\": \"\"Sigourney Weaver\"\", \"\"order\"\": 1}, {\"\"character\"\": \"\"Dallas\"\", \"\"name\"\": \"\"Tom Skerritt\"\", \"\"order\"\": 0}]\",\"[{\"\"job\"\": \"\"Director\"\", \"\"name\"\": \"\"Ridley Scott\"\"}, {\"\"job\"\": \"\"Screenplay\"\", \"\"name\"\": \"\"Dan O'Bannon\"\"}, {\"\"job\"\": \"\"Producer\"\", \"\"name\"\": \"\"Gordon Carroll\"\"}, {\"\"job\"\": \"\"Music\"\", \"\"name\"\": \"\"Jerry Goldsmith\"\"}]\"\n\
        77,Broken,not json,[]\n";

    pub(crate) fn alien() -> MovieFacts {
        let (facts, _) = read_tmdb(MOVIES.as_bytes(), CREDITS.as_bytes()).expect("reads");
        facts[0].clone()
    }

    #[test]
    fn joins_by_id_and_keeps_only_what_documents_need() {
        let (facts, report) = read_tmdb(MOVIES.as_bytes(), CREDITS.as_bytes()).expect("reads");
        assert_eq!(
            report,
            FactsReport {
                movies: 2,
                with_credits: 1,
                bad_credits: 1
            }
        );
        let alien = &facts[0];
        assert_eq!((alien.year, alien.runtime), (Some(1979), Some(117)));
        assert_eq!(alien.genres, ["Horror", "Science Fiction"]);
        assert_eq!(alien.keywords, ["android"]);
        assert_eq!(alien.directors, ["Ridley Scott"]);
        assert_eq!(alien.writers, ["Dan O'Bannon"]);
        // No "Original Music Composer": the "Music" credit stands in; producers are dropped.
        assert_eq!(alien.composers, ["Jerry Goldsmith"]);
        // Billing order, not file order.
        assert_eq!(alien.cast[0].actor, "Tom Skerritt");
        assert_eq!(alien.cast[1].character, "Ellen Ripley");
        let nobody = &facts[1];
        assert_eq!((nobody.year, nobody.runtime), (None, None));
        assert!(nobody.directors.is_empty() && nobody.cast.is_empty());
    }

    #[test]
    fn a_missing_column_names_the_file() {
        let err = read_tmdb(MOVIES.as_bytes(), "movie_id,cast\n".as_bytes()).expect_err("no crew");
        assert!(err.to_string().contains("crew (credits)"), "{err}");
    }
}
