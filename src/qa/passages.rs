//! The Ask tab's passages: one document per movie, cut into overlapping chunks, and the
//! search over them. The bundle carries them as two optional parts, the documents with their
//! chunks' byte ranges (`passages`, JSON) and the chunks' MiniLM vectors (`passage-index`,
//! the movies' index format), loaded only when the tab is first used.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::chunk::ChunkParams;
use super::document::header;
use super::fields;
use super::lexical::Bm25;
use super::titles::Titles;
use crate::bundle::{self, part, Manifest};
use crate::error::{Error, Result};
use crate::index::{SearchMode, VectorIndex};

/// Bump on any change a reader of the previous version would misread.
pub const PASSAGES_VERSION: u32 = 1;

/// One movie's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The movie's position in the bundle's movies part.
    pub movie: u32,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// The body ([`super::document::body`]); chunks are byte ranges of it.
    pub text: String,
}

/// A window of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub doc: u32,
    pub start: u32,
    pub end: u32,
}

/// The `passages` part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passages {
    pub version: u32,
    pub chunking: ChunkParams,
    pub documents: Vec<Document>,
    /// Grouped by document, in order: a chunk's neighbours are the ones beside it.
    pub chunks: Vec<Chunk>,
}

impl Passages {
    pub fn from_json(bytes: &[u8], movies: usize) -> Result<Self> {
        let decode = |message: String| Error::PartDecode {
            part: crate::bundle::part::PASSAGES.into(),
            message,
        };
        let passages: Self = serde_json::from_slice(bytes).map_err(|e| decode(e.to_string()))?;
        if passages.version != PASSAGES_VERSION {
            return Err(decode(format!(
                "version {} (this build reads {PASSAGES_VERSION}): rebuild the bundle",
                passages.version
            )));
        }
        for d in &passages.documents {
            if d.movie as usize >= movies {
                return Err(decode(format!("document of movie {} of {movies}", d.movie)));
            }
        }
        for c in &passages.chunks {
            let ok = passages.documents.get(c.doc as usize).is_some_and(|d| {
                c.start < c.end && d.text.get(c.start as usize..c.end as usize).is_some()
            });
            if !ok {
                return Err(decode(format!("chunk {c:?} is outside its document")));
            }
        }
        Ok(passages)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A chunk as it is embedded, searched and shown: its movie's header, then its words.
    pub fn chunk_text(&self, chunk: usize) -> String {
        let c = self.chunks[chunk];
        let doc = &self.documents[c.doc as usize];
        let body = &doc.text[c.start as usize..c.end as usize];
        format!("{}: {body}", header(&doc.title, doc.year))
    }

    /// The movie (catalogue position) a chunk is about.
    pub fn movie_of(&self, chunk: usize) -> usize {
        self.documents[self.chunks[chunk].doc as usize].movie as usize
    }

    /// The chunks beside `chunk` in its document (before, after), when there are any.
    pub fn neighbours(&self, chunk: usize) -> (Option<usize>, Option<usize>) {
        let doc = self.chunks[chunk].doc;
        let same = |i: usize| (self.chunks.get(i)?.doc == doc).then_some(i);
        (chunk.checked_sub(1).and_then(same), same(chunk + 1))
    }
}

/// Which signal ranks the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// MiniLM cosine only.
    Dense,
    /// BM25 only.
    Lexical,
    /// Both, combined by [`Fusion::DEFAULT`].
    #[default]
    Fused,
}

impl std::str::FromStr for Signal {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dense" => Ok(Self::Dense),
            "lexical" => Ok(Self::Lexical),
            "fused" => Ok(Self::Fused),
            other => Err(Error::InvalidArgument(format!(
                "retrieval signal {other:?} is not dense, lexical or fused"
            ))),
        }
    }
}

/// One retrieved chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassageHit {
    pub chunk: usize,
    pub movie: usize,
    /// The ranking score (cosine, BM25 or the fused reciprocal-rank sum).
    pub score: f32,
    /// The query's cosine with the chunk, whatever ranked it: the relevance that decides
    /// "I don't know".
    pub cosine: f32,
}

/// How many candidates each signal gives the fusion.
const DEPTH: usize = 100;
/// Reciprocal rank fusion's constant (Cormack et al. 2009): a chunk scores
/// Σ weight / (RRF_K + rank) over the signals.
const RRF_K: f32 = 60.0;

