//! Default locations, shared with scripts/fetch_assets.py: everything large lives under
//! $MARQUEE_CACHE (default ~/.cache/marquee), never in the repository.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARQUEE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("marquee")
}

pub fn assets_dir() -> PathBuf {
    cache_dir().join("assets")
}

/// The generator GGUF's path: `path`, else SmolLM2 from the asset cache.
pub fn generator(path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(|| assets_dir().join(crate::build::SMOLLM2_FILE))
}

/// The bytes of the generator GGUF at `path`, with an error saying how to get it.
pub fn read_generator(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {} (run scripts/fetch_assets.py?)",
            path.display()
        )
    })
}

/// The tagline adapter committed with the repository: what `scripts/train-adapters` writes
/// for the default catalogue (its sha256 is in assets/sources.toml).
pub fn committed_adapter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/adapters/tagline-lora.safetensors")
}

/// The Ask tab's reader adapter (what `scripts/train-adapters ask` writes).
pub fn committed_ask_adapter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/adapters/ask-lora.safetensors")
}

/// The same training on prompts without examples, committed for the evaluation only (what
/// `scripts/train-adapters none` writes): does training with retrieved examples teach the
/// model to use them?
pub fn committed_no_examples_adapter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/adapters/tagline-lora-no-examples.safetensors")
}

/// `--adapter`: a LoRA adapter file, or `none` for the base model.
#[derive(Clone, Debug)]
pub enum AdapterChoice {
    File(PathBuf),
    None,
}

impl std::str::FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => AdapterChoice::None,
            path => AdapterChoice::File(PathBuf::from(path)),
        })
    }
}

impl AdapterChoice {
    /// `arg`, else the committed adapter.
    pub fn or_default(arg: Option<AdapterChoice>) -> AdapterChoice {
        arg.unwrap_or_else(|| AdapterChoice::File(committed_adapter()))
    }

    /// `arg`, else the committed reader adapter.
    pub fn or_ask_default(arg: Option<AdapterChoice>) -> AdapterChoice {
        arg.unwrap_or_else(|| AdapterChoice::File(committed_ask_adapter()))
    }

    /// The adapter, read and checked against the base model it was trained on (the bytes
    /// of the generator file it will be applied to, or of the file that was re-stored).
    pub fn read(&self, base_model: &[u8]) -> anyhow::Result<Option<marquee::generate::Adapter>> {
        let AdapterChoice::File(path) = self else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the adapter {} (train one with `index-builder finetune`, or pass --adapter none)",
                path.display()
            )
        })?;
        let adapter = marquee::generate::Adapter::read(&bytes)
            .with_context(|| format!("cannot use the adapter {}", path.display()))?;
        adapter
            .check_base(base_model)
            .with_context(|| format!("cannot use the adapter {}", path.display()))?;
        Ok(Some(adapter))
    }
}
