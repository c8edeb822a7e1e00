//! `index-builder quantize`: writes quantized GGUF files. A GPT-2 directory in Hugging
//! Face's format (model.safetensors + config.json) becomes a q8_0 / q4_0 GGUF that the
//! engine's `Gpt2::from_gguf` loads; an existing GGUF (SmolLM2's Q4_1) is re-stored in a
//! format candle has SIMD kernels for.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::quantized::GgmlDType;
use clap::Args;
use marquee::embed::parse_gguf_dtype;
use marquee::generate::{gpt2_to_gguf, requantize_gguf};

#[derive(Args)]
pub struct QuantizeArgs {
    /// A GPT-2 directory (model.safetensors + config.json) or a .gguf file.
    input: PathBuf,
    /// Target storage: q8_0, q4_0, q5_0, f16 or f32.
    #[arg(long, default_value = "q8_0")]
    dtype: String,
    /// The GGUF file to write.
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let dtype = parse_gguf_dtype(&args.dtype)?;
    let read =
        |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
    let (input_bytes, bytes) = if args.input.is_dir() {
        let weights = read(args.input.join("model.safetensors"))?;
        let config = read(args.input.join("config.json"))?;
        let gguf = gpt2_to_gguf(&weights, &config, dtype)
            .with_context(|| format!("{} is not a GPT-2 checkpoint", args.input.display()))?;
        (weights.len(), gguf)
    } else {
        let input = read(args.input.clone())?;
        let gguf = requantize_gguf(&input, GgmlDType::Q4_1, dtype)
            .with_context(|| format!("cannot re-store {}", args.input.display()))?;
        (input.len(), gguf)
    };
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "{} ({} bytes) -> {} ({} bytes, {})",
        args.input.display(),
        input_bytes,
        args.out.display(),
        bytes.len(),
        args.dtype
    );
    Ok(())
}
