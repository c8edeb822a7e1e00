//! The bundle: what `index-builder build` writes and the page loads. A directory of files:
//! `manifest.json` (format version, model ids, sizes, counts, the sha256 of every part) and
//! one file per part. Parts are separate files so a browser can cache each by its hash: a
//! rebuilt index does not make visitors download the embedder again.
//!
//! Reading goes through bytes (`Manifest::from_json`, `Manifest::verify_part`), so the same
//! checks run natively and in wasm, whichever way the bytes arrived.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalogue::{ColumnMapping, LoadReport};
use crate::error::{Error, Result};
use crate::index::HnswParams;

pub const FORMAT: &str = "marquee-bundle";
/// Bump on any change a reader of the previous version would misread.
pub const FORMAT_VERSION: u32 = 3;
pub const MANIFEST_FILE: &str = "manifest.json";

/// Names of the parts this build knows. A bundle may carry others: optional ones this
/// reader does not know are ignored (a newer builder's additions), required ones are an
/// error naming them, so adding an optional part needs no format-version bump.
pub mod part {
    /// JSON list of movies, in index order.
    pub const MOVIES: &str = "movies";
    /// postcard-encoded HNSW graph with its int8 vectors.
    pub const INDEX: &str = "index";
    /// The quantized MiniLM, GGUF.
    pub const EMBEDDER: &str = "embedder";
    /// MiniLM's tokenizer.json.
    pub const TOKENIZER: &str = "tokenizer";
    /// The tagline generator, GGUF (optional: a search-only bundle has none).
    pub const GENERATOR: &str = "generator";
    /// The parts every bundle has.
    pub const ALL: [&str; 4] = [MOVIES, INDEX, EMBEDDER, TOKENIZER];
    /// The generator's LoRA adapter for taglines (safetensors, `generate::adapter`).
    pub const ADAPTER: &str = "adapter";
    /// The Ask tab's reader adapter (the same format), fetched with the passages.
    pub const ASK_ADAPTER: &str = "ask-adapter";
    /// The Ask tab's documents and chunks (JSON, `qa::Passages`).
    pub const PASSAGES: &str = "passages";
    /// The chunks' MiniLM vectors (the `index` part's format).
    pub const PASSAGE_INDEX: &str = "passage-index";
    /// The recommender's data (`recommend::part`, JSON): MovieLens titles, each movie's
    /// nearest movies and rating counts, never a rating.
    pub const RECS: &str = "recs";
    /// The optional parts this build knows.
    pub const OPTIONAL: [&str; 6] = [
        GENERATOR,
        ADAPTER,
        ASK_ADAPTER,
        PASSAGES,
        PASSAGE_INDEX,
        RECS,
    ];
    /// Optional parts a reader fetches only when a view first needs them (the Ask and
    /// Recommend tabs'), so the tagline page's first load does not grow with every job the
    /// bundle carries.
    pub const ON_DEMAND: [&str; 4] = [PASSAGES, PASSAGE_INDEX, ASK_ADAPTER, RECS];

    /// Whether this build knows a part called `name`.
    pub fn is_known(name: &str) -> bool {
        ALL.contains(&name) || OPTIONAL.contains(&name)
    }

    /// Whether a part is fetched on demand rather than at load.
    pub fn is_on_demand(name: &str) -> bool {
        ON_DEMAND.contains(&name)
    }

