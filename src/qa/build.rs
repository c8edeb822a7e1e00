//! Passages for a bundle: a document per catalogue movie from its facts, cut into windows of
//! MiniLM tokens (the model that embeds them, whose 256-token limit a chunk must respect),
//! each chunk embedded with its movie's header and indexed like the movies.

use std::collections::HashMap;

use super::chunk::{windows, ChunkParams};
use super::document::body;
use super::facts::MovieFacts;
use super::passages::{Chunk, Document, Passages, PASSAGES_VERSION};
use crate::catalogue::Movie;
use crate::embed::{Embedder, MAX_TOKENS};
use crate::error::{Error, Result};
use crate::index::{HnswParams, VectorIndex};

/// Documents and chunks for the `movies` of a catalogue (facts of other movies are
/// ignored; a catalogue movie without facts gets no document).
pub fn passages(
    facts: &[MovieFacts],
    movies: &[Movie],
    embedder: &Embedder,
    chunking: ChunkParams,
) -> Result<Passages> {
    chunking.validate()?;
    // Room for the header ("Title (year): ") and [CLS]/[SEP] inside MiniLM's limit.
    if chunking.size + 32 > MAX_TOKENS {
        return Err(Error::InvalidArgument(format!(
            "chunks of {} tokens do not fit MiniLM's {MAX_TOKENS} with their header",
            chunking.size
        )));
    }
    let facts_by_id: HashMap<&str, &MovieFacts> =
        facts.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut documents = Vec::new();
    for (i, movie) in movies.iter().enumerate() {
        let Some(f) = facts_by_id.get(movie.id.as_str()) else {
            continue;
        };
        documents.push(Document {
            movie: i as u32,
            title: movie.title.clone(),
            year: movie.year,
            text: body(f),
        });
    }
    let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
    let spans = embedder.token_spans(&texts)?;
    let mut chunks = Vec::new();
    for (doc, (document, spans)) in documents.iter().zip(&spans).enumerate() {
        for range in windows(&document.text, spans, chunking)? {
            chunks.push(Chunk {
                doc: doc as u32,
                start: range.start as u32,
                end: range.end as u32,
            });
        }
    }
    Ok(Passages {
        version: PASSAGES_VERSION,
        chunking,
        documents,
        chunks,
    })
}

/// The chunks' embeddings and their index (`progress` hears how many are embedded).
pub fn embed_passages(
    passages: &Passages,
    embedder: &Embedder,
    batch_size: usize,
    hnsw: HnswParams,
    progress: impl FnMut(usize),
) -> Result<VectorIndex> {
    if passages.chunks.is_empty() {
        return Err(Error::Catalogue(
            "no passages: no catalogue movie has facts (wrong credits file?)".into(),
        ));
    }
    let texts: Vec<String> = (0..passages.chunks.len())
        .map(|i| passages.chunk_text(i))
        .collect();
    let embeddings = embedder.embed_all(&texts, batch_size, progress)?;
    VectorIndex::build(&embeddings, hnsw)
}
