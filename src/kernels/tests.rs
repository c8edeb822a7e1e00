//! The kernels against candle's own (same weights, same activation quantization up to
//! rounding), against the scalar definition, and against plain f32 arithmetic.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::activations::{ActRow, Q8Rows};
use super::matrix::FromGgmlBlocks;
use super::q4::Q4Matrix;
use super::q8::Q8Matrix;
use super::{compiled_simd, dot_scalar, qmatmul, Matmul};

const FORMATS: [GgmlDType; 3] = [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0];

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

fn quantized(values: &Tensor, dtype: GgmlDType) -> Arc<QTensor> {
    Arc::new(QTensor::quantize(values, dtype).expect("quantizes"))
}

/// `weights` (256 columns) in one of our layouts, to call its kernels directly.
fn relaid<M: FromGgmlBlocks>(weights: &QTensor) -> M {
    let bytes = weights.data().expect("bytes");
    let blocks = weights.shape().elem_count() / super::BLOCK;
    M::read(weights.dtype(), blocks, 256, &mut &bytes[..])
        .expect("reads")
        .expect("one of our formats")
}

fn ours(weights: &Arc<QTensor>) -> Matmul {
    let matmul = qmatmul(weights.clone()).expect("converts");
    assert!(matmul.is_ours());
    matmul
}

#[test]
fn matmul_matches_candle_for_every_format_and_tile_size() {
    // 1536 columns: a multiple of 256, where candle's own kernels may repack q8_0 weights.
    for (rows, columns) in [(67, 96), (36, 1536)] {
        for dtype in FORMATS {
            let candle = quantized(&random((rows, columns), 1), dtype);
            let ours = ours(&candle);
            let theirs = QMatMul::from_arc(candle.clone()).expect("candle's");
            for m in [1, 2, 3, 4, 5, 9] {
                let x = random((m, columns), 10 + m as u64);
                let got = ours.forward(&x).expect("our matmul");
                let want = theirs.forward(&x).expect("candle's matmul");
                // Both quantize x to 8 bits per block (candle rounds the block scale to f16,
                // we keep f32); otherwise only rounding ties and the order of sums differ.
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < 2e-3 * (columns as f32).sqrt(),
                    "{dtype:?} {m}×{columns}: {diff}"
                );
                // Against the f32 product with the same (dequantized) weights, ours is no
                // less accurate than candle's.
                let w = candle.dequantize(&Device::Cpu).expect("f32");
                let exact = x.matmul(&w.t().expect("t")).expect("f32 matmul");
                let (ours_err, theirs_err) =
                    (max_abs_diff(&got, &exact), max_abs_diff(&want, &exact));
                assert!(
                    ours_err <= theirs_err * 1.5 + 1e-3,
                    "{dtype:?} m={m}: {ours_err} vs {theirs_err}"
                );
            }
        }
    }
}

#[test]
fn simd_kernels_equal_the_scalar_definition() {
    let x = Q8Rows::quantize(
        &random((4, 256), 3)
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values"),
        256,
    );
    let rows: [ActRow; 4] = std::array::from_fn(|r| x.row(r));
    let close = |simd: [[f32; 4]; 2], scalar: [[f32; 4]; 2]| {
        for (a, b) in simd.iter().flatten().zip(scalar.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    };
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1] {
        let weights = quantized(&random((8, 256), 2), dtype);
        let matrix: Q4Matrix = relaid(&weights);
        for j in (0..8).step_by(2) {
            let w = [matrix.test_row(j), matrix.test_row(j + 1)];
            let (simd, scalar) = if dtype == GgmlDType::Q4_1 {
                (
                    compiled_simd::dot_q4::<2, 4, true>(&w, &rows),
                    dot_scalar::dot_q4::<2, 4, true>(&w, &rows),
                )
            } else {
                (
                    compiled_simd::dot_q4::<2, 4, false>(&w, &rows),
                    dot_scalar::dot_q4::<2, 4, false>(&w, &rows),
                )
            };
            close(simd, scalar);
        }
    }
}

