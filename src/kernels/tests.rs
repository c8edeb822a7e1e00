//! The kernels against candle's own (same weights, same activation quantization up to
//! rounding), against the scalar definition, and against plain f32 arithmetic.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::q8::{ActRow, Q8Rows};
use super::{dot_scalar, relay, WeightRow};

/// Our kernels on `tensor`'s weights, as a model gets them.
fn ours(tensor: &QTensor) -> QMatMul {
    let copy = QTensor::new(
        candle_core::quantized::QStorage::from_data(
            tensor.data().expect("bytes"),
            &Device::Cpu,
            tensor.dtype(),
        )
        .expect("storage"),
        tensor.shape().clone(),
    )
    .expect("copy");
    QMatMul::from_arc(Arc::new(relay(copy).expect("relaid"))).expect("matmul")
}

fn random(shape: (usize, usize), seed: u64) -> Tensor {
    // A fixed LCG, so that a failure reproduces.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("shape matches")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("same shapes")
}

#[test]
fn matmul_matches_candle_for_q4_0_and_q4_1_at_every_tile_size() {
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1] {
        let weights = random((67, 96), 1);
        let candle = Arc::new(QTensor::quantize(&weights, dtype).expect("quantizes"));
        let ours = ours(&candle);
        let theirs = QMatMul::from_arc(candle.clone()).expect("candle's");
        for m in [1, 2, 3, 4, 5, 9] {
            let x = random((m, 96), 10 + m as u64);
            let got = ours.forward(&x).expect("our matmul");
            let want = theirs.forward(&x).expect("candle's matmul");
            // Both quantize x to 8 bits per block (candle rounds the block scale to f16, we
            // keep f32); otherwise only rounding ties and the order of float sums differ.
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 5e-3, "{dtype:?} m={m}: {diff}");
            // Against the f32 product with the same (dequantized) weights, ours is no less
            // accurate than candle's.
            let w = candle.dequantize(&Device::Cpu).expect("f32");
            let exact = x.matmul(&w.t().expect("t")).expect("f32 matmul");
            let (ours_err, theirs_err) = (max_abs_diff(&got, &exact), max_abs_diff(&want, &exact));
            assert!(
                ours_err <= theirs_err * 1.5 + 1e-3,
                "{dtype:?} m={m}: {ours_err} vs {theirs_err}"
            );
        }
    }
}

#[test]
fn simd_kernel_equals_the_scalar_definition() {
    let weights = QTensor::quantize(&random((8, 256), 2), GgmlDType::Q4_1).expect("quantizes");
    let matrix =
        super::q4::Q4Matrix::from_ggml(GgmlDType::Q4_1, &weights.data().expect("bytes"), 256)
            .expect("Q4_1");
    let x = Q8Rows::quantize(
        &random((4, 256), 3)
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("values"),
        256,
    );
    let rows: [ActRow; 4] = std::array::from_fn(|r| x.row(r));
    for j in 0..8 {
        let row: [WeightRow; 1] = [matrix.test_row(j)];
        let simd = super::dot::<1, 4>(&row, &rows)[0];
        let scalar = dot_scalar::dot::<1, 4, true>(&row, &rows)[0];
        for (a, b) in simd.iter().zip(scalar) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn dequantize_and_embedding_equal_candle() {
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1] {
        let candle = QTensor::quantize(&random((10, 64), 4), dtype).expect("quantizes");
        let ours = relay(QTensor::quantize(&random((10, 64), 4), dtype).expect("quantizes"))
            .expect("relaid");
        assert_eq!(ours.dtype(), dtype);
        let want = candle.dequantize(&Device::Cpu).expect("f32");
        assert_eq!(
            max_abs_diff(&ours.dequantize(&Device::Cpu).expect("f32"), &want),
            0.0
        );
        let ids = Tensor::new(&[3u32, 0, 9], &Device::Cpu).expect("ids");
        let rows = ours.embedding(&ids).expect("rows");
        assert_eq!(
            max_abs_diff(&rows, &want.index_select(&ids, 0).expect("rows")),
            0.0
        );
        assert!(ours
            .embedding(&Tensor::new(&[10u32], &Device::Cpu).expect("id"))
            .is_err());
    }
}

#[test]
fn quantizing_into_our_layout_equals_candle_quantizing() {
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1] {
        let values = random((4, 64), 5);
        let candle = QTensor::quantize(&values, dtype).expect("quantizes");
        let mut ours = super::q4::Q4Matrix::from_ggml(dtype, &candle.data().expect("bytes"), 64)
            .expect("4-bit");
        ours.quantize(
            &random((4, 64), 6)
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("values"),
        );
        ours.quantize(
            &values
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("values"),
        );
        let ours = QTensor::new(
            candle_core::quantized::QStorage::Cpu(Box::new(ours)),
            (4, 64),
        )
        .expect("tensor");
        let want = candle.dequantize(&Device::Cpu).expect("f32");
        assert!(
            max_abs_diff(&ours.dequantize(&Device::Cpu).expect("f32"), &want) < 1e-6,
            "{dtype:?}"
        );
    }
}

#[test]
fn other_dtypes_and_shapes_keep_candles_kernels() {
    let q8 = QTensor::quantize(&random((4, 64), 7), GgmlDType::Q8_0).expect("quantizes");
    let size = q8.storage_size_in_bytes();
    let same = relay(q8).expect("unchanged");
    assert_eq!(
        (same.dtype(), same.storage_size_in_bytes()),
        (GgmlDType::Q8_0, size)
    );
}

#[test]
fn a_mismatched_input_is_an_error() {
    let candle = QTensor::quantize(&random((4, 64), 8), GgmlDType::Q4_0).expect("quantizes");
    let ours = ours(&candle);
    assert!(ours.forward(&random((2, 32), 9)).is_err());
}