/// Passages with their dense index and a BM25 index.
pub struct PassageIndex {
    pub passages: Passages,
    dense: VectorIndex,
    lexical: Bm25,
    titles: Titles,
    /// Each document's chunks.
    doc_chunks: Vec<std::ops::Range<usize>>,
    /// The fields each chunk states ([`fields::Statements::stated_in`]).
    chunk_fields: Vec<u8>,
}

impl PassageIndex {
    pub fn new(passages: Passages, dense: VectorIndex) -> Result<Self> {
        if dense.len() != passages.chunks.len() {
            return Err(Error::Manifest(format!(
                "the passage index has {} vectors for {} chunks",
                dense.len(),
                passages.chunks.len()
            )));
        }
        let texts: Vec<String> = (0..passages.chunks.len())
            .map(|i| passages.chunk_text(i))
            .collect();
        let lexical = Bm25::build(texts.iter().map(String::as_str));
        let titles = Titles::new(passages.documents.iter().map(|d| d.title.as_str()));
        let mut doc_chunks = vec![0..0; passages.documents.len()];
        for (i, c) in passages.chunks.iter().enumerate() {
            let range = &mut doc_chunks[c.doc as usize];
            if range.start == range.end {
                *range = i..i + 1;
            } else {
                range.end = i + 1;
            }
        }
        let statements: Vec<fields::Statements> = passages
            .documents
            .iter()
            .map(|d| fields::Statements::new(&d.text))
            .collect();
        let chunk_fields = passages
            .chunks
            .iter()
            .map(|c| statements[c.doc as usize].stated_in(c.start as usize..c.end as usize))
            .collect();
        Ok(Self {
            passages,
            dense,
            lexical,
            titles,
            doc_chunks,
            chunk_fields,
        })
    }

    /// From the bundle's `passages` and `passage-index` parts (already verified against the
    /// manifest), for a bundle of `movies` movies.
    pub fn from_parts(passages_json: &[u8], index: &[u8], movies: usize) -> Result<Self> {
        let passages = Passages::from_json(passages_json, movies)?;
        Self::new(passages, VectorIndex::from_bytes(index)?)
    }

    /// The passages of a bundle directory written by `index-builder build`, for its
    /// catalogue of `movies` movies; each part is verified against `manifest`.
    pub fn open_dir(dir: &std::path::Path, manifest: &Manifest, movies: usize) -> Result<Self> {
        let passages = bundle::read_part(dir, manifest, part::PASSAGES)?;
        let index = bundle::read_part(dir, manifest, part::PASSAGE_INDEX)?;
        Self::from_parts(&passages, &index, movies)
    }

    pub fn len(&self) -> usize {
        self.passages.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.chunks.is_empty()
    }

    fn cosine(&self, embedding: &[f32], chunk: usize) -> f32 {
        self.dense
            .vector(chunk)
            .map_or(0.0, |v| v.iter().zip(embedding).map(|(a, b)| a * b).sum())
    }

    /// The `k` best chunks for a question (`text`, and `embedding` its MiniLM vector), never
    /// one about a movie in `exclude` (the evaluation's "not in the catalogue" case).
    pub fn search(
        &self,
        text: &str,
        embedding: &[f32],
        k: usize,
        signal: Signal,
        exclude: &HashSet<usize>,
    ) -> Result<Vec<PassageHit>> {
        let fusion = match signal {
            Signal::Dense => Fusion::Dense,
            Signal::Lexical => Fusion::Lexical,
            Signal::Fused => Fusion::DEFAULT,
        };
        self.search_with(text, embedding, k, fusion, exclude)
    }