/// q8_0 is exact by construction (see `dot_scalar::dot_q8`): the SIMD kernel must give the
/// same bits as the scalar one for every tile height the driver uses, on a whole panel and
/// on one padded with zero rows (20 rows: 16 + 4).
#[test]
fn simd_q8_kernel_is_bit_identical_to_the_scalar_definition() {
    let x = Q8Rows::quantize(
        &random((4, 256), 5)
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values"),
        256,
    );
    let rows: [ActRow; 4] = std::array::from_fn(|r| x.row(r));
    let weights = quantized(&random((20, 256), 4), GgmlDType::Q8_0);
    let matrix: Q8Matrix = relaid(&weights);
    fn check<const R: usize>(matrix: &Q8Matrix, x: &[ActRow; 4]) {
        let x: [ActRow; R] = std::array::from_fn(|r| x[r]);
        for p in 0..2 {
            let (simd, scalar) = (
                compiled_simd::dot_q8::<R>(matrix.panel(p), &x),
                dot_scalar::dot_q8::<R>(matrix.panel(p), &x),
            );
            let bits = |v: [[f32; 16]; R]| v.map(|row| row.map(f32::to_bits));
            assert_eq!(bits(simd), bits(scalar), "{R} rows, panel {p}");
        }
    }
    check::<1>(&matrix, &rows);
    check::<2>(&matrix, &rows);
    check::<3>(&matrix, &rows);
    check::<4>(&matrix, &rows);
}

#[test]
fn looked_up_rows_equal_candles_dequantized_ones() {
    for dtype in FORMATS {
        let candle = quantized(&random((10, 64), 4), dtype);
        let ours = ours(&candle);
        let ids = Tensor::new(&[[3u32, 0], [9, 3]], &Device::Cpu).expect("ids");
        let rows = ours.embedding(&ids).expect("rows");
        assert_eq!(rows.dims(), &[2, 2, 64]);
        let want = QMatMul::from_arc(candle)
            .expect("candle's")
            .embedding(&ids)
            .expect("rows");
        assert_eq!(max_abs_diff(&rows, &want), 0.0, "{dtype:?}");
        let out_of_range = Tensor::new(&[10u32], &Device::Cpu).expect("id");
        assert!(ours.embedding(&out_of_range).is_err());
    }
}

/// f32 matrices: the products candle's f32 matmul gives (exactly on the portable path, which
/// is gemm as candle's is; within rounding on the AVX2 kernel, which sums in its own order),
/// the same bits on a pool's thread (where it stays on that thread) as on the caller's, rows
/// looked up as stored, the values back unchanged, a short file an error.
#[test]
fn f32_matrices_match_candles_matmul() {
    let weights = random((300, 96), 11);
    let tensor = quantized(&weights, GgmlDType::F32);
    let dense = qmatmul(tensor.clone()).expect("dense");
    assert!(!dense.is_ours(), "gemm's blocking depends on the row count");
    let want = QMatMul::from_arc(tensor.clone()).expect("candle's");
    for rows in [1, 7, 64, 200] {
        let x = random((rows, 96), rows as u64);
        let expected = want.forward(&x).expect("candle");
        let ours = dense.forward(&x).expect("ours");
        let tolerance = if super::simd_enabled() { 1e-5 } else { 0.0 };
        assert!(max_abs_diff(&ours, &expected) <= tolerance, "{rows} rows");
        let flat = x.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("x");
        let on_a_worker = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool")
            .install(|| dense.forward_rows(&flat, 96))
            .expect("ours");
        let on_a_worker = Tensor::from_vec(on_a_worker, (rows, 300), &Device::Cpu).expect("y");
        assert_eq!(max_abs_diff(&on_a_worker, &ours), 0.0, "{rows} rows");
    }
    let ids = Tensor::new(&[[299u32, 0], [5, 5]], &Device::Cpu).expect("ids");
    let looked_up = dense.embedding(&ids).expect("rows");
    let expected = want.embedding(&ids).expect("candle's rows");
    assert_eq!(max_abs_diff(&looked_up, &expected), 0.0);
    assert!(dense
        .embedding(&Tensor::new(&[300u32], &Device::Cpu).expect("id"))
        .is_err());
    let (values, dtype) = dense.dequantize().expect("values");
    assert_eq!(
        (max_abs_diff(&values, &weights), dtype),
        (0.0, GgmlDType::F32)
    );
    assert!(dense.forward_rows(&[0.0; 95], 95).is_err());
    let bytes = tensor.data().expect("bytes");
    let short = super::read_qmatmul(GgmlDType::F32, &[300, 96], &mut &bytes[..bytes.len() - 4]);
    assert!(short.is_err());
}

