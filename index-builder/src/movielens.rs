//! MovieLens 100K and the TMDB catalogue as the `recommend` commands load them: from the
//! asset cache that scripts/fetch_assets.py fills (`--only movielens,tmdb`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use marquee::catalogue::{Catalogue, ColumnMapping, Movie};
use marquee::recommend::data::latin1;
use marquee::recommend::join::{self, Join, JoinKind};
use marquee::recommend::Dataset;

/// Where the atomic files are by default.
pub fn default_dir() -> PathBuf {
    crate::paths::assets_dir().join("movielens")
}

/// `ml-100k.item` (Latin-1) and `ml-100k.inter` from `dir`.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Dataset> {
    let dir = dir.map_or_else(default_dir, Path::to_path_buf);
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (run scripts/fetch_assets.py --only movielens)",
                path.display()
            )
        })
    };
    let items = latin1(&read("ml-100k.item")?);
    let inter = String::from_utf8(read("ml-100k.inter")?).context("ml-100k.inter is not UTF-8")?;
    Ok(Dataset::parse(&items, &inter)?)
}

/// The TMDB movies and the join of MovieLens's movies to them.
pub struct Joined {
    pub tmdb: Vec<Movie>,
    pub join: Join,
}

impl Joined {
    pub fn load(dataset: &Dataset, catalogue: Option<&Path>) -> anyhow::Result<Self> {
        let path = catalogue.map_or_else(
            || crate::paths::assets_dir().join("tmdb/movies.csv"),
            Path::to_path_buf,
        );
        let tmdb = Catalogue::from_path(&path, &ColumnMapping::default())
            .with_context(|| format!("cannot read the catalogue {}", path.display()))?
            .movies;
        let join = join::join(&dataset.movies, &tmdb);
        Ok(Self { tmdb, join })
    }

    /// The TMDB movie of MovieLens movie `item`, if it joined.
    pub fn movie(&self, item: u32) -> Option<&Movie> {
        let (i, _) = self.join.tmdb.get(item as usize).copied().flatten()?;
        self.tmdb.get(i)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} of {} MovieLens movies joined to TMDB ({} same year, {} a year apart); {} keep their MovieLens title",
            self.join.tmdb.len() - self.join.unmatched(),
            self.join.tmdb.len(),
            self.join.count(JoinKind::Exact),
            self.join.count(JoinKind::NearYear),
            self.join.unmatched()
        )
    }
}

/// "The Usual Suspects (1995)".
pub fn title(dataset: &Dataset, item: u32) -> String {
    let Some(m) = dataset.movies.get(item as usize) else {
        return format!("movie {item}");
    };
    let title = join::display_title(&m.title);
    match m.year {
        Some(y) => format!("{title} ({y})"),
        None => title,
    }
}