    /// [`Self::search`] with the signals combined by `fusion`.
    pub fn search_with(
        &self,
        text: &str,
        embedding: &[f32],
        k: usize,
        fusion: Fusion,
        exclude: &HashSet<usize>,
    ) -> Result<Vec<PassageHit>> {
        if self.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let keep = |chunk: &usize| !exclude.contains(&self.passages.movie_of(*chunk));
        let depth = (DEPTH.max(k) + exclude.len() * 8).min(self.len());
        // Each signal is computed only when the fusion uses it.
        let dense = || -> Result<Vec<(usize, f32)>> {
            Ok(self
                .dense
                .search(embedding, depth, SearchMode::Exact)?
                .into_iter()
                .map(|h| (h.index, h.score))
                .filter(|(c, _)| keep(c))
                .collect())
        };
        let lexical = |bm25: &[f32]| -> Vec<(usize, f32)> {
            crate::qa::lexical::best(bm25, depth)
                .into_iter()
                .filter(|(c, _)| keep(c))
                .collect()
        };
        let mut ranked: Vec<(usize, f32)> = match fusion {
            Fusion::Dense => dense()?,
            Fusion::Lexical => lexical(&self.lexical.scores(text)),
            Fusion::Convex {
                dense_weight,
                title_weight,
                field_weight,
            } => {
                let bm25 = self.lexical.scores(text);
                let (dense, lexical) = (dense()?, lexical(&bm25));
                let asked = fields::asked(text);
                let named: Vec<usize> = self
                    .titles
                    .named_in(text)
                    .into_iter()
                    .flat_map(|d| self.doc_chunks[d].clone())
                    .filter(keep)
                    .collect();
                let mut union: Vec<usize> = dense.iter().chain(&lexical).map(|h| h.0).collect();
                union.extend(&named);
                union.sort_unstable();
                union.dedup();
                let cos: Vec<f32> = union.iter().map(|&c| self.cosine(embedding, c)).collect();
                let lex: Vec<f32> = union.iter().map(|&c| bm25[c]).collect();
                let (cos, lex) = (min_max(&cos), min_max(&lex));
                union
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| {
                        let title = if named.contains(&c) {
                            title_weight
                        } else {
                            0.0
                        };
                        let field = if self.chunk_fields[c] & asked != 0 {
                            field_weight
                        } else {
                            0.0
                        };
                        let signals = dense_weight * cos[i] + (1.0 - dense_weight) * lex[i];
                        (c, signals + title + field)
                    })
                    .collect()
            }
            Fusion::Rrf { lexical_weight } => {
                let mut fused: Vec<(usize, f32)> = Vec::new();
                let lists = [dense()?, lexical(&self.lexical.scores(text))];
                for (list, weight) in lists.into_iter().zip([1.0, lexical_weight]) {
                    for (rank, (chunk, _)) in list.into_iter().enumerate() {
                        let add = weight / (RRF_K + rank as f32 + 1.0);
                        match fused.iter_mut().find(|(c, _)| *c == chunk) {
                            Some(entry) => entry.1 += add,
                            None => fused.push((chunk, add)),
                        }
                    }
                }
                fused
            }
        };
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(ranked
            .into_iter()
            .take(k)
            .map(|(chunk, score)| PassageHit {
                chunk,
                movie: self.passages.movie_of(chunk),
                score,
                cosine: self.cosine(embedding, chunk),
            })
            .collect())
    }
}

/// How the dense and lexical signals are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// MiniLM cosine only.
    Dense,
    /// BM25 only.
    Lexical,
    /// Reciprocal rank fusion, the lexical ranks weighted: ranks only, so a strong lexical
    /// match (a rare name and the year) counts no more than a weak one.
    Rrf { lexical_weight: f32 },
    /// Each signal's scores min-max scaled over both signals' candidates (each candidate
    /// has both scores: the cosine and the BM25 sum are computed for all), then weighted
    /// and summed, so how far a match stands out counts, not only its rank; chunks of a
    /// movie whose title the question names ([`Titles`]) get `title_weight` more, and
    /// chunks stating a fact the question asks for ([`fields`]) `field_weight` more.
    Convex {
        dense_weight: f32,
        title_weight: f32,
        field_weight: f32,
    },
}

impl Fusion {
    /// Chosen on 3,000 training questions (`index-builder ask-eval`'s "Fusion settings"
    /// table, docs/evaluation.md): the right movie first for 95.9 % and among the first five
    /// for 99.7 %, the answer in the first chunk for 94.8 %, against 79.7 / 89.5 / 58.6 % for
    /// plain reciprocal rank fusion, which ranked the film of "Which 2010 film did X direct?"
    /// first a third of the time (dense alone: a tenth).
    pub const DEFAULT: Fusion = Fusion::Convex {
        dense_weight: 0.3,
        title_weight: 0.2,
        field_weight: 0.3,
    };
}

