//! Catalogue + MiniLM files in, bundle out: the work behind `index-builder build`, here so
//! the CLI stays a thin shell and the tests build bundles through the very same code.

use std::time::Instant;

use candle_core::quantized::GgmlDType;

use crate::bundle::{
    part, BundleFiles, CatalogueInfo, EmbedderInfo, GeneratorInfo, IndexInfo, Manifest,
};
use crate::bundle::{FORMAT, FORMAT_VERSION};
use crate::catalogue::{Catalogue, ColumnMapping};
use crate::embed::{quantize_bert, BertConfig, Embedder, MAX_TOKENS};
use crate::error::{Error, Result};
use crate::generate::{requantize_gguf, Adapter, AdapterMode, Generator};
use crate::index::{HnswParams, VectorIndex};
use crate::qa::{self, facts::MovieFacts, ChunkParams};
use crate::weights::Weights;

pub const EMBEDDING_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The Hugging Face files of all-MiniLM-L6-v2.
pub struct ModelFiles {
    pub safetensors: Vec<u8>,
    pub config_json: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub hnsw: HnswParams,
    pub batch_size: usize,
    pub embedder_dtype: GgmlDType,
    /// Where the catalogue came from, recorded in the manifest.
    pub source: String,
    pub columns: ColumnMapping,
    pub attribution: String,
    /// The tagline generator to ship in the bundle, if any.
    pub generator: Option<GeneratorSource>,
    /// The recommender's part (`recommend::part::RecsPart` as JSON, built from MovieLens by
    /// the caller), shipped as an optional part the page fetches when its Recommend tab
    /// first opens; checked by reading it back.
    pub recs: Option<Vec<u8>>,
    /// The Ask tab's passages to build from these facts, if any.
    pub passages: Option<PassageSource>,
}

/// The facts the Ask tab's documents are made of (`qa::facts::read_tmdb`), and how to chunk
/// them.
#[derive(Debug, Clone)]
pub struct PassageSource {
    pub facts: Vec<MovieFacts>,
    pub chunking: ChunkParams,
    /// The passages of the bundle this build replaces, if it had any: embedding every chunk
    /// is most of a build's time (about 15 minutes on 2 cores), and a rebuild for another
    /// reason (the adapter, the recs part, the builder itself) changes no chunk.
    pub previous: Option<PreviousPassages>,
}

/// A bundle's passage parts, read and verified against its manifest, offered for reuse.
#[derive(Debug, Clone)]
pub struct PreviousPassages {
    pub manifest: Manifest,
    pub passages_json: Vec<u8>,
    pub index: Vec<u8>,
}

impl PreviousPassages {
    /// Its vectors, when they are what embedding `passages` would give: the same chunks
    /// (documents, ranges and chunking: the part's JSON is identical), embedded by the same
    /// model, in a graph built with the same parameters. ef_search is only the search's
    /// beam, so a different one is set on the reused index rather than re-embedding.
    fn vectors_for(&self, passages: &qa::Passages, hnsw: HnswParams) -> Option<VectorIndex> {
        let embedder = &self.manifest.embedder;
        let same_chunks = embedder.model == EMBEDDING_MODEL
            && embedder.catalogue_embedded_with == reference_embedder()
            && self.passages_json == passages.to_json();
        if !same_chunks {
            return None; // before parsing the index, which is most of the work here
        }
        let mut index = VectorIndex::from_bytes(&self.index).ok()?;
        let built = index.params(); // the passage graph's own, as stored with it
        let same_graph = (built.ef_construction, built.seed) == (hnsw.ef_construction, hnsw.seed);
        if !same_graph || index.len() != passages.chunks.len() {
            return None;
        }
        index.set_ef_search(hnsw.ef_search).ok()?;
        Some(index)
    }
}

/// The embedder the catalogue and the passages are embedded with, as the manifest names it.
fn reference_embedder() -> String {
    format!("{EMBEDDING_MODEL} (f32)")
}

