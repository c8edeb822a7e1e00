//! Log-probabilities and length normalisation with the same bits on every CPU and in wasm.
//!
//! Beam search ranks hypotheses by sums of log-probabilities, so a last-bit difference can
//! flip a near-tie and change the tagline. The platform's `ln`, `exp` and `powf` are not
//! one function everywhere (glibc picks FMA code paths by CPU at run time; wasm links
//! another libm), so these are written with `+ - × ÷` only, each in one order: Rust never
//! fuses or reorders float operations on its own.

use crate::kernels::attention::exp_non_positive;

/// ln 2 split so that `n × LN2_HI` is exact for the exponents met here (|n| < 2¹¹): fdlibm's
/// constants, by their bits.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// ln x for a finite x > 0 (anything else is NaN): x = m·2ᵉ with m in [√½, √2), and
/// ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, by its series to s²³ (the next
/// term is under 10⁻¹⁸ of the sum).
pub(crate) fn ln(x: f64) -> f64 {
    if !(x > 0.0 && x.is_finite()) {
        return f64::NAN;
    }
    // Subnormals: scale into the normal range first.
    let (x, extra) = if x < f64::MIN_POSITIVE {
        (x * 18_014_398_509_481_984.0, -54) // × 2⁵⁴
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023 + extra;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    for k in (0..12).rev() {
        series = series * s2 + 1.0 / (2 * k + 1) as f64;
    }
    let e = e as f64;
    e * LN2_HI + (2.0 * s * series + e * LN2_LO)
}

/// eˣ for finite x (0 below −745, +∞ above 709): x = n·ln2 + r with |r| ≤ ln2/2, eʳ by
/// its Taylor series to r¹⁵, scaled by 2ⁿ.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    let n = (x * std::f64::consts::LOG2_E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0;
    for k in (1..=15).rev() {
        p = 1.0 + p * r / k as f64;
    }
    // 2ⁿ in two steps, so that n below −1022 (a subnormal result) still scales exactly.
    let half = (n / 2.0).trunc();
    p * two_to(half as i64) * two_to((n - half) as i64)
}

/// 2ⁿ for −1022 ≤ n ≤ 1023.
fn two_to(n: i64) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// `len^alpha`, the length normalisation's divisor (alpha ≥ 0); 1 for alpha = 0 and `len`
/// itself for alpha = 1, exactly.
pub(crate) fn length_divisor(len: usize, alpha: f64) -> f64 {
    let len = len.max(1) as f64;
    if alpha == 0.0 {
        1.0
    } else if alpha == 1.0 {
        len
    } else {
        exp(alpha * ln(len))
    }
}

/// log Σ eˣ over `logits`: the largest, plus the log of the sum of each one's exponential
/// after subtracting it (our `exp`, in f32 as in attention), added in index order in f64.
/// `None` when a logit is NaN or none is finite (a broken model).
pub(crate) fn log_sum_exp(logits: &[f32]) -> Option<f64> {
    // A comparison, not `f32::max`, which is a libm call in wasm.
    let max = logits
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    if !max.is_finite() || logits.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut total = 0f64;
    for &v in logits {
        total += exp_non_positive(v - max) as f64;
    }
    Some(max as f64 + ln(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_and_exp_match_the_platform_to_a_few_ulp() {
        let mut x = 1e-300f64;
        while x < 1e300 {
            for y in [x, x * 1.37, x * 2.9] {
                let (ours, reference) = (ln(y), y.ln());
                assert!(
                    (ours - reference).abs() <= 4.0 * f64::EPSILON * reference.abs().max(1.0),
                    "ln({y}) = {ours}, not {reference}"
                );
            }
            x *= 7.3;
        }
        let mut x = -740.0f64;
        while x < 700.0 {
            let (ours, reference) = (exp(x), x.exp());
            assert!(
                (ours - reference).abs() <= 4.0 * f64::EPSILON * reference,
                "exp({x}) = {ours}, not {reference}"
            );
            x += 0.731;
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(ln(0.0).is_nan() && ln(-1.0).is_nan() && ln(f64::INFINITY).is_nan());
        assert_eq!(exp(-800.0), 0.0);
    }

    #[test]
    fn length_divisor_is_exact_where_it_can_be() {
        assert_eq!(length_divisor(7, 0.0), 1.0);
        assert_eq!(length_divisor(7, 1.0), 7.0);
        assert!((length_divisor(16, 0.5) - 4.0).abs() < 1e-14);
        assert_eq!(length_divisor(0, 1.0), 1.0);
    }

    #[test]
    fn log_sum_exp_normalises_and_rejects_broken_logits() {
        let logits = [1.0f32, 2.0, 3.0, -1e30];
        let reference = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        let ours = log_sum_exp(&logits).expect("finite");
        assert!((ours - reference).abs() < 1e-6, "{ours} vs {reference}");
        assert_eq!(log_sum_exp(&[1.0, f32::NAN]), None);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY]), None);
        assert_eq!(log_sum_exp(&[]), None);
    }
}
