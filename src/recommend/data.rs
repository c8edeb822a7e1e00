//! MovieLens 100K as RecBole ships it (atomic files: tab-separated, a typed header such as
//! `user_id:token`, the `.item` file in Latin-1), and the sparse rating matrix the
//! algorithms share.
//!
//! Users and movies are numbered densely (`u32`) in the order they first appear: movies in
//! the `.item` file's order, users in the ratings' order. The matrix keeps each row in the
//! ratings' order, because scikit-surprise does and its neighbour ties are broken by it.

use std::collections::HashMap;

use super::{RecommendError, Result};

/// One rating: dense user and movie numbers, the value on the 1–5 scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub user: u32,
    pub item: u32,
    pub value: f32,
}

/// A MovieLens movie as its `.item` file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MlMovie {
    /// MovieLens's own id (`item_id`).
    pub id: String,
    /// As MovieLens writes it: "Usual Suspects, The".
    pub title: String,
    pub year: Option<i32>,
    pub genres: Vec<String>,
}

/// Movies, users and every rating.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub movies: Vec<MlMovie>,
    /// MovieLens user ids, by dense number.
    pub users: Vec<String>,
    pub ratings: Vec<Rating>,
}

/// Latin-1 bytes as text (every byte is the code point of the same value).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A tab-separated atomic file: its column positions by name (the part before `:`).
struct Atomic<'a> {
    file: &'a str,
    columns: Vec<&'a str>,
    lines: std::iter::Enumerate<std::str::Lines<'a>>,
}

impl<'a> Atomic<'a> {
    fn new(file: &'a str, text: &'a str) -> Result<Self> {
        let mut lines = text.lines().enumerate();
        let header = lines
            .next()
            .map(|(_, h)| h)
            .ok_or_else(|| RecommendError::Parse {
                file: file.into(),
                line: 1,
                message: "empty file".into(),
            })?;
        let columns = header
            .split('\t')
            .map(|c| c.split(':').next().unwrap_or(c).trim())
            .collect();
        Ok(Self {
            file,
            columns,
            lines,
        })
    }

    fn column(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| RecommendError::MissingColumn {
                file: self.file.into(),
                column: name.into(),
                available: self.columns.join(", "),
            })
    }

    /// The next non-empty row as fields, with its 1-based line number.
    fn next_row(&mut self) -> Option<(usize, Vec<&'a str>)> {
        for (i, line) in self.lines.by_ref() {
            if !line.trim().is_empty() {
                return Some((i + 1, line.split('\t').collect()));
            }
        }
        None
    }

    fn error(&self, line: usize, message: String) -> RecommendError {
        RecommendError::Parse {
            file: self.file.into(),
            line,
            message,
        }
    }
}

impl Dataset {
    /// Reads `ml-100k.item` (already decoded from Latin-1) and `ml-100k.inter`. A rating of a
    /// movie the item file does not list, a value off the 1–5 scale or a short row is an
    /// error naming the line: the files are checked by sha256, so a bad line means a wrong
    /// file, not noise to skip.
    pub fn parse(items: &str, inter: &str) -> Result<Self> {
        let mut dataset = Dataset::default();
        let mut item_index = HashMap::new();
        let mut rows = Atomic::new("ml-100k.item", items)?;
        let (id, title) = (rows.column("item_id")?, rows.column("movie_title")?);
        let year = rows.column("release_year").ok();
        let genres = rows.column("class").ok();
        while let Some((line, fields)) = rows.next_row() {
            let field = |i: usize| fields.get(i).map_or("", |f| f.trim());
            if field(id).is_empty() || field(title).is_empty() {
                return Err(rows.error(line, "no id or no title".into()));
            }
            let number = dataset.movies.len() as u32;
            if item_index.insert(field(id).to_string(), number).is_some() {
                return Err(rows.error(line, format!("movie id {} again", field(id))));
            }
            dataset.movies.push(MlMovie {
                id: field(id).to_string(),
                title: field(title).to_string(),
                year: year.and_then(|c| field(c).parse().ok()),
                genres: genres.map_or_else(Vec::new, |c| {
                    field(c)
                        .split(' ')
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                }),
            });
        }
        let mut user_index: HashMap<String, u32> = HashMap::new();
        let mut rows = Atomic::new("ml-100k.inter", inter)?;
        let (user_c, item_c, rating_c) = (
            rows.column("user_id")?,
            rows.column("item_id")?,
            rows.column("rating")?,
        );
        while let Some((line, fields)) = rows.next_row() {
            let field = |i: usize| fields.get(i).map_or("", |f| f.trim());
            let &item = item_index
                .get(field(item_c))
                .ok_or_else(|| rows.error(line, format!("unknown movie id {:?}", field(item_c))))?;
            let value: f32 = field(rating_c)
                .parse()
                .map_err(|_| rows.error(line, format!("rating {:?}", field(rating_c))))?;
            super::check_rating(field(user_c), value)
                .map_err(|e| rows.error(line, e.to_string()))?;
            let next = user_index.len() as u32;
            let user = *user_index
                .entry(field(user_c).to_string())
                .or_insert_with(|| {
                    dataset.users.push(field(user_c).to_string());
                    next
                });
            dataset.ratings.push(Rating { user, item, value });
        }
        Ok(dataset)
    }

