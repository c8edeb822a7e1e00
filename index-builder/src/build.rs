//! `index-builder build`: reads the catalogue, runs the engine's bundle builder with progress
//! bars, writes the bundle and prints what it did.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use marquee::builder::{
    build_bundle, BuildOptions, GeneratorSource, ModelFiles, PassageSource, PreviousPassages,
    Progress,
};
use marquee::bundle::{self, part};
use marquee::catalogue::{Catalogue, ColumnMapping, Movie};
use marquee::embed::parse_gguf_dtype;
use marquee::index::HnswParams;
use marquee::qa::facts::read_tmdb;
use marquee::qa::ChunkParams;

use marquee::recommend::join;
use marquee::recommend::part::RecsPart;
use marquee::recommend::rank;

use crate::{movielens, paths};

#[derive(Args)]
pub struct BuildArgs {
    /// The catalogue CSV [default: $MARQUEE_CACHE/assets/tmdb/movies.csv]
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Directory with MiniLM's model.safetensors, config.json, tokenizer.json
    /// [default: $MARQUEE_CACHE/assets/minilm]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where to write the bundle [default: $MARQUEE_CACHE/bundle]
    #[arg(long, short)]
    out: Option<PathBuf>,

    /// Column with a unique id per movie.
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Column with the title.
    #[arg(long, default_value = "title")]
    title_column: String,
    /// Column(s) embedded for search, joined with ". " (repeat the flag for several).
    #[arg(long = "text-column", default_values = ["title", "overview"])]
    text_columns: Vec<String>,
    /// Column with the description shown to visitors ("" for none).
    #[arg(long, default_value = "overview")]
    overview_column: String,
    /// Column with the tagline ("" for none).
    #[arg(long, default_value = "tagline")]
    tagline_column: String,
    /// Column with a release date or year ("" for none).
    #[arg(long, default_value = "release_date")]
    date_column: String,
    /// Column with genres, as JSON or `|`/`,`-separated ("" for none).
    #[arg(long, default_value = "genres")]
    genres_column: String,

    /// Index only the first N usable rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Texts per embedding batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Storage of the embedder shipped to the browser: q8_0, q5_0, q4_0, f16 or f32.
    #[arg(long, default_value = "q8_0")]
    embedder_dtype: String,
    /// HNSW efConstruction.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// HNSW ef at search time: candidates kept and re-ranked.
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    ef_search: usize,
    /// The tagline generator (a llama-architecture GGUF) shipped in the bundle
    /// [default: $MARQUEE_CACHE/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long, conflicts_with = "no_generator")]
    generator: Option<PathBuf>,
    /// The generator's LoRA adapter, shipped as its own part, or `none` [default: the
    /// committed assets/adapters/tagline-lora.safetensors]
    #[arg(long, conflicts_with = "no_generator")]
    adapter: Option<paths::AdapterChoice>,
    /// The Ask tab's reader adapter, shipped as an on-demand part with the passages, or
    /// `none` [default: the committed assets/adapters/ask-lora.safetensors]
    #[arg(long)]
    ask_adapter: Option<paths::AdapterChoice>,
    /// Build a search-only bundle, without a generator.
    #[arg(long)]
    no_generator: bool,
    /// Re-store the generator's Q4_1 matrices as q4_0, q8_0... ("keep" ships them as they
    /// are; candle has no SIMD kernel for Q4_1).
    #[arg(long, default_value = "q4_0")]
    generator_dtype: String,
    /// TMDB's credits file, joined with the catalogue (which must then be TMDB's movies file)
    /// into the Ask tab's passages [default: $MARQUEE_CACHE/assets/tmdb/credits.csv when the
    /// catalogue is the default one]
    #[arg(long, conflicts_with = "no_passages")]
    credits: Option<PathBuf>,
    /// Build no passages (the bundle then has no Ask tab).
    #[arg(long)]
    no_passages: bool,
    /// Embed the passages even when the bundle in --out already holds the same chunks
    /// (by default their vectors are reused: embedding them takes most of a build).
    #[arg(long, conflicts_with = "no_passages")]
    reembed_passages: bool,
    /// Another bundle whose passage vectors may be reused (when its chunks are the same)
    /// [default: the bundle in --out]
    #[arg(long, conflicts_with_all = ["no_passages", "reembed_passages"])]
    reuse_passages_from: Option<PathBuf>,
    /// Passage chunks: window size in MiniLM tokens.
    #[arg(long, default_value_t = ChunkParams::default().size)]
    chunk_size: usize,
    /// Passage chunks: tokens shared by consecutive windows.
    #[arg(long, default_value_t = ChunkParams::default().overlap)]
    chunk_overlap: usize,
    /// MovieLens 100K directory the recommender's part is derived from (neighbour lists and
    /// rating counts, no ratings) [default: $MARQUEE_CACHE/assets/movielens when the
    /// catalogue is the default one]
    #[arg(long, conflicts_with = "no_recs")]
    movielens: Option<PathBuf>,
    /// Build without the recommender's part (the page then has no Recommend data).
    #[arg(long)]
    no_recs: bool,
    /// Seed for the HNSW layer assignment.
    #[arg(long, default_value_t = HnswParams::default().seed)]
    seed: u64,
}