/// The biased product adds the bias to each row: on f32 matrices gemm starts from it (so
/// only rounding may differ from adding it after, by the bias's ulps), on q8_0 it is added
/// after the product exactly as before. A bias of the wrong width is an error on both.
#[test]
fn biased_products_add_the_bias_to_each_row() {
    let weights = random((300, 96), 12);
    let bias: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) / 37.0).collect();
    for dtype in [GgmlDType::F32, GgmlDType::Q8_0] {
        let matrix = qmatmul(quantized(&weights, dtype)).expect("matrix");
        for rows in [1, 7, 64] {
            let x = random((rows, 96), 40 + rows as u64);
            let x = x.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("x");
            let plain = matrix.forward_rows(&x, 96).expect("product");
            let biased = matrix.forward_rows_biased(&x, 96, &bias).expect("biased");
            for (i, (&p, &b)) in plain.iter().zip(&biased).enumerate() {
                let added = p + bias[i % 300];
                if dtype == GgmlDType::Q8_0 {
                    assert_eq!(b.to_bits(), added.to_bits(), "{dtype:?} {rows} rows");
                } else {
                    assert!(
                        (b - added).abs() <= 1e-5 * added.abs().max(1.0),
                        "{b} vs {added}"
                    );
                }
            }
        }
        assert!(matrix
            .forward_rows_biased(&[0.0; 96], 96, &bias[..299])
            .is_err());
    }
}

#[test]
fn other_dtypes_and_shapes_keep_candles_kernels() {
    for tensor in [
        quantized(&random((4, 256), 7), GgmlDType::Q4K),
        Arc::new(
            QTensor::quantize(
                &random((4, 64), 7).flatten_all().expect("1-D"),
                GgmlDType::Q8_0,
            )
            .expect("a vector"),
        ),
    ] {
        assert!(!qmatmul(tensor).expect("candle's").is_ours());
    }
}

#[test]
fn a_mismatched_input_is_an_error() {
    let ours = ours(&quantized(&random((4, 64), 8), GgmlDType::Q4_0));
    assert!(ours.forward(&random((2, 32), 9)).is_err());
}

/// The index's dot products: the compiled SIMD kernel gives the portable definition's bits,
/// so a score (and so a ranking) is the same in every build.
#[test]
fn vector_dot_products_equal_the_portable_definition() {
    let values = |seed: u64, n: usize| -> Vec<f32> {
        random((1, n), seed)
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    };
    let bytes = |v: &[f32]| -> Vec<i8> { v.iter().map(|x| (x * 127.0).round() as i8).collect() };
    for (seed, len) in (0..20).zip([384, 383, 32, 31, 1, 0].into_iter().cycle()) {
        let (a, b) = (values(seed, len.max(1)), values(seed + 77, len.max(1)));
        let (a, b) = (&a[..len], &b[..len]);
        let (qa, qb) = (bytes(a), bytes(b));
        assert_eq!(
            compiled_simd::dot_f32_i8(a, &qb).to_bits(),
            dot_scalar::dot_f32_i8(a, &qb).to_bits()
        );
        assert_eq!(
            compiled_simd::dot_i8(&qa, &qb),
            dot_scalar::dot_i8(&qa, &qb)
        );
        let plain: i32 = qa.iter().zip(&qb).map(|(&x, &y)| x as i32 * y as i32).sum();
        assert_eq!(super::dot_i8(&qa, &qb), plain);
    }
    assert_eq!(super::dot_i8(&[-127; 64], &[-127; 64]), 64 * 127 * 127);
}