/// `values` scaled to 0..=1 (all 0 when they are all equal).
fn min_max(values: &[f32]) -> Vec<f32> {
    let low = values.iter().copied().fold(f32::INFINITY, f32::min);
    let high = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = high - low;
    values
        .iter()
        .map(|v| if span > 0.0 { (v - low) / span } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{HnswParams, WIDTH};

    /// A MiniLM-wide vector from its first three components.
    fn wide(v: [f32; 3]) -> Vec<f32> {
        let mut w = v.to_vec();
        w.resize(WIDTH, 0.0);
        w
    }

    /// The sample's passages with the chunks' vectors `vectors` (first three components).
    fn index_with(vectors: [[f32; 3]; 3]) -> PassageIndex {
        let vectors: Vec<Vec<f32>> = vectors.into_iter().map(wide).collect();
        let dense = VectorIndex::build(&vectors, HnswParams::default()).expect("builds");
        PassageIndex::new(sample(), dense).expect("matches")
    }

    fn sample() -> Passages {
        let documents = vec![
            Document {
                movie: 0,
                title: "Alien".into(),
                year: Some(1979),
                text: "Directed by Ridley Scott. Starring Sigourney Weaver as Ripley.".into(),
            },
            Document {
                movie: 1,
                title: "Heat".into(),
                year: None,
                text: "Directed by Michael Mann.".into(),
            },
        ];
        Passages {
            version: PASSAGES_VERSION,
            chunking: ChunkParams::default(),
            chunks: vec![
                Chunk {
                    doc: 0,
                    start: 0,
                    end: 25,
                },
                Chunk {
                    doc: 0,
                    start: 26,
                    end: 62,
                },
                Chunk {
                    doc: 1,
                    start: 0,
                    end: 25,
                },
            ],
            documents,
        }
    }

    #[test]
    fn chunks_read_back_with_headers_and_neighbours() {
        let p = sample();
        let back = Passages::from_json(&p.to_json(), 2).expect("valid");
        assert_eq!(back, p);
        assert_eq!(p.chunk_text(0), "Alien (1979): Directed by Ridley Scott.");
        assert_eq!(p.chunk_text(2), "Heat: Directed by Michael Mann.");
        assert_eq!(p.neighbours(0), (None, Some(1)));
        assert_eq!(p.neighbours(1), (Some(0), None));
        assert_eq!(p.neighbours(2), (None, None));
        assert_eq!(p.movie_of(2), 1);
    }

    #[test]
    fn a_damaged_part_is_refused() {
        let mut p = sample();
        p.chunks[1].end = 999;
        let err = Passages::from_json(&p.to_json(), 2).expect_err("outside");
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(
            Passages::from_json(&sample().to_json(), 1).is_err(),
            "movie out of range"
        );
        let mut old = sample();
        old.version = 0;
        assert!(Passages::from_json(&old.to_json(), 2).is_err());
    }

    #[test]
    fn a_named_title_and_the_fact_asked_for_pick_the_chunk() {
        // Dense prefers Alien's cast chunk and Heat; the question names Alien and asks who
        // directed it, which only Alien's first chunk states.
        let index = index_with([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.9, 0.436, 0.0]]);
        let query = wide([0.8, 0.6, 0.0]);
        let none = HashSet::new();
        let dense_first = index
            .search("Who directed Alien?", &query, 3, Signal::Dense, &none)
            .expect("search");
        assert_ne!(dense_first[0].chunk, 0, "{dense_first:?}");
        let fused = index
            .search("Who directed Alien?", &query, 3, Signal::Fused, &none)
            .expect("search");
        assert_eq!(fused[0].chunk, 0, "{fused:?}");
        // Each boost on its own, over the dense signal alone: Heat, then Alien's best
        // chunk by cosine once the title counts, then the one stating its director.
        let first = |title_weight, field_weight| {
            let fusion = Fusion::Convex {
                dense_weight: 1.0,
                title_weight,
                field_weight,
            };
            index
                .search_with("Who directed Alien?", &query, 3, fusion, &none)
                .expect("search")[0]
                .chunk
        };
        assert_eq!(first(0.0, 0.0), 2);
        assert_eq!(first(1.0, 0.0), 1);
        assert_eq!(first(1.0, 1.0), 0);
    }

    #[test]
    fn fusion_ranks_what_both_signals_agree_on_and_exclusion_holds() {
        // Vectors that make the dense signal prefer the wrong chunk for "Michael Mann".
        let index = index_with([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8]]);
        let query = wide([0.98, 0.0, 0.196]);
        let none = HashSet::new();
        let by = |signal| {
            index
                .search("Heat with Michael Mann?", &query, 3, signal, &none)
                .expect("search")
        };
        assert_eq!(by(Signal::Dense)[0].chunk, 0);
        assert_eq!(by(Signal::Lexical)[0].chunk, 2);
        let fused = by(Signal::Fused);
        assert_eq!(
            fused[0].chunk, 2,
            "second by cosine, first by BM25: {fused:?}"
        );
        assert!((fused[0].cosine - 0.745).abs() < 0.02, "{fused:?}");
        let without_heat = index
            .search(
                "Michael Mann",
                &query,
                3,
                Signal::Fused,
                &HashSet::from([1]),
            )
            .expect("search");
        assert!(
            without_heat.iter().all(|h| h.movie != 1),
            "{without_heat:?}"
        );
    }
}