    /// The dense number of MovieLens user `id`.
    pub fn user(&self, id: &str) -> Result<u32> {
        self.users
            .iter()
            .position(|u| u == id.trim())
            .map(|i| i as u32)
            .ok_or_else(|| RecommendError::UnknownUser {
                user: id.to_string(),
                first: self
                    .users
                    .iter()
                    .min_by_key(|u| u.parse::<u64>().unwrap_or(u64::MAX))
                    .cloned()
                    .unwrap_or_default(),
                last: self
                    .users
                    .iter()
                    .max_by_key(|u| u.parse::<u64>().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default(),
            })
    }
}

/// Compressed rows: row `r`'s entries are `entries[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, Default)]
pub struct Csr {
    offsets: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl Csr {
    /// Rows from `(row, column, value)` triples, each row in the triples' order.
    fn build(rows: usize, triples: impl Iterator<Item = (u32, u32, f32)> + Clone) -> Self {
        let mut counts = vec![0usize; rows + 1];
        for (r, _, _) in triples.clone() {
            counts[r as usize + 1] += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        let offsets = counts.clone();
        let mut fill = counts;
        let mut entries = vec![(0, 0.0); offsets[rows]];
        for (r, c, v) in triples {
            entries[fill[r as usize]] = (c, v);
            fill[r as usize] += 1;
        }
        Self { offsets, entries }
    }

    pub fn row(&self, r: u32) -> &[(u32, f32)] {
        let r = r as usize;
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&a), Some(&b)) => &self.entries[a..b],
            _ => &[],
        }
    }

    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// The sparse user × movie matrix of a set of ratings: 100K entries stored twice (by user,
/// by movie) instead of a dense 943 × 1682 table.
#[derive(Debug, Clone)]
pub struct Ratings {
    pub by_user: Csr,
    pub by_item: Csr,
    pub global_mean: f64,
    pub len: usize,
}

impl Ratings {
    /// The matrix of `ratings` among `users` users and `items` movies (numbers beyond those
    /// are an error: they come from a different dataset).
    pub fn new(users: usize, items: usize, ratings: &[Rating]) -> Result<Self> {
        if let Some(r) = ratings
            .iter()
            .find(|r| r.user as usize >= users || r.item as usize >= items)
        {
            return Err(RecommendError::Data(format!(
                "rating of movie {} by user {} is outside {users} users × {items} movies",
                r.item, r.user
            )));
        }
        let triples = ratings.iter().map(|r| (r.user, r.item, r.value));
        let by_user = Csr::build(users, triples.clone());
        let by_item = Csr::build(items, triples.map(|(u, i, v)| (i, u, v)));
        let sum: f64 = ratings.iter().map(|r| f64::from(r.value)).sum();
        Ok(Self {
            by_user,
            by_item,
            global_mean: if ratings.is_empty() {
                3.0
            } else {
                sum / ratings.len() as f64
            },
            len: ratings.len(),
        })
    }

    pub fn users(&self) -> usize {
        self.by_user.rows()
    }

    pub fn items(&self) -> usize {
        self.by_item.rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: &str =
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
        1\tToy Story\t1995\tAnimation Children's Comedy\n\
        2\tUsual Suspects, The\t1995\tCrime Thriller\n\
        3\tUnknown Year\t\tDrama\n";
    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
        196\t1\t3\t0\n186\t2\t5\t0\n196\t2\t4\t0\n";

    #[test]
    fn parses_atomic_files_and_numbers_users_in_order() {
        let d = Dataset::parse(ITEMS, INTER).unwrap();
        assert_eq!(d.movies.len(), 3);
        assert_eq!(d.movies[1].title, "Usual Suspects, The");
        assert_eq!(d.movies[0].genres, ["Animation", "Children's", "Comedy"]);
        assert_eq!(d.movies[2].year, None);
        assert_eq!(d.users, ["196", "186"]);
        assert_eq!(
            d.ratings[2],
            Rating {
                user: 0,
                item: 1,
                value: 4.0
            }
        );
        assert_eq!(d.user("186").unwrap(), 1);
        let err = d.user("9999").unwrap_err().to_string();
        assert!(err.contains("9999") && err.contains("186 to 196"), "{err}");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let bad = "user_id:token\titem_id:token\trating:float\n196\t7\t3\n";
        let err = Dataset::parse(ITEMS, bad).unwrap_err().to_string();
        assert!(
            err.contains("ml-100k.inter: line 2") && err.contains("\"7\""),
            "{err}"
        );
        let bad = "user_id:token\titem_id:token\trating:float\n196\t1\t6\n";
        assert!(Dataset::parse(ITEMS, bad)
            .unwrap_err()
            .to_string()
            .contains("outside 1–5"));
        let err = Dataset::parse(ITEMS, "user:token\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column \"user_id\""), "{err}");
        assert_eq!(latin1(b"Caf\xe9"), "Café");
    }

    #[test]
    fn matrix_keeps_rows_in_rating_order() {
        let d = Dataset::parse(ITEMS, INTER).unwrap();
        let m = Ratings::new(2, 3, &d.ratings).unwrap();
        assert_eq!(m.by_user.row(0), &[(0, 3.0), (1, 4.0)]);
        assert_eq!(m.by_item.row(1), &[(1, 5.0), (0, 4.0)]);
        assert!(m.by_item.row(2).is_empty() && m.by_item.row(99).is_empty());
        assert_eq!(m.global_mean, 4.0);
        assert!(Ratings::new(1, 3, &d.ratings).is_err());
    }
}
