//! Default locations, shared with scripts/fetch_assets.py: everything large lives under
//! $MARQUEE_CACHE (default ~/.cache/marquee), never in the repository.

use std::path::PathBuf;

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
