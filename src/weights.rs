//! Model weights as read from their files, for every model here (the BERT embedder, both
//! generators): Hugging Face safetensors or GGUF, as one map of `QTensor`s kept in their
//! stored dtype ([`Weights`]), or read one tensor at a time so a large GGUF is never held
//! twice ([`GgufTensors`]).

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::Matmul;

/// Named tensors, each kept in the dtype it was stored in (f32, or q8_0 and friends).
pub struct Weights {
    tensors: HashMap<String, Arc<QTensor>>,
    device: Device,
}

impl Weights {
    /// Loads Hugging Face safetensors (f32). Non-float tensors (`position_ids`) are skipped.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let device = Device::Cpu;
        let loaded = candle_core::safetensors::load_buffer(bytes, &device)?;
        let mut tensors = HashMap::with_capacity(loaded.len());
        for (name, tensor) in loaded {
            if tensor.dtype() != DType::F32 {
                continue;
            }
            tensors.insert(name, Arc::new(QTensor::quantize(&tensor, GgmlDType::F32)?));
        }
        Ok(Self { tensors, device })
    }

    /// Loads any GGUF file from memory: its tensors, as stored, and its metadata.
    pub fn from_gguf_with_metadata(
        bytes: &[u8],
    ) -> Result<(Self, HashMap<String, gguf_file::Value>)> {
        let device = Device::Cpu;
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for name in content.tensor_infos.keys() {
            let tensor = content.tensor(&mut reader, name, &device)?;
            tensors.insert(name.clone(), Arc::new(tensor));
        }
        Ok((Self { tensors, device }, content.metadata))
    }

    /// The same weights with every matrix that is multiplied stored as f32 (embedding
    /// tables, whose rows are only looked up, stay as stored). Matmuls then run in f32 with
    /// no quantization of activations: in wasm that is about twice as fast as candle's int8
    /// kernels, and the results depend only on the weights' values, so the wasm build can
    /// be held to native numbers (see web/tests).
    pub fn dequantized(&self) -> Result<Self> {
        let mut tensors = HashMap::with_capacity(self.tensors.len());
        for (name, tensor) in &self.tensors {
            let tensor = if name.contains("embeddings") {
                tensor.clone()
            } else {
                let f32 = tensor.dequantize(&self.device)?;
                Arc::new(QTensor::quantize(&f32, GgmlDType::F32)?)
            };
            tensors.insert(name.clone(), tensor);
        }
        Ok(Self {
            tensors,
            device: self.device.clone(),
        })
    }

    /// Whether a tensor of that name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Result<&Arc<QTensor>> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::ModelFile(format!("weights have no tensor {name:?}")))
    }

    /// A weight matrix for `x @ W^T`, on our kernels when stored in a format we have them
    /// for (converted; the weights keep their copy); stays quantized when stored quantized.
    pub fn matmul(&self, name: &str) -> Result<Matmul> {
        crate::kernels::qmatmul(self.get(name)?.clone())
    }

    /// A small tensor (bias, LayerNorm) as f32.
    pub fn f32(&self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.dequantize(&self.device)?)
    }
}

/// A GGUF file's tensors, each read from the file only when taken: a model that converts
/// every matrix as it goes (the llama loader) then holds the file and its own layout, never
/// a third copy of all the weights in candle's. The file is any [`TensorSource`]: bytes in
/// memory, or (the page) bytes that stay in JavaScript's memory, which are let go as the
/// tensors in them are taken, so the page never holds the whole file beside the whole model.
pub struct GgufTensors<'a> {
    content: gguf_file::Content,
    reader: Box<dyn TensorSource + 'a>,
    /// The tensors not taken yet.
    left: HashSet<String>,
}

/// What [`GgufTensors`] reads from. After the header and after each tensor it is told which
/// byte ranges are still to be read; a source that can free the rest does.
pub trait TensorSource: Read + Seek {
    /// Only `needed` (byte ranges of the file, sorted) will be read from now on.
    fn retain(&mut self, needed: &[Range<u64>]) {
        let _ = needed;
    }
}

