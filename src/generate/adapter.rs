//! LoRA adapters at inference, natively and in wasm: the file `index-builder finetune`
//! writes (format and version declared here, the training side's `train::file` writes them),
//! read into low-rank updates that the generator adds beside its quantized matrices.
//!
//! Kept apart rather than merged into the weights: merging means requantizing each adapted
//! matrix, and a rank-8 update is of the order of q4_0's own rounding error, so much of what
//! training learned would be rounded away (docs/evaluation.md measures both); apart, the
//! update costs 2·rank·(in + out) multiply-adds per row and matrix, under 1 % of a token.

use std::collections::HashMap;

use candle_core::{DType, Device};
use serde::Deserialize;

use crate::error::{Error, Result};

/// How a generator applies an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterMode {
    /// Beside the quantized weights, added at every matmul (what ships; see above).
    #[default]
    Apart,
    /// Merged into the weights and requantized to their format at load (for good: it
    /// cannot be taken off again). For measuring what merging costs.
    Merged,
}

/// The adapter files' format name and version, in their safetensors metadata.
pub const FORMAT: &str = "marquee-lora";
pub const VERSION: u32 = 1;

fn bad(message: impl std::fmt::Display) -> Error {
    Error::ModelFile(format!("adapter file: {message}"))
}

/// The metadata every adapter file (and training checkpoint) carries.
pub struct Header {
    pub metadata: HashMap<String, String>,
    /// The base model it was trained on: its file name and sha256.
    pub base_model: String,
}

/// Reads and checks an adapter file's metadata: the format, its version, the base model.
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let field = |key: &str| {
        metadata
            .get(key)
            .cloned()
            .ok_or_else(|| bad(format!("no {key:?} in its metadata")))
    };
    let format = field("format")?;
    if format != FORMAT {
        return Err(bad(format!("its format is {format:?}, not {FORMAT:?}")));
    }
    let version = field("version")?;
    if version != VERSION.to_string() {
        return Err(bad(format!(
            "version {version} (this build reads version {VERSION})"
        )));
    }
    let base_model = field("base_model")?;
    Ok(Header {
        metadata,
        base_model,
    })
}

/// `y += scale · B (A x)` for one matrix: `A` rank × in, `B` out × rank.
#[derive(Clone)]
pub struct LowRank {
    /// `A` transposed (in × rank), so the inner loop runs over the rank: `rank` independent
    /// sums, each in the order of `x`, whatever the CPU vectorizes.
    a_t: Vec<f32>,
    b: Vec<f32>,
    rank: usize,
    inp: usize,
    out: usize,
    scale: f32,
}

impl LowRank {
    /// (out, in) of the matrix it adapts.
    pub fn dims(&self) -> (usize, usize) {
        (self.out, self.inp)
    }

    /// Adds the update of each row of `x` (rows × in) to the row of `y` (rows × out).
    pub fn add_to(&self, x: &[f32], y: &mut [f32]) {
        let mut t = vec![0.0f32; self.rank];
        for (x, y) in x.chunks_exact(self.inp).zip(y.chunks_exact_mut(self.out)) {
            t.iter_mut().for_each(|v| *v = 0.0);
            for (&xi, a) in x.iter().zip(self.a_t.chunks_exact(self.rank)) {
                for (v, &a) in t.iter_mut().zip(a) {
                    *v += a * xi;
                }
            }
            for (y, b) in y.iter_mut().zip(self.b.chunks_exact(self.rank)) {
                let mut sum = 0.0f32;
                for (&b, &v) in b.iter().zip(&t) {
                    sum += b * v;
                }
                *y += self.scale * sum;
            }
        }
    }

    /// The full update `scale · B A` (out × in), row-major: for merging into a matrix.
    pub fn delta(&self) -> Vec<f32> {
        let mut d = vec![0.0f32; self.out * self.inp];
        for (row, b) in d
            .chunks_exact_mut(self.inp)
            .zip(self.b.chunks_exact(self.rank))
        {
            for (i, value) in row.iter_mut().enumerate() {
                let a = &self.a_t[i * self.rank..(i + 1) * self.rank];
                let dot: f32 = a.iter().zip(b).map(|(a, b)| a * b).sum();
                *value = self.scale * dot;
            }
        }
        d
    }
}

impl std::fmt::Debug for LowRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LowRank({}×{}, rank {})", self.out, self.inp, self.rank)
    }
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Adapter({}, {} matrices)",
            self.describe(),
            self.matrices.len()
        )
    }
}

/// The LoRA configuration fields inference needs (the `lora` metadata entry that
/// `train::LoraConfig` serializes).
#[derive(Deserialize)]
struct Scaling {
    rank: usize,
    alpha: f64,
}

