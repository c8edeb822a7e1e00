//! Questions about movies, answered from passages: the documents and their chunks, the
//! lexical and fused search over them, the templated question set and its metrics. The Ask
//! task (`task::ask`) puts them together with the generator.
//!
//! - [`build`]: documents, chunks and their index for a bundle;
//! - [`facts`]: TMDB's movies and credits files, joined and reduced;
//! - [`document`]: a movie's facts as a plain-text document;
//! - [`chunk`]: overlapping token windows;
//! - [`lexical`]: BM25 over the chunks;
//! - [`passages`]: the bundle part and the dense + lexical search over it;
//! - [`questions`]: templated questions with answer sets, split by movie;
//! - [`metrics`]: exact match and token F1.

pub mod build;
pub mod chunk;
pub mod document;
pub mod facts;
pub mod fields;
pub mod lexical;
pub mod metrics;
pub mod passages;
pub mod questions;
pub mod titles;

pub use chunk::ChunkParams;
pub use passages::{Fusion, PassageHit, PassageIndex, Passages, Signal};