/// A llama-architecture GGUF (SmolLM2) to ship, and how to store it.
#[derive(Debug, Clone)]
pub struct GeneratorSource {
    pub gguf: Vec<u8>,
    pub model: String,
    /// Where the file came from, recorded in the manifest.
    pub source: String,
    /// Re-store its Q4_1 matrices in this type (candle has SIMD kernels for q4_0 and q8_0,
    /// natively and in wasm, but none for Q4_1); `None` ships the file as it is.
    pub requantize_q4_1_to: Option<GgmlDType>,
    /// A LoRA adapter file trained on `gguf` (`index-builder finetune`), shipped as its own
    /// part so that a browser keeps its cached generator when only the adapter changes.
    pub adapter: Option<Vec<u8>>,
    /// The Ask tab's reader adapter (`finetune --task ask`), shipped as an on-demand part
    /// when the bundle has passages.
    pub ask_adapter: Option<Vec<u8>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            hnsw: HnswParams::default(),
            batch_size: 32,
            embedder_dtype: GgmlDType::Q8_0,
            source: String::new(),
            columns: ColumnMapping::default(),
            attribution:
                "Movie data from TMDB (The Movie Database). This product uses the TMDB API \
                          but is not endorsed or certified by TMDB."
                    .into(),
            generator: None,
            passages: None,
            recs: None,
        }
    }
}

/// Receives progress; the CLI draws bars with it, tests ignore it.
pub trait Progress {
    /// A new stage begins; `total` is its number of steps when known.
    fn stage(&mut self, name: &str, total: Option<u64>);
    /// Steps of the current stage done so far.
    fn advance(&mut self, done: u64);
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn stage(&mut self, _: &str, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
}

/// Seconds spent per stage, for the build summary.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Whether the passage vectors were taken from the previous bundle instead of embedded.
    pub passages_reused: bool,
    pub load_model: f64,
    pub embed: f64,
    pub quantize_embedder: f64,
    pub build_index: f64,
    pub prepare_generator: f64,
    pub passages: f64,
}

