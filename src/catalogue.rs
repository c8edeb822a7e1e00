//! Reading a movie catalogue from CSV. TMDB 5000's `movies.csv` works with the defaults; any
//! other CSV works with a [`ColumnMapping`]. A row that cannot be used is skipped and counted
//! by reason, never fatal: one bad line must not cost the other thousands.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One movie as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagline: Option<String>,
    #[serde(default)]
    pub overview: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
}

/// Which CSV columns hold what. Optional columns may be absent from the file's header only
/// when they are `None` here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMapping {
    pub id: String,
    pub title: String,
    /// Joined into the passage that is embedded (empty ones left out). A JSON list (TMDB's
    /// `keywords`) is embedded as its names, comma-separated.
    pub text: Vec<String>,
    /// The description shown to visitors; when mapped, a row without one is skipped.
    pub overview: Option<String>,
    pub tagline: Option<String>,
    /// A date (`2009-12-10`) or a year; the first four digits are taken as the year.
    pub date: Option<String>,
    /// A JSON list (`[{"name": "Action"}]` or `["Action"]`), or names separated by `|` or `,`.
    pub genres: Option<String>,
}

impl Default for ColumnMapping {
    /// TMDB 5000's `movies.csv`.
    fn default() -> Self {
        Self {
            id: "id".into(),
            title: "title".into(),
            text: vec!["title".into(), "overview".into()],
            overview: Some("overview".into()),
            tagline: Some("tagline".into()),
            date: Some("release_date".into()),
            genres: Some("genres".into()),
        }
    }
}

/// What happened to the rows of a CSV file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub rows_read: usize,
    pub rows_kept: usize,
    /// Skipped rows counted by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The first few skipped rows: (line number in the file, reason).
    pub examples: Vec<(u64, String)>,
}

impl LoadReport {
    const MAX_EXAMPLES: usize = 10;

    pub fn rows_skipped(&self) -> usize {
        self.skipped.values().sum()
    }

    fn skip(&mut self, line: u64, reason: String) {
        let key = reason.split(':').next().unwrap_or(&reason).to_string();
        *self.skipped.entry(key).or_default() += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples.push((line, reason));
        }
    }
}

/// The usable rows of a catalogue: movies and, at the same positions, the texts to embed.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub movies: Vec<Movie>,
    pub texts: Vec<String>,
    pub report: LoadReport,
}

/// Header positions of the mapped columns.
struct Columns {
    id: usize,
    title: usize,
    text: Vec<usize>,
    overview: Option<usize>,
    tagline: Option<usize>,
    date: Option<usize>,
    genres: Option<usize>,
}

impl Columns {
    fn locate(header: &csv::StringRecord, mapping: &ColumnMapping) -> Result<Self> {
        let find = |name: &str| -> Result<usize> {
            header
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| Error::MissingColumn {
                    column: name.to_string(),
                    available: header.iter().collect::<Vec<_>>().join(", "),
                })
        };
        let optional = |name: &Option<String>| name.as_deref().map(find).transpose();
        if mapping.text.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one text column is needed".into(),
            ));
        }
        Ok(Self {
            id: find(&mapping.id)?,
            title: find(&mapping.title)?,
            text: mapping
                .text
                .iter()
                .map(|name| find(name))
                .collect::<Result<_>>()?,
            overview: optional(&mapping.overview)?,
            tagline: optional(&mapping.tagline)?,
            date: optional(&mapping.date)?,
            genres: optional(&mapping.genres)?,
        })
    }
}

