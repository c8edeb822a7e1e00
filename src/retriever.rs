//! Query text in, similar movies out: the embedder, the index and the movies of one bundle.
//! The CLI's `query` and the browser worker both go through [`Retriever::query`].

use std::path::Path;

use crate::bundle::{self, part, Manifest, PartInfo};
use crate::catalogue::Movie;
use crate::embed::{Embedder, Precision};
use crate::error::{Error, Result};
use crate::index::{SearchMode, VectorIndex};

pub struct Retriever {
    manifest: Manifest,
    embedder: Embedder,
    index: VectorIndex,
    movies: Vec<Movie>,
}

/// One retrieved movie and its cosine similarity to the query.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub movie: &'a Movie,
    pub index: usize,
    pub score: f32,
}

impl Retriever {
    /// Builds a retriever from a manifest and a way to get each part's bytes (a file read,
    /// a fetch from the browser's cache...). Every part is verified against the manifest.
    pub fn from_parts(
        manifest: Manifest,
        mut get_part: impl FnMut(&PartInfo) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let mut verified = |name: &str| -> Result<Vec<u8>> {
            let bytes = get_part(manifest.part(name)?)?;
            manifest.verify_part(name, &bytes)?;
            Ok(bytes)
        };
        let movies: Vec<Movie> =
            serde_json::from_slice(&verified(part::MOVIES)?).map_err(|e| Error::PartDecode {
                part: part::MOVIES.into(),
                message: e.to_string(),
            })?;
        let index = VectorIndex::from_bytes(&verified(part::INDEX)?)?;
        let embedder = Embedder::from_gguf_with(
            &verified(part::EMBEDDER)?,
            &verified(part::TOKENIZER)?,
            Precision::fastest(),
        )?;
        if index.len() != movies.len() || index.len() != manifest.index.count {
            return Err(Error::Manifest(format!(
                "index has {} vectors, movies part {} movies, manifest says {}",
                index.len(),
                movies.len(),
                manifest.index.count
            )));
        }
        if index.dim() != embedder.dim() {
            return Err(Error::Manifest(format!(
                "index vectors are {}-wide but the embedder makes {}-wide ones",
                index.dim(),
                embedder.dim()
            )));
        }
        Ok(Self {
            manifest,
            embedder,
            index,
            movies,
        })
    }

    /// Opens a bundle directory written by `index-builder build`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let manifest = bundle::read_manifest(dir)?;
        let checked = manifest.clone();
        Self::from_parts(manifest, |info| {
            bundle::read_part(dir, &checked, &info.name)
        })
    }

    /// The `k` movies most similar to `text`.
    pub fn query(&self, text: &str, k: usize, mode: SearchMode) -> Result<Vec<Match<'_>>> {
        let embedding = self.embedder.embed_query(text)?;
        self.search_embedding(&embedding, k, mode)
    }

    pub fn search_embedding(
        &self,
        embedding: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Match<'_>>> {
        let hits = self.index.search(embedding, k, mode)?;
        Ok(hits
            .into_iter()
            .map(|hit| Match {
                movie: &self.movies[hit.index],
                index: hit.index,
                score: hit.score,
            })
            .collect())
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn index(&self) -> &VectorIndex {
        &self.index
    }

    pub fn movies(&self) -> &[Movie] {
        &self.movies
    }
}