impl TensorSource for Cursor<&[u8]> {}

impl<T: TensorSource> TensorSource for std::io::BufReader<T> {
    fn retain(&mut self, needed: &[Range<u64>]) {
        self.get_mut().retain(needed);
    }
}

impl<'a> GgufTensors<'a> {
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes))
    }

    pub fn from_reader(mut reader: impl TensorSource + 'a) -> Result<Self> {
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        let mut tensors = Self {
            left: content.tensor_infos.keys().cloned().collect(),
            content,
            reader: Box::new(reader),
        };
        tensors.retain_left();
        Ok(tensors)
    }

    /// What the header says of tensor `name`.
    fn info(&self, name: &str) -> Result<&gguf_file::TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::ModelFile(format!("weights have no tensor {name:?}")))
    }

    /// Where a tensor's bytes are in the file.
    fn byte_range(&self, info: &gguf_file::TensorInfo) -> Range<u64> {
        let start = self.content.tensor_data_offset + info.offset;
        let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
        start..start + (blocks * info.ggml_dtype.type_size()) as u64
    }

    /// Tells the source that only the tensors not taken yet will be read.
    fn retain_left(&mut self) {
        let mut needed: Vec<Range<u64>> = self
            .left
            .iter()
            .filter_map(|name| self.content.tensor_infos.get(name))
            .map(|info| self.byte_range(info))
            .collect();
        needed.sort_by_key(|range| range.start);
        self.reader.retain(&needed);
    }

    /// Marks `name` as read: the source may let its bytes go.
    fn done_with(&mut self, name: &str) {
        if self.left.remove(name) {
            self.retain_left();
        }
    }

    pub fn metadata(&self) -> &HashMap<String, gguf_file::Value> {
        &self.content.metadata
    }

    pub fn contains(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The tensor, as stored, read now.
    pub fn take(&mut self, name: &str) -> Result<Arc<QTensor>> {
        self.info(name)?;
        let tensor = self.content.tensor(&mut self.reader, name, &Device::Cpu)?;
        self.done_with(name);
        Ok(Arc::new(tensor))
    }

    /// A weight matrix as a [`Matmul`], read now: in our kernels' formats (q4_0, Q4_1,
    /// q8_0) straight from the file into their layout a piece at a time
    /// ([`crate::kernels::read_qmatmul`]), any other through candle.
    pub fn matmul(&mut self, name: &str) -> Result<Matmul> {
        let info = self.info(name)?;
        let start = self.byte_range(info).start;
        let (dtype, dims) = (info.ggml_dtype, info.shape.dims().to_vec());
        let unreadable = |e: std::io::Error| {
            Error::ModelFile(format!(
                "cannot read tensor {name:?} from the GGUF file: {e}"
            ))
        };
        self.reader
            .seek(SeekFrom::Start(start))
            .map_err(unreadable)?;
        match crate::kernels::read_qmatmul(dtype, &dims, &mut self.reader).map_err(unreadable)? {
            Some(matmul) => {
                self.done_with(name);
                Ok(matmul)
            }
            None => crate::kernels::qmatmul(self.take(name)?),
        }
    }

    /// A small tensor (a norm's weights) as f32.
    pub fn f32(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.take(name)?.dequantize(&Device::Cpu)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix read straight from the file into our layout is the one candle's copy
    /// converts to, for every format our kernels run, and a format they do not (f32) still
    /// loads through candle.
    #[test]
    fn matrices_read_from_the_file_match_those_converted_from_candle() {
        let (rows, columns) = (40, 96);
        let values: Vec<f32> = (0..rows * columns)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let matrix = Tensor::from_vec(values, (rows, columns), &Device::Cpu).expect("tensor");
        let dtypes = [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::F32,
        ];
        let tensors: Vec<(String, QTensor)> = dtypes
            .iter()
            .map(|&dtype| {
                let q = QTensor::quantize(&matrix, dtype).expect("quantizes");
                (format!("{dtype:?}"), q)
            })
            .collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut file = Cursor::new(Vec::new());
        gguf_file::write(&mut file, &[], &refs).expect("writes");
        let file = file.into_inner();

        let x: Vec<f32> = (0..3 * columns).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut read = GgufTensors::read(&file).expect("reads");
        let mut taken = GgufTensors::read(&file).expect("reads");
        for dtype in dtypes {
            let name = format!("{dtype:?}");
            let direct = read.matmul(&name).expect("reads the matrix");
            let through_candle =
                crate::kernels::qmatmul(taken.take(&name).expect("takes")).expect("converts");
            assert_eq!(direct.dims().expect("2-D"), (rows, columns), "{name}");
            assert_eq!(
                direct.forward_rows(&x, columns).expect("runs"),
                through_candle.forward_rows(&x, columns).expect("runs"),
                "{name}"
            );
        }
        assert!(read.matmul("missing").is_err());
    }

    /// A source that records what it is told is still needed.
    struct Recording<'a> {
        file: Cursor<&'a [u8]>,
        needed: std::rc::Rc<std::cell::RefCell<Vec<Range<u64>>>>,
    }

    impl Read for Recording<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.file.read(buf)
        }
    }

    impl Seek for Recording<'_> {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.file.seek(to)
        }
    }

    impl TensorSource for Recording<'_> {
        fn retain(&mut self, needed: &[Range<u64>]) {
            *self.needed.borrow_mut() = needed.to_vec();
        }
    }

    /// The source hears, after the header and after each tensor, that only the tensors not
    /// yet taken are needed: the header's bytes and each tensor's go as soon as they are read.
    #[test]
    fn the_source_is_told_which_bytes_are_still_needed() {
        let matrix = Tensor::zeros((64, 64), DType::F32, &Device::Cpu).expect("tensor");
        let a = QTensor::quantize(&matrix, GgmlDType::Q8_0).expect("quantizes");
        let b = QTensor::quantize(&matrix, GgmlDType::Q4_0).expect("quantizes");
        let c = QTensor::quantize(&matrix, GgmlDType::F32).expect("quantizes");
        let mut file = Cursor::new(Vec::new());
        gguf_file::write(&mut file, &[], &[("a", &a), ("b", &b), ("c", &c)]).expect("writes");
        let file = file.into_inner();
        let needed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut tensors = GgufTensors::from_reader(Recording {
            file: Cursor::new(&file),
            needed: needed.clone(),
        })
        .expect("reads");
        let sizes = |ranges: &[Range<u64>]| -> Vec<u64> {
            ranges.iter().map(|r| r.end - r.start).collect()
        };
        let (size_a, size_b, size_c) = (64 * 64 / 32 * 34, 64 * 64 / 32 * 18, 64 * 64 * 4);
        assert_eq!(sizes(&needed.borrow()), [size_a, size_b, size_c]);
        let header_end = needed.borrow()[0].start;
        assert!(header_end > 0 && needed.borrow()[2].end <= file.len() as u64);
        tensors.matmul("b").expect("reads b");
        assert_eq!(sizes(&needed.borrow()), [size_a, size_c]);
        tensors.take("c").expect("reads c");
        tensors.matmul("a").expect("reads a");
        assert!(needed.borrow().is_empty());
    }

    /// A file cut short inside a matrix is an error naming the tensor, not a panic.
    #[test]
    fn a_truncated_matrix_is_an_error() {
        let matrix = Tensor::zeros((64, 64), DType::F32, &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&matrix, GgmlDType::Q8_0).expect("quantizes");
        let mut file = Cursor::new(Vec::new());
        gguf_file::write(&mut file, &[], &[("w", &q)]).expect("writes");
        let mut file = file.into_inner();
        file.truncate(file.len() - 100);
        let error = GgufTensors::read(&file)
            .expect("the header is whole")
            .matmul("w")
            .err()
            .expect("the matrix is not");
        assert!(error.to_string().contains("\"w\""), "{error}");
    }
}