impl Catalogue {
    pub fn from_path(path: impl AsRef<Path>, mapping: &ColumnMapping) -> Result<Self> {
        let file = std::fs::File::open(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))?;
        Self::from_reader(file, mapping)
    }

    /// Reads every row; rows that are malformed, incomplete or duplicated are skipped and
    /// reported. Fails only when the file cannot be read or a mapped column is missing.
    pub fn from_reader(reader: impl Read, mapping: &ColumnMapping) -> Result<Self> {
        let mut csv = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(reader);
        let header = csv
            .headers()
            .map_err(|e| Error::Catalogue(format!("cannot read the header row: {e}")))?
            .clone();
        let columns = Columns::locate(&header, mapping)?;
        let mut catalogue = Catalogue::default();
        let mut seen_ids = HashSet::new();
        for record in csv.records() {
            catalogue.report.rows_read += 1;
            let record = match record {
                Ok(record) => record,
                Err(e) if e.is_io_error() => {
                    return Err(Error::Catalogue(format!("read failed: {e}")));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    catalogue
                        .report
                        .skip(line, format!("malformed CSV record: {e}"));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            match parse_row(&record, &columns) {
                Ok((movie, text)) => {
                    if !seen_ids.insert(movie.id.clone()) {
                        catalogue
                            .report
                            .skip(line, format!("duplicate id: {}", movie.id));
                        continue;
                    }
                    catalogue.movies.push(movie);
                    catalogue.texts.push(text);
                }
                Err(reason) => catalogue.report.skip(line, reason),
            }
        }
        catalogue.report.rows_kept = catalogue.movies.len();
        Ok(catalogue)
    }

    pub fn len(&self) -> usize {
        self.movies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.movies.is_empty()
    }

    /// Keeps only the first `n` movies (quick builds, tests).
    pub fn truncate(&mut self, n: usize) {
        self.movies.truncate(n);
        self.texts.truncate(n);
    }
}

fn parse_row(record: &csv::StringRecord, columns: &Columns) -> Result<(Movie, String), String> {
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let optional = |i: Option<usize>| i.map(field).filter(|s| !s.is_empty());
    let id = field(columns.id);
    if id.is_empty() {
        return Err("empty id".into());
    }
    let title = field(columns.title);
    if title.is_empty() {
        return Err(format!("empty title: id {id}"));
    }
    let overview = optional(columns.overview);
    if columns.overview.is_some() && overview.is_none() {
        return Err(format!("empty overview: id {id}"));
    }
    let parts: Vec<String> = columns
        .text
        .iter()
        .map(|&i| field(i))
        .map(|v| {
            if v.starts_with('[') {
                parse_list(v).join(", ")
            } else {
                v.to_string()
            }
        })
        .filter(|v| !v.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(format!("empty text: id {id}"));
    }
    let movie = Movie {
        id: id.to_string(),
        title: title.to_string(),
        year: optional(columns.date).and_then(parse_year),
        tagline: optional(columns.tagline).map(str::to_string),
        overview: overview.unwrap_or_default().to_string(),
        genres: optional(columns.genres).map(parse_list).unwrap_or_default(),
    };
    Ok((movie, join_sentences(&parts)))
}

/// Joins text fields into one passage: ". " between them unless a field already ends a
/// sentence.
fn join_sentences(parts: &[String]) -> String {
    let mut text = String::new();
    for part in parts {
        if !text.is_empty() {
            text.push_str(if text.ends_with(['.', '!', '?']) {
                " "
            } else {
                ". "
            });
        }
        text.push_str(part);
    }
    text
}

fn parse_year(date: &str) -> Option<i32> {
    let digits: String = date.chars().take(4).collect();
    (digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A list cell: JSON (`[{"name": "Action"}]` or `["Action"]`), else `|`/`,`-separated names.
fn parse_list(value: &str) -> Vec<String> {
    if value.starts_with('[') {
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(value) {
            return items
                .iter()
                .filter_map(|item| match item {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => o.get("name")?.as_str().map(str::to_string),
                    _ => None,
                })
                .collect();
        }
    }
    value
        .split(['|', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(csv: &str, mapping: &ColumnMapping) -> Catalogue {
        Catalogue::from_reader(csv.as_bytes(), mapping).expect("catalogue loads")
    }

    const TMDB_LIKE: &str = "\
id,title,overview,tagline,release_date,genres
19995,Avatar,\"In the 22nd century, a Marine...\",Enter the World of Pandora.,2009-12-10,\"[{\"\"id\"\": 28, \"\"name\"\": \"\"Action\"\"}, {\"\"id\"\": 12, \"\"name\"\": \"\"Adventure\"\"}]\"
862,Toy Story,\"Led by Woody, Andy's toys live happily.\",,1995-10-30,[]
1,No Overview,,A tagline,2000-01-01,[]
,No Id,Something,,,
862,Toy Story again,Duplicate id.,,,
2,Amélie,\"Une fille à Paris.\",,2001,Comedy|Romance
3,Too,many,fields,here,x,y
";

    #[test]
    fn reads_tmdb_shaped_rows_and_skips_bad_ones_with_reasons() {
        let c = load(TMDB_LIKE, &ColumnMapping::default());
        assert_eq!(c.report.rows_read, 7);
        assert_eq!(c.report.rows_kept, 3);
        assert_eq!(c.report.rows_skipped(), 4);
        assert_eq!(c.report.skipped["empty overview"], 1);
        assert_eq!(c.report.skipped["empty id"], 1);
        assert_eq!(c.report.skipped["duplicate id"], 1);
        assert_eq!(c.report.skipped["malformed CSV record"], 1);

        let avatar = &c.movies[0];
        assert_eq!(avatar.year, Some(2009));
        assert_eq!(avatar.genres, ["Action", "Adventure"]);
        assert_eq!(
            avatar.tagline.as_deref(),
            Some("Enter the World of Pandora.")
        );
        assert_eq!(c.texts[0], "Avatar. In the 22nd century, a Marine...");
        assert_eq!(c.movies[1].tagline, None);
        let amelie = &c.movies[2];
        assert_eq!((amelie.title.as_str(), amelie.year), ("Amélie", Some(2001)));
        assert_eq!(amelie.genres, ["Comedy", "Romance"]);
    }

    #[test]
    fn custom_mapping_reads_another_csv() {
        let csv = "key,name,blurb\na,First,Alpha text\nb,Second,Beta text\n";
        let mapping = ColumnMapping {
            id: "key".into(),
            title: "name".into(),
            text: vec!["blurb".into()],
            overview: Some("blurb".into()),
            tagline: None,
            date: None,
            genres: None,
        };
        let c = load(csv, &mapping);
        assert_eq!(c.len(), 2);
        assert_eq!(c.texts, ["Alpha text", "Beta text"]);
        assert_eq!(c.movies[1].overview, "Beta text");
    }

    #[test]
    fn missing_column_is_a_clear_error() {
        let err = Catalogue::from_reader("a,b\n1,2\n".as_bytes(), &ColumnMapping::default())
            .expect_err("must fail");
        let message = err.to_string();
        assert!(
            message.contains("\"id\"") && message.contains("a, b"),
            "{message}"
        );
    }

    #[test]
    fn invalid_utf8_row_is_skipped_not_fatal() {
        let mut bytes = b"id,title,overview\n1,Good,Fine text\n2,Bad,".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        bytes.extend_from_slice(b"3,Also good,More text\n");
        let mapping = ColumnMapping {
            tagline: None,
            date: None,
            genres: None,
            ..ColumnMapping::default()
        };
        let c = Catalogue::from_reader(bytes.as_slice(), &mapping).expect("loads");
        assert_eq!(c.len(), 2);
        assert_eq!(c.report.skipped["malformed CSV record"], 1);
    }

    #[test]
    fn json_list_text_columns_embed_as_names() {
        let csv = "id,title,overview,keywords\n1,Up,A house flies.,\"[{\"\"name\"\": \"\"balloon\"\"}, {\"\"name\"\": \"\"old man\"\"}]\"\n";
        let mapping = ColumnMapping {
            text: vec!["title".into(), "overview".into(), "keywords".into()],
            tagline: None,
            date: None,
            genres: None,
            ..ColumnMapping::default()
        };
        assert_eq!(
            load(csv, &mapping).texts,
            ["Up. A house flies. balloon, old man"]
        );
    }

    #[test]
    fn years_and_genres_parse_leniently() {
        assert_eq!(parse_year("1999-03-31"), Some(1999));
        assert_eq!(parse_year("n/a"), None);
        assert_eq!(parse_list("[\"Drama\", \"War\"]"), ["Drama", "War"]);
        assert_eq!(parse_list("Drama, War"), ["Drama", "War"]);
    }
}