pub fn build_bundle(
    catalogue: &Catalogue,
    model: &ModelFiles,
    options: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<(BundleFiles, Timings)> {
    if catalogue.is_empty() {
        return Err(Error::Catalogue("no usable rows: nothing to index".into()));
    }
    let mut timings = Timings::default();
    let clock = Instant::now();
    progress.stage("loading MiniLM", None);
    let config = BertConfig::from_json(&model.config_json)?;
    let weights = Weights::from_safetensors(&model.safetensors)?;
    let reference = Embedder::new(&weights, &config, &model.tokenizer_json)?;
    timings.load_model = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    progress.stage("embedding overviews", Some(catalogue.len() as u64));
    let embeddings = reference.embed_all(&catalogue.texts, options.batch_size, |done| {
        progress.advance(done as u64)
    })?;
    timings.embed = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    progress.stage("quantizing the embedder", None);
    let embedder_gguf = quantize_bert(&weights, &config, options.embedder_dtype)?;
    timings.quantize_embedder = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    progress.stage("building the HNSW graph", None);
    let index = VectorIndex::build(&embeddings, options.hnsw)?;
    timings.build_index = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let passages = match &options.passages {
        Some(source) => {
            let passages = qa::build::passages(
                &source.facts,
                &catalogue.movies,
                &reference,
                source.chunking,
            )?;
            let reused = source
                .previous
                .as_ref()
                .and_then(|previous| previous.vectors_for(&passages, options.hnsw));
            timings.passages_reused = reused.is_some();
            let index = match reused {
                Some(index) => index,
                None => {
                    progress.stage("embedding passages", Some(passages.chunks.len() as u64));
                    qa::build::embed_passages(
                        &passages,
                        &reference,
                        options.batch_size,
                        options.hnsw,
                        |done| progress.advance(done as u64),
                    )?
                }
            };
            Some((passages, index))
        }
        None => None,
    };
    timings.passages = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let generator = match &options.generator {
        Some(source) => {
            progress.stage("preparing the generator", None);
            Some(prepare_generator(source)?)
        }
        None => None,
    };
    timings.prepare_generator = clock.elapsed().as_secs_f64();

    // The reader adapter ships only with the passages it reads.
    let ask_adapter_ships = passages.is_some();
    let dtype = format!("{:?}", options.embedder_dtype).to_lowercase();
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        created_by: format!("index-builder (marquee {})", env!("CARGO_PKG_VERSION")),
        embedder: EmbedderInfo {
            model: EMBEDDING_MODEL.into(),
            dtype: dtype.clone(),
            catalogue_embedded_with: reference_embedder(),
            dim: reference.dim(),
            max_tokens: MAX_TOKENS,
            pooling: "mean over the attention mask, then L2 normalization".into(),
        },
        index: IndexInfo {
            count: index.len(),
            vectors: "int8, one f32 scale per vector".into(),
            hnsw: options.hnsw,
        },
        catalogue: CatalogueInfo {
            source: options.source.clone(),
            columns: options.columns.clone(),
            report: catalogue.report.clone(),
            attribution: options.attribution.clone(),
        },
        generator: generator.as_ref().map(|(info, _)| GeneratorInfo {
            ask_adapter: info.ask_adapter.clone().filter(|_| ask_adapter_ships),
            ..info.clone()
        }),
        parts: Vec::new(),
    };
    let movies = serde_json::to_vec(&catalogue.movies)
        .map_err(|e| Error::Catalogue(format!("cannot encode movies: {e}")))?;
    let mut bundle = BundleFiles::new(manifest);
    bundle.add(part::MOVIES, "movies.json", movies);
    bundle.add(part::INDEX, "index.bin", index.to_bytes()?);
    bundle.add(
        part::EMBEDDER,
        &format!("minilm-l6-{dtype}.gguf"),
        embedder_gguf,
    );
    bundle.add(
        part::TOKENIZER,
        "tokenizer.json",
        model.tokenizer_json.clone(),
    );
    if let Some((passages, index)) = passages {
        bundle.add_optional(part::PASSAGES, "passages.json", passages.to_json());
        bundle.add_optional(part::PASSAGE_INDEX, "passage-index.bin", index.to_bytes()?);
    }
    if let (Some((info, gguf)), Some(source)) = (generator, &options.generator) {
        let file = format!("generator-{}.gguf", info.dtype);
        bundle.add_optional(part::GENERATOR, &file, gguf);
        if let Some(adapter) = &source.adapter {
            bundle.add_optional(part::ADAPTER, "tagline-lora.safetensors", adapter.clone());
        }
        if let Some(adapter) = source.ask_adapter.as_ref().filter(|_| ask_adapter_ships) {
            bundle.add_optional(part::ASK_ADAPTER, "ask-lora.safetensors", adapter.clone());
        }
    }
    if let Some(recs) = &options.recs {
        crate::recommend::part::RecsPart::from_json(recs).map_err(|e| Error::PartDecode {
            part: part::RECS.into(),
            message: e.to_string(),
        })?;
        bundle.add_optional(part::RECS, "recs.json", recs.clone());
    }
    Ok((bundle, timings))
}

/// Re-stores the generator if asked, then loads it once, with each adapter applied, so a
/// bundle never ships a model or an adapter the engine cannot run.
fn prepare_generator(source: &GeneratorSource) -> Result<(GeneratorInfo, Vec<u8>)> {
    let (gguf, dtype, how) = match source.requantize_q4_1_to {
        Some(to) => {
            let name = format!("{to:?}").to_lowercase();
            let gguf = requantize_gguf(&source.gguf, GgmlDType::Q4_1, to)?;
            (
                gguf,
                name.clone(),
                format!("Q4_1 matrices re-stored as {name}"),
            )
        }
        None => (source.gguf.clone(), "as shipped".into(), "unchanged".into()),
    };
    let mut generator = Generator::from_llama_gguf(&gguf)?;
    let mut check = |bytes: &Option<Vec<u8>>| -> Result<Option<String>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let adapter = Adapter::read(bytes)?;
        adapter.check_base(&source.gguf)?;
        generator.set_adapter(Some(&adapter), AdapterMode::Apart)?;
        Ok(Some(adapter.describe()))
    };
    let info = GeneratorInfo {
        model: source.model.clone(),
        dtype,
        source: format!("{} ({how})", source.source),
        adapter: check(&source.adapter)?,
        ask_adapter: check(&source.ask_adapter)?,
    };
    Ok((info, gguf))
}