fn optional(column: &str) -> Option<String> {
    (!column.is_empty()).then(|| column.to_string())
}

/// An adapter file's bytes, or none.
fn file_of(choice: paths::AdapterChoice) -> anyhow::Result<Option<Vec<u8>>> {
    match choice {
        paths::AdapterChoice::File(path) => Ok(Some(read(&path)?)),
        paths::AdapterChoice::None => Ok(None),
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {} (run scripts/fetch_assets.py first?)",
            path.display()
        )
    })
}

pub const SMOLLM2_FILE: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn generator_source(args: &BuildArgs) -> anyhow::Result<Option<GeneratorSource>> {
    if args.no_generator {
        return Ok(None);
    }
    let path = paths::generator(args.generator.clone());
    let requantize_q4_1_to = match args.generator_dtype.as_str() {
        "keep" => None,
        other => Some(parse_gguf_dtype(other)?),
    };
    let is_smollm2 = path.ends_with(SMOLLM2_FILE);
    Ok(Some(GeneratorSource {
        gguf: read(&path)?,
        model: if is_smollm2 {
            "HuggingFaceTB/SmolLM2-135M-Instruct".into()
        } else {
            path.file_stem()
                .map_or_else(String::new, |n| n.to_string_lossy().into())
        },
        source: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into()),
        requantize_q4_1_to,
        adapter: file_of(paths::AdapterChoice::or_default(args.adapter.clone()))?,
        ask_adapter: file_of(paths::AdapterChoice::or_ask_default(
            args.ask_adapter.clone(),
        ))?,
    }))
}

