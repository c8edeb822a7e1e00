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
