//! The native peers, run by the engine benchmark beside each of our figures in the same
//! process's run: `bench/native/peer.py` in the venv scripts/bench-setup makes
//! (sentence-transformers for embedding, faiss-cpu for search). Inputs go through files in
//! a temporary directory; the peer answers with one JSON object.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Results compared per query.
pub const K: usize = 10;

pub struct Peers {
    python: PathBuf,
    script: PathBuf,
    dir: PathBuf,
}

impl Peers {
    /// The peers' venv, or why it cannot be used.
    pub fn find(cache: &Path) -> Result<Self, String> {
        let python = cache.join("peers/venv/bin/python");
        if !python.exists() {
            return Err(format!(
                "{} is missing: run scripts/bench-setup first (it installs the peers), or set \
                 MARQUEE_BENCH_NO_PEERS=1 to measure ours alone",
                python.display()
            ));
        }
        let dir = std::env::temp_dir().join(format!("marquee-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            python,
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/native/peer.py"),
            dir,
        })
    }

    fn run(&self, args: &[String]) -> Value {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .output()
            .expect("runs the peer");
        assert!(
            out.status.success(),
            "peer {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the peer prints JSON")
    }

    /// sentence-transformers embedding `texts` as the builder does (batch, threads).
    pub fn embed(&self, texts: &[String], batch: usize, threads: usize) -> Value {
        let path = self.dir.join("texts.json");
        std::fs::write(&path, serde_json::to_vec(texts).expect("json")).expect("writes texts");
        self.run(&[
            "embed".into(),
            format!("--texts={}", path.display()),
            format!("--batch={batch}"),
            format!("--threads={threads}"),
        ])
    }

    /// faiss-cpu: flat search and HNSW (M 32) built at each `ef_construction`, searched at
    /// each `ef_search`, over `base`; recall against `truths` (exact top-K per query set).
    pub fn search(
        &self,
        base: &[Vec<f32>],
        query_sets: &[&[Vec<f32>]],
        truths: &[Vec<[u32; K]>],
        threads: usize,
        ef_construction: &[usize],
        ef_search: &[usize],
    ) -> Value {
        let base_path = self.write_f32("base.f32", base);
        let (mut queries, mut truth_paths) = (Vec::new(), Vec::new());
        for (i, (set, truth)) in query_sets.iter().zip(truths).enumerate() {
            queries.push(self.write_f32(&format!("queries{i}.f32"), set));
            let path = self.dir.join(format!("truth{i}.i32"));
            let mut file = std::fs::File::create(&path).expect("creates truth file");
            for id in truth.iter().flatten() {
                file.write_all(&(*id as i32).to_le_bytes()).expect("writes");
            }
            truth_paths.push(path.display().to_string());
        }
        let list = |xs: &[usize]| {
            xs.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        self.run(&[
            "search".into(),
            format!("--base={base_path}"),
            format!("--queries={}", queries.join(",")),
            format!("--truth={}", truth_paths.join(",")),
            format!("--threads={threads}"),
            format!("--ef-construction={}", list(ef_construction)),
            format!("--ef-search={}", list(ef_search)),
        ])
    }

    fn write_f32(&self, name: &str, vectors: &[Vec<f32>]) -> String {
        let path = self.dir.join(name);
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(&path, bytes).expect("writes vectors");
        path.display().to_string()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The exact top-K of each query by f32 cosine (inner product of normalized vectors): the
/// ground truth both our search and FAISS's are scored against.
pub fn exact_top_k(base: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<[u32; K]> {
    use rayon::prelude::*;
    queries
        .par_iter()
        .map(|q| {
            let mut scored: Vec<(f32, u32)> = base
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u32))
                .collect();
            scored.select_nth_unstable_by(K - 1, |a, b| b.0.total_cmp(&a.0));
            let mut top = [0u32; K];
            let mut best = scored[..K].to_vec();
            best.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (slot, (_, i)) in top.iter_mut().zip(best) {
                *slot = i;
            }
            top
        })
        .collect()
}

/// Share of the truth's ids found, over all queries.
pub fn recall(found: &[Vec<usize>], truth: &[[u32; K]]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|&&i| t.contains(&(i as u32))).count())
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

/// One search setting measured on one query set.
#[derive(Clone, Debug)]
pub struct Setting {
    pub name: String,
    pub ms: f64,
    pub recall: f64,
}

/// The fastest setting that reaches `bar` on this set.
pub fn fastest(points: &[Setting], bar: f64) -> Option<&Setting> {
    points
        .iter()
        .filter(|p| p.recall >= bar)
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
}

/// The fastest setting, by mean time over the sets, that reaches `bar` on every set (the
/// same names in each): one setting for every kind of query, as a product has to pick.
/// Returns it with its mean time and its lowest recall.
pub fn fastest_everywhere(sets: &[Vec<Setting>], bar: f64) -> Option<Setting> {
    let first = sets.first()?;
    first
        .iter()
        .filter_map(|candidate| {
            let same: Vec<&Setting> = sets
                .iter()
                .map(|set| set.iter().find(|p| p.name == candidate.name))
                .collect::<Option<_>>()?;
            let recall = same.iter().map(|p| p.recall).fold(f64::INFINITY, f64::min);
            (recall >= bar).then(|| Setting {
                name: candidate.name.clone(),
                ms: same.iter().map(|p| p.ms).sum::<f64>() / same.len() as f64,
                recall,
            })
        })
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
}