/// The facts behind the Ask tab's passages: the catalogue (as TMDB's movies file) joined
/// with the credits file, when there is one.
fn passage_source(
    args: &BuildArgs,
    catalogue: &Path,
    out: &Path,
) -> anyhow::Result<Option<PassageSource>> {
    let credits = match (&args.credits, args.catalogue.is_none()) {
        _ if args.no_passages => return Ok(None),
        (Some(path), _) => path.clone(),
        (None, true) => paths::assets_dir().join("tmdb/credits.csv"),
        (None, false) => return Ok(None),
    };
    let open = |path: &Path| {
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (facts, report) = read_tmdb(open(catalogue)?, open(&credits)?).with_context(|| {
        format!(
            "cannot join {} with {}",
            catalogue.display(),
            credits.display()
        )
    })?;
    println!(
        "facts: {} movies, {} with credits, {} credits rows unreadable",
        report.movies, report.with_credits, report.bad_credits
    );
    Ok(Some(PassageSource {
        facts,
        chunking: ChunkParams {
            size: args.chunk_size,
            overlap: args.chunk_overlap,
        },
        previous: if args.reembed_passages {
            None
        } else {
            previous_passages(args.reuse_passages_from.as_deref().unwrap_or(out))
        },
    }))
}

/// The passage parts of the bundle already in `out`, if it has intact ones (the builder
/// reuses their vectors only if its chunks are the same). Anything missing or damaged just
/// means embedding again.
fn previous_passages(out: &Path) -> Option<PreviousPassages> {
    let manifest = bundle::read_manifest(out).ok()?;
    let passages_json = bundle::read_part(out, &manifest, part::PASSAGES).ok()?;
    let index = bundle::read_part(out, &manifest, part::PASSAGE_INDEX).ok()?;
    Some(PreviousPassages {
        manifest,
        passages_json,
        index,
    })
}

/// The recommender's part from MovieLens, its titles joined to the catalogue being built
/// (so its TMDB ids point into this bundle's movies).
fn recs_part(args: &BuildArgs, catalogue: &[Movie]) -> anyhow::Result<Option<Vec<u8>>> {
    // Another catalogue gets the part only when asked for with --movielens: MovieLens holds
    // ratings of movies, and joins to a catalogue of something else would find nothing.
    if args.no_recs || (args.movielens.is_none() && args.catalogue.is_some()) {
        return Ok(None);
    }
    let dataset = movielens::load(args.movielens.as_deref())
        .context("the recommender's part needs MovieLens 100K (or pass --no-recs)")?;
    let joined = movielens::Joined {
        join: join::join(&dataset.movies, catalogue),
        tmdb: catalogue.to_vec(),
    };
    let part = RecsPart::build(&dataset, &joined.join, &joined.tmdb, rank::PAGE_NEIGHBOURS)?;
    println!("recs part: {}", joined.summary());
    Ok(Some(part.to_json()?))
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let catalogue_path = args
        .catalogue
        .clone()
        .unwrap_or_else(|| paths::assets_dir().join("tmdb/movies.csv"));
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(|| paths::assets_dir().join("minilm"));
    let out = args.out.clone().unwrap_or_else(crate::default_bundle_dir);

    let columns = ColumnMapping {
        id: args.id_column.clone(),
        title: args.title_column.clone(),
        text: args.text_columns.clone(),
        overview: optional(&args.overview_column),
        tagline: optional(&args.tagline_column),
        date: optional(&args.date_column),
        genres: optional(&args.genres_column),
    };
    let mut catalogue = Catalogue::from_path(&catalogue_path, &columns)
        .with_context(|| format!("cannot load the catalogue {}", catalogue_path.display()))?;
    if let Some(limit) = args.limit {
        catalogue.truncate(limit);
    }
    let model = ModelFiles {
        safetensors: read(&model_dir.join("model.safetensors"))?,
        config_json: read(&model_dir.join("config.json"))?,
        tokenizer_json: read(&model_dir.join("tokenizer.json"))?,
    };
    let options = BuildOptions {
        hnsw: HnswParams {
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
            seed: args.seed,
        },
        batch_size: args.batch_size,
        embedder_dtype: parse_gguf_dtype(&args.embedder_dtype)?,
        source: catalogue_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into()),
        columns,
        generator: generator_source(&args)?,
        passages: passage_source(&args, &catalogue_path, &out)?,
        recs: recs_part(&args, &catalogue.movies)?,
        ..BuildOptions::default()
    };

    let mut bars = Bars::default();
    let (bundle, timings) = build_bundle(&catalogue, &model, &options, &mut bars)?;
    bars.finish();
    bundle
        .write_dir(&out)
        .with_context(|| format!("cannot write the bundle to {}", out.display()))?;

    let report = &catalogue.report;
    println!("bundle written to {}", out.display());
    println!(
        "rows: {} read, {} kept, {} skipped{}",
        report.rows_read,
        report.rows_kept,
        report.rows_skipped(),
        args.limit
            .map_or_else(String::new, |n| format!(" (indexing the first {n})"))
    );
    for (reason, count) in &report.skipped {
        println!("  skipped {count:>5}: {reason}");
    }
    for (line, reason) in report.examples.iter().take(3) {
        println!("  e.g. line {line}: {reason}");
    }
    let m = &bundle.manifest;
    println!(
        "vectors: {} x {} dims, {} search candidates re-ranked",
        m.index.count, m.embedder.dim, m.index.hnsw.ef_search
    );
    for part in &m.parts {
        println!(
            "  {:<10} {:<24} {:>12} bytes",
            part.name, part.file, part.bytes
        );
    }
    println!("  {:<10} {:<24} {:>12} bytes", "total", "", m.total_bytes());
    let per_second = catalogue.len() as f64 / timings.embed.max(1e-9);
    println!(
        "seconds: load model {:.1}, embed {:.1} ({per_second:.0} texts/s), quantize embedder {:.1}, \
         HNSW {:.1}, passages {:.1}{}, generator {:.1}; total {:.1}",
        timings.load_model,
        timings.embed,
        timings.quantize_embedder,
        timings.build_index,
        timings.passages,
        if timings.passages_reused {
            " (vectors reused from the previous bundle: same chunks)"
        } else {
            ""
        },
        timings.prepare_generator,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// indicatif bars for the engine's progress reports (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bars {
    current: Option<ProgressBar>,
}

impl Bars {
    fn finish(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.finish();
        }
    }
}

impl Progress for Bars {
    fn stage(&mut self, name: &str, total: Option<u64>) {
        self.finish();
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:<24} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => {
                let spinner = ProgressBar::new_spinner();
                spinner.enable_steady_tick(Duration::from_millis(120));
                spinner
            }
        };
        bar.set_message(name.to_string());
        self.current = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.current {
            bar.set_position(done);
        }
    }
}