    /// The view (page tab) an on-demand part is fetched for: "ask" or "recommend".
    pub fn view_of(name: &str) -> Option<&'static str> {
        match name {
            PASSAGES | PASSAGE_INDEX | ASK_ADAPTER => Some("ask"),
            RECS => Some("recommend"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_by: String,
    pub embedder: EmbedderInfo,
    pub index: IndexInfo,
    pub catalogue: CatalogueInfo,
    /// Present when the bundle carries a generator part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorInfo>,
    pub parts: Vec<PartInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub model: String,
    /// Storage type of its matrices as shipped (q4_0, ...).
    pub dtype: String,
    /// Where it came from and how it was converted, for the attribution.
    pub source: String,
    /// The LoRA adapter shipped beside it (the `adapter` part), described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// The Ask tab's reader adapter (the `ask-adapter` part), described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_adapter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedderInfo {
    /// The model the vectors come from; queries must be embedded by the same one.
    pub model: String,
    /// Storage type of the shipped embedder's matrices (q8_0, ...).
    pub dtype: String,
    /// The model that embedded the catalogue (the f32 original, normally).
    pub catalogue_embedded_with: String,
    pub dim: usize,
    pub max_tokens: usize,
    pub pooling: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexInfo {
    pub count: usize,
    pub vectors: String,
    pub hnsw: HnswParams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogueInfo {
    pub source: String,
    pub columns: ColumnMapping,
    pub report: LoadReport,
    pub attribution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    pub name: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Whether a reader must know this part to use the bundle (see [`part`]). Manifests
    /// written before the field existed hold only parts their readers know.
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

/// A part's size and sha256, fed piece by piece (the page checks the generator's bytes
/// without copying them all into the wasm heap).
#[derive(Default)]
pub struct PartDigest {
    hasher: Sha256,
    bytes: u64,
}

impl PartDigest {
    pub fn update(&mut self, piece: &[u8]) {
        self.hasher.update(piece);
        self.bytes += piece.len() as u64;
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Parses a manifest, checking the format name and version before anything else so an
    /// old or newer bundle gets a version error, not a confusing field error.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Manifest(format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Error::Manifest(format!("not a {FORMAT} manifest")));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(Error::BundleVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let manifest: Self =
            serde_json::from_value(value).map_err(|e| Error::Manifest(e.to_string()))?;
        for name in part::ALL {
            manifest.part(name)?;
        }
        if manifest.generator.is_some() {
            manifest.part(part::GENERATOR)?;
        }
        if let Some(unknown) = manifest
            .parts
            .iter()
            .find(|p| p.required && !part::is_known(&p.name))
        {
            return Err(Error::Manifest(format!(
                "the bundle requires a part {:?} that this build does not know; update the page \
                 or the CLI to read it",
                unknown.name
            )));
        }
        Ok(manifest)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn part(&self, name: &str) -> Result<&PartInfo> {
        self.parts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::MissingPart {
                part: name.to_string(),
            })
    }

    /// An optional part, if the bundle has it.
    pub fn optional_part(&self, name: &str) -> Option<&PartInfo> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// The parts this build reads (what a browser should fetch): unknown optional parts
    /// are left out.
    pub fn known_parts(&self) -> impl Iterator<Item = &PartInfo> {
        self.parts.iter().filter(|p| part::is_known(&p.name))
    }

    /// Checks that `bytes` are exactly the part the manifest describes: size, then sha256.
    pub fn verify_part(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut digest = PartDigest::default();
        digest.update(bytes);
        self.verify_digest(name, digest)
    }

    /// [`Manifest::verify_part`] for bytes read piece by piece.
    pub fn verify_digest(&self, name: &str, digest: PartDigest) -> Result<()> {
        let info = self.part(name)?;
        if digest.bytes != info.bytes {
            return Err(Error::PartSize {
                part: name.to_string(),
                expected: info.bytes,
                actual: digest.bytes,
            });
        }
        let actual = hex::encode(digest.hasher.finalize());
        if actual != info.sha256 {
            return Err(Error::PartHash {
                part: name.to_string(),
                expected: info.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// A bundle in memory, as the builder produces it.
pub struct BundleFiles {
    pub manifest: Manifest,
    pub parts: Vec<(PartInfo, Vec<u8>)>,
}

impl BundleFiles {
    /// Starts a bundle; `manifest.parts` is filled in by [`BundleFiles::add`].
    pub fn new(mut manifest: Manifest) -> Self {
        manifest.parts.clear();
        Self {
            manifest,
            parts: Vec::new(),
        }
    }

    /// Adds a part every reader must know.
    pub fn add(&mut self, name: &str, file: &str, bytes: Vec<u8>) {
        self.add_part(name, file, bytes, true);
    }

    /// Adds a part readers that do not know it may ignore.
    pub fn add_optional(&mut self, name: &str, file: &str, bytes: Vec<u8>) {
        self.add_part(name, file, bytes, false);
    }

    fn add_part(&mut self, name: &str, file: &str, bytes: Vec<u8>, required: bool) {
        let info = PartInfo {
            name: name.to_string(),
            file: file.to_string(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            required,
        };
        self.manifest.parts.push(info.clone());
        self.parts.push((info, bytes));
    }

    pub fn part_bytes(&self, name: &str) -> Option<&[u8]> {
        self.parts
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Writes every part, then the manifest (so a half-written bundle has no manifest that
    /// vouches for it).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let manifest_path = dir.join(MANIFEST_FILE);
        if manifest_path.exists() {
            std::fs::remove_file(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        }
        for (info, bytes) in &self.parts {
            let path = dir.join(&info.file);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        std::fs::write(&tmp, self.manifest.to_json()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &manifest_path).map_err(|e| Error::io(&manifest_path, e))
    }
}

/// Reads a bundle directory's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Manifest::from_json(&bytes)
}

/// Reads and verifies one part of a bundle directory.
pub fn read_part(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    let info = manifest.part(name)?;
    if info.file.contains(['/', '\\']) || info.file.starts_with('.') {
        return Err(Error::Manifest(format!(
            "part file name {:?} is not a plain name",
            info.file
        )));
    }
    let path = dir.join(&info.file);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    manifest.verify_part(name, &bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_by: "test".into(),
            embedder: EmbedderInfo {
                model: "m".into(),
                dtype: "q8_0".into(),
                catalogue_embedded_with: "f32".into(),
                dim: 4,
                max_tokens: 256,
                pooling: "mean".into(),
            },
            index: IndexInfo {
                count: 0,
                vectors: "i8".into(),
                hnsw: HnswParams::default(),
            },
            catalogue: CatalogueInfo {
                source: "x.csv".into(),
                columns: ColumnMapping::default(),
                report: LoadReport::default(),
                attribution: String::new(),
            },
            generator: None,
            parts: Vec::new(),
        }
    }

    fn sample_bundle() -> BundleFiles {
        let mut b = BundleFiles::new(sample_manifest());
        for name in part::ALL {
            b.add(name, &format!("{name}.bin"), name.as_bytes().repeat(10));
        }
        b
    }

    #[test]
    fn manifest_round_trips_and_parts_verify() {
        let b = sample_bundle();
        let m = Manifest::from_json(&b.manifest.to_json()).expect("parses");
        assert_eq!(m, b.manifest);
        for (info, bytes) in &b.parts {
            m.verify_part(&info.name, bytes).expect("verifies");
        }
    }

    #[test]
    fn wrong_version_is_named_in_the_error() {
        let mut m = sample_bundle().manifest;
        m.version = 99;
        let err = Manifest::from_json(&m.to_json()).expect_err("rejects");
        assert!(matches!(
            err,
            Error::BundleVersion {
                found: 99,
                expected: FORMAT_VERSION
            }
        ));
        assert!(err.to_string().contains("version 99"));
        assert!(Manifest::from_json(b"{\"format\":\"other\"}").is_err());
        assert!(Manifest::from_json(b"not json").is_err());
    }

    #[test]
    fn corrupted_or_truncated_parts_are_rejected() {
        let b = sample_bundle();
        let mut bytes = b.part_bytes(part::INDEX).expect("part").to_vec();
        bytes[3] ^= 1;
        let err = b
            .manifest
            .verify_part(part::INDEX, &bytes)
            .expect_err("hash");
        assert!(matches!(err, Error::PartHash { .. }), "{err}");
        let err = b
            .manifest
            .verify_part(part::INDEX, &bytes[1..])
            .expect_err("size");
        assert!(matches!(err, Error::PartSize { .. }), "{err}");
    }

    #[test]
    fn unknown_optional_parts_are_ignored_and_unknown_required_ones_refused() {
        let mut b = sample_bundle();
        b.add_optional("subtitles", "subtitles.bin", b"later".to_vec());
        let m = Manifest::from_json(&b.manifest.to_json()).expect("an older reader reads it");
        assert!(m.optional_part("subtitles").is_some());
        assert!(m.known_parts().all(|p| p.name != "subtitles"));
        assert_eq!(m.known_parts().count(), part::ALL.len());
        b.add_optional(part::PASSAGES, "passages.json", b"[]".to_vec());
        let m = Manifest::from_json(&b.manifest.to_json()).expect("readable");
        assert!(m.known_parts().any(|p| p.name == part::PASSAGES));
        assert!(
            part::is_on_demand(part::PASSAGES),
            "fetched when the tab opens"
        );
        b.add("ratings", "ratings.bin", b"needed".to_vec());
        let err = Manifest::from_json(&b.manifest.to_json()).expect_err("refused");
        assert!(err.to_string().contains("ratings"), "{err}");
        // A manifest written before `required` existed reads its parts as required.
        let old = String::from_utf8(sample_bundle().manifest.to_json())
            .expect("utf-8")
            .replace("\"required\": true,", "")
            .replace(",\n      \"required\": true", "");
        assert!(!old.contains("required"), "{old}");
        let m = Manifest::from_json(old.as_bytes()).expect("parses");
        assert!(m.parts.iter().all(|p| p.required));
    }

    #[test]
    fn a_manifest_missing_a_part_is_rejected() {
        let mut m = sample_bundle().manifest;
        m.parts.retain(|p| p.name != part::TOKENIZER);
        let err = Manifest::from_json(&m.to_json()).expect_err("rejects");
        assert!(matches!(err, Error::MissingPart { .. }));
    }

    #[test]
    fn directory_round_trip_and_path_escape() {
        let dir = std::env::temp_dir().join(format!("marquee-bundle-{}", std::process::id()));
        let b = sample_bundle();
        b.write_dir(&dir).expect("writes");
        let m = read_manifest(&dir).expect("reads");
        assert_eq!(
            read_part(&dir, &m, part::MOVIES).expect("part"),
            b"movies".repeat(10)
        );
        let mut evil = m.clone();
        evil.parts[0].file = "../etc/passwd".into();
        assert!(read_part(&dir, &evil, &evil.parts[0].name.clone()).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_on_demand_part_names_its_view_and_no_other_part_does() {
        for name in part::ON_DEMAND {
            assert!(part::is_known(name) && !part::ALL.contains(&name), "{name}");
            assert!(part::view_of(name).is_some(), "{name}");
        }
        for name in part::ALL.iter().chain(&[part::GENERATOR, part::ADAPTER]) {
            assert_eq!(part::view_of(name), None, "{name}");
        }
        assert_eq!(part::view_of(part::ASK_ADAPTER), Some("ask"));
        assert_eq!(part::view_of(part::RECS), Some("recommend"));
    }

    #[test]
    fn the_recs_part_is_known_optional_and_on_demand() {
        let mut b = sample_bundle();
        b.add_optional(part::RECS, "recs.json", b"{}".to_vec());
        let m = Manifest::from_json(&b.manifest.to_json()).expect("parses");
        assert!(m.known_parts().any(|p| p.name == part::RECS));
        assert!(part::is_on_demand(part::RECS));
        assert!(part::ALL.iter().all(|name| !part::is_on_demand(name)));
        // A bundle without it is still whole: the page then has no Recommend data.
        assert!(Manifest::from_json(&sample_bundle().manifest.to_json()).is_ok());
    }
}