/// An adapter file's updates, by the matrix they adapt (`blk.3.attn_q`).
pub struct Adapter {
    pub base_model: String,
    pub rank: usize,
    matrices: HashMap<String, LowRank>,
}

impl Adapter {
    /// Reads an adapter file: every `{matrix}.lora_a` with its `{matrix}.lora_b`.
    pub fn read(bytes: &[u8]) -> Result<Self> {
        let header = read_header(bytes)?;
        if header.metadata.contains_key("step") {
            return Err(bad(
                "it is a training checkpoint (it holds the optimizer's state): use the adapter file that finetune writes when it finishes",
            ));
        }
        let lora = header
            .metadata
            .get("lora")
            .ok_or_else(|| bad("no \"lora\" in its metadata"))?;
        let Scaling { rank, alpha } = serde_json::from_str(lora).map_err(bad)?;
        if rank == 0 || !alpha.is_finite() {
            return Err(bad(format!("rank {rank}, alpha {alpha}")));
        }
        let mut tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| bad(format!("its tensors cannot be read ({e})")))?;
        let names: Vec<String> = tensors
            .keys()
            .filter_map(|k| k.strip_suffix(".lora_a").map(str::to_string))
            .collect();
        if names.is_empty() {
            return Err(bad("it holds no adapter tensors"));
        }
        let mut matrices = HashMap::new();
        for name in names {
            let (Some(a), Some(b)) = (
                tensors.remove(&format!("{name}.lora_a")),
                tensors.remove(&format!("{name}.lora_b")),
            ) else {
                return Err(bad(format!("{name:?} has lora_a but no lora_b")));
            };
            let (ra, inp) = a
                .dims2()
                .map_err(|_| bad(format!("{name}.lora_a is not 2-D")))?;
            let (out, rb) = b
                .dims2()
                .map_err(|_| bad(format!("{name}.lora_b is not 2-D")))?;
            if ra != rank || rb != rank {
                return Err(bad(format!(
                    "{name}: A is {ra}×{inp} and B {out}×{rb}, but the rank is {rank}"
                )));
            }
            let values = |t: candle_core::Tensor| -> Result<Vec<f32>> {
                Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
            };
            let a = values(a)?;
            if a.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "{name}.lora_a holds a value that is not finite"
                )));
            }
            let b = values(b)?;
            if b.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "{name}.lora_b holds a value that is not finite"
                )));
            }
            let mut a_t = vec![0.0f32; a.len()];
            for r in 0..rank {
                for i in 0..inp {
                    a_t[i * rank + r] = a[r * inp + i];
                }
            }
            let low_rank = LowRank {
                a_t,
                b,
                rank,
                inp,
                out,
                scale: (alpha / rank as f64) as f32,
            };
            matrices.insert(name, low_rank);
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(bad(format!("unexpected tensor {extra:?}")));
        }
        Ok(Self {
            base_model: header.base_model,
            rank,
            matrices,
        })
    }

    /// Checks that it was trained on the model file `base` (its sha256).
    pub fn check_base(&self, base: &[u8]) -> Result<()> {
        let sha = crate::bundle::sha256_hex(base);
        if self.base_model.ends_with(&format!("sha256:{sha}")) {
            Ok(())
        } else {
            Err(bad(format!(
                "it was trained on {}, not on this generator (sha256:{sha})",
                self.base_model
            )))
        }
    }

    /// What it is, for a manifest or a page: "LoRA rank 8 on attn_q, attn_v".
    pub fn describe(&self) -> String {
        let mut kinds: Vec<&str> = self
            .matrices
            .keys()
            .filter_map(|k| k.rsplit('.').next())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        format!("LoRA rank {} on {}", self.rank, kinds.join(", "))
    }

    /// The update for `matrix` (`blk.3.attn_q`), checked against the matrix's (out, in).
    pub fn get(&self, matrix: &str, dims: (usize, usize)) -> Result<Option<&LowRank>> {
        match self.matrices.get(matrix) {
            Some(m) if m.dims() != dims => Err(bad(format!(
                "{matrix} is adapted as {}×{}, but this model's is {}×{} (an adapter for another model?)",
                m.out, m.inp, dims.0, dims.1
            ))),
            found => Ok(found),
        }
    }

    /// Every matrix name, for checking that a model uses them all.
    pub fn matrices(&self) -> impl Iterator<Item = &str> {
        self.matrices.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// An adapter file for one 3 × 5 matrix, rank 2, alpha 4 (scale 2).
    fn file(metadata: &[(&str, &str)], tensors: &[(&str, Vec<f32>, (usize, usize))]) -> Vec<u8> {
        let tensors: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(n, v, shape)| {
                let t = Tensor::from_vec(v.clone(), *shape, &Device::Cpu).expect("tensor");
                (n.to_string(), t)
            })
            .collect();
        let metadata: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .expect("serializes")
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
    }

    fn good_metadata() -> Vec<(&'static str, &'static str)> {
        vec![
            ("format", FORMAT),
            ("version", "1"),
            (
                "lora",
                r#"{"rank":2,"alpha":4.0,"targets":["q"],"init":"zero_b","seed":1}"#,
            ),
            ("base_model", "tiny sha256:00"),
        ]
    }

    fn good() -> Vec<u8> {
        file(
            &good_metadata(),
            &[
                ("blk.0.attn_q.lora_a", values(10, 1.0), (2, 5)),
                ("blk.0.attn_q.lora_b", values(6, 2.0), (3, 2)),
            ],
        )
    }

    #[test]
    fn the_update_is_scale_times_b_a_applied_row_by_row() {
        let adapter = Adapter::read(&good()).expect("reads");
        let update = adapter
            .get("blk.0.attn_q", (3, 5))
            .expect("fits")
            .expect("has it");
        let (a, b) = (values(10, 1.0), values(6, 2.0));
        let x = values(10, 5.0); // two rows of 5
        let mut y = vec![1.0f32; 6];
        update.add_to(&x, &mut y);
        let delta = update.delta();
        for row in 0..2 {
            for o in 0..3 {
                let mut want = 0.0f64;
                for i in 0..5 {
                    let ba: f64 = (0..2)
                        .map(|r| b[o * 2 + r] as f64 * a[r * 5 + i] as f64)
                        .sum();
                    want += 2.0 * ba * x[row * 5 + i] as f64;
                    assert!((delta[o * 5 + i] as f64 - 2.0 * ba).abs() < 1e-6);
                }
                assert!((y[row * 3 + o] as f64 - 1.0 - want).abs() < 1e-5);
            }
        }
        assert_eq!(adapter.describe(), "LoRA rank 2 on attn_q");
    }

    #[test]
    fn another_shape_or_base_model_is_refused_with_the_matrix_named() {
        let adapter = Adapter::read(&good()).expect("reads");
        let error = adapter.get("blk.0.attn_q", (3, 6)).expect_err("refused");
        assert!(error.to_string().contains("blk.0.attn_q"), "{error}");
        assert!(adapter.get("blk.1.attn_q", (3, 5)).expect("ok").is_none());
        let error = adapter.check_base(b"another model").expect_err("refused");
        assert!(error.to_string().contains("trained on tiny"), "{error}");
    }

    #[test]
    fn damaged_or_foreign_files_are_clear_errors() {
        let bytes = good();
        let cut = Adapter::read(&bytes[..bytes.len() - 7]).expect_err("cut");
        assert!(cut.to_string().contains("adapter file"), "{cut}");
        assert!(Adapter::read(b"not an adapter").is_err());
        let mut foreign = good_metadata();
        foreign[0] = ("format", "something-else");
        let foreign = file(&foreign, &[("x.lora_a", values(2, 0.0), (2, 1))]);
        let error = Adapter::read(&foreign).expect_err("foreign");
        assert!(error.to_string().contains("something-else"), "{error}");
        let mut newer = good_metadata();
        newer[1] = ("version", "2");
        let error = Adapter::read(&file(&newer, &[])).expect_err("newer");
        assert!(error.to_string().contains("version 2"), "{error}");
        let mut checkpoint = good_metadata();
        checkpoint.push(("step", "100"));
        let error = Adapter::read(&file(&checkpoint, &[])).expect_err("checkpoint");
        assert!(error.to_string().contains("checkpoint"), "{error}");
        let lonely = file(
            &good_metadata(),
            &[("blk.0.attn_q.lora_a", values(10, 1.0), (2, 5))],
        );
        let error = Adapter::read(&lonely).expect_err("no B");
        assert!(error.to_string().contains("no lora_b"), "{error}");
        let wrong_rank = file(
            &good_metadata(),
            &[
                ("blk.0.attn_q.lora_a", values(15, 1.0), (3, 5)),
                ("blk.0.attn_q.lora_b", values(9, 2.0), (3, 3)),
            ],
        );
        let error = Adapter::read(&wrong_rank).expect_err("rank");
        assert!(error.to_string().contains("rank is 2"), "{error}");
        let mut nan = values(10, 1.0);
        nan[3] = f32::NAN;
        let not_finite = file(
            &good_metadata(),
            &[
                ("blk.0.attn_q.lora_a", nan, (2, 5)),
                ("blk.0.attn_q.lora_b", values(6, 2.0), (3, 2)),
            ],
        );
        let error = Adapter::read(&not_finite).expect_err("nan");
        assert!(error.to_string().contains("not finite"), "{error}");
    }
}
