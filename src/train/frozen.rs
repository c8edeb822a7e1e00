//! `x Wᵀ` for a frozen `W` whose backward pass computes the input's gradient only.
//!
//! candle's matmul backward computes the gradient of both operands, also of a weight that
//! no optimizer will ever touch: for SmolLM2 that is a second full-size matmul per linear
//! and a zeroed 424 MB of weight gradients per step (measured: a third of the step's time
//! was the kernel zeroing fresh pages for them). This op gives `grad · W` and nothing else.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use crate::error::Result;

/// A frozen (out, in) matrix used as `x Wᵀ`.
#[derive(Clone)]
pub(crate) struct FrozenLinear {
    w: Tensor,
}

impl FrozenLinear {
    /// `w`: (out, in), contiguous, f32 or f64.
    pub(crate) fn new(w: Tensor) -> Result<Self> {
        w.dims2()?;
        Ok(Self {
            w: w.contiguous()?.detach(),
        })
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        let d = self.w.dims();
        (d[0], d[1])
    }

    /// `x Wᵀ` for `x` of shape (n, in): (n, out).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1(self.clone())?)
    }
}

fn slice_of<T: candle_core::WithDType>(
    storage: &CpuStorage,
    layout: &Layout,
) -> candle_core::Result<Vec<T>> {
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("frozen linear: the input is not contiguous".into())
    })?;
    Ok(storage.as_slice::<T>()?[start..end].to_vec())
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, inp) = layout.shape().dims2()?;
        let x = match storage.dtype() {
            DType::F32 => {
                Tensor::from_vec(slice_of::<f32>(storage, layout)?, (n, inp), &Device::Cpu)?
            }
            DType::F64 => {
                Tensor::from_vec(slice_of::<f64>(storage, layout)?, (n, inp), &Device::Cpu)?
            }
            other => {
                return Err(candle_core::Error::Msg(format!(
                    "frozen linear: {other:?} input (f32 or f64 only)"
                )))
            }
        };
        let y = x.matmul(&self.w.t()?)?;
        let shape = y.shape().clone();
        let data = match y.dtype() {
            DType::F64 => CpuStorage::F64(y.flatten_all()?.to_vec1()?),
            _ => CpuStorage::F32(y.flatten_all()?.to_vec1()?),
        };
        Ok((data, shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}
