//! Our quantized matmul kernels beside candle's on the same weights, at SmolLM2-135M's shapes,
//! printed as a markdown table (µs per matmul, median of many):
//!
//!     RAYON_NUM_THREADS=1 cargo bench --bench kernels

use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use marquee::kernels::qmatmul;

// index-builder's allocator and its settings, so that the figures are the CLI's.
#[path = "../index-builder/src/allocator.rs"]
mod allocator;

/// Median microseconds of `f` over enough runs to take about half a second.
fn median_us(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().as_secs_f64().max(1e-7);
    let runs = ((0.5 / once) as usize).clamp(5, 2000);
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() -> marquee::Result<()> {
    allocator::keep_freed_memory();
    let device = Device::Cpu;
    println!("| dtype | weights (out × in) | rows | candle µs | ours µs | speed-up |");
    println!("|---|---|---|---|---|---|");
    // SmolLM2-135M: attention output 576→576, MLP up 576→1536 and down 1536→576; the LM
    // head (q8_0) is 49152 × 576.
    let matrices = [(576, 576), (1536, 576), (576, 1536)];
    for (dtype, shapes) in [
        (GgmlDType::Q4_0, &matrices[..]),
        (GgmlDType::Q4_1, &matrices[..]),
        (GgmlDType::Q8_0, &[(1536, 576), (49152, 576)][..]),
    ] {
        for &(out, inp) in shapes {
            let w = Tensor::randn(0f32, 1.0, (out, inp), &device)?;
            let q = Arc::new(QTensor::quantize(&w, dtype)?);
            let candle = QMatMul::from_arc(q.clone())?;
            let ours = qmatmul(q)?;
            for rows in [1, 64] {
                let x = Tensor::randn(0f32, 1.0, (rows, inp), &device)?;
                let theirs = median_us(|| drop(candle.forward(&x)));
                let mine = median_us(|| drop(ours.forward(&x)));
                println!(
                    "| {dtype:?} | {out} × {inp} | {rows} | {theirs:.1} | {mine:.1} | {:.2}× |",
                    theirs / mine
                );
            }
        }
    }
    Ok(())
}
