//! Bytes that stay in JavaScript's memory, in the pieces the worker downloaded them in (one
//! `Uint8Array` each, with its own buffer), read into the wasm heap a little at a time. The
//! generator's GGUF (92 MB) is read this way: its matrices are converted to the kernels'
//! layout one at a time, and each piece is let go (its buffer detached, which frees it at
//! once) as soon as every tensor in it has been read. So the page never holds the whole file
//! beside the whole model, and the wasm heap, which never shrinks, never holds the file at
//! all (the renderer's peak memory, measured by bench/browser).

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use js_sys::Uint8Array;
use marquee::weights::TensorSource;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// An `ArrayBuffer`, for the one method of it that js-sys does not bind.
    #[wasm_bindgen(js_name = ArrayBuffer)]
    type Detachable;

    /// `ArrayBuffer.prototype.transfer` (Chrome 114, Firefox 122, Safari 17.4): moving a
    /// buffer's bytes to a new buffer of length 0 frees them now, where dropping the last
    /// reference frees them only when the garbage collector next runs.
    #[wasm_bindgen(method, catch)]
    fn transfer(this: &Detachable, length: u32) -> Result<JsValue, JsValue>;
}

/// How much of the file one hashing or copying step moves into the wasm heap.
const STEP: u32 = 1 << 20;

pub struct JsBytes {
    /// The pieces, in order; `None` once let go.
    pieces: Vec<Option<Uint8Array>>,
    /// Where each piece starts in the file.
    starts: Vec<u32>,
    len: u32,
    position: u32,
}

impl JsBytes {
    /// The file made of `pieces` (each a `Uint8Array`), in order.
    pub fn new(pieces: &js_sys::Array) -> Result<Self, JsError> {
        let mut bytes = Self {
            pieces: Vec::new(),
            starts: Vec::new(),
            len: 0,
            position: 0,
        };
        for piece in pieces.iter() {
            let piece: Uint8Array = piece
                .dyn_into()
                .map_err(|_| JsError::new("a part's pieces must be Uint8Arrays"))?;
            bytes.starts.push(bytes.len);
            bytes.len = bytes
                .len
                .checked_add(piece.length())
                .ok_or_else(|| JsError::new("a part is larger than 4 GB"))?;
            bytes.pieces.push(Some(piece));
        }
        Ok(bytes)
    }

    /// Every byte, in order, a step at a time (to hash the file without a copy of it).
    pub fn for_each_step(&self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        let mut buffer = vec![0u8; STEP.min(self.len) as usize];
        let mut start = 0;
        while start < self.len {
            let end = start.saturating_add(STEP).min(self.len);
            let step = &mut buffer[..(end - start) as usize];
            self.copy_at(start, step)?;
            f(step);
            start = end;
        }
        Ok(())
    }

    /// The whole file, copied into the wasm heap (for the parts the engine parses whole).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; self.len as usize];
        self.copy_at(0, &mut out)?;
        Ok(out)
    }

    /// Fills `out` with the bytes from `at` on, across pieces.
    fn copy_at(&self, mut at: u32, mut out: &mut [u8]) -> io::Result<()> {
        while !out.is_empty() {
            let n = self.copy_within_piece(at, out)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            out = &mut out[n..];
            at += n as u32;
        }
        Ok(())
    }

    /// Copies the bytes from `at` to the end of its piece, or fewer to fill `out`; 0 at the
    /// end of the file.
    fn copy_within_piece(&self, at: u32, out: &mut [u8]) -> io::Result<usize> {
        if at >= self.len || out.is_empty() {
            return Ok(0);
        }
        // The last piece starting at or before `at`.
        let index = self.starts.partition_point(|&start| start <= at) - 1;
        let Some(piece) = &self.pieces[index] else {
            return Err(io::Error::other(format!(
                "byte {at} of the file was read after it was let go"
            )));
        };
        let offset = at - self.starts[index];
        let n = (piece.length() - offset).min(u32::try_from(out.len()).unwrap_or(u32::MAX));
        piece
            .subarray(offset, offset + n)
            .copy_to(&mut out[..n as usize]);
        Ok(n as usize)
    }
}

impl Read for JsBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.copy_within_piece(self.position, buf)?;
        self.position += n as u32;
        Ok(n)
    }
}

impl Seek for JsBytes {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => (self.len as u64).checked_add_signed(d),
            SeekFrom::Current(d) => (self.position as u64).checked_add_signed(d),
        };
        match target.and_then(|t| u32::try_from(t).ok()) {
            // Past the end is allowed (reads there return nothing), as for files.
            Some(t) => {
                self.position = t;
                Ok(t as u64)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the file",
            )),
        }
    }
}

impl TensorSource for JsBytes {
    /// Lets go of every piece that holds none of the bytes still `needed`.
    fn retain(&mut self, needed: &[Range<u64>]) {
        for (index, slot) in self.pieces.iter_mut().enumerate() {
            let Some(piece) = slot else { continue };
            let start = self.starts[index] as u64;
            let end = start + piece.length() as u64;
            if needed.iter().any(|r| r.start < end && start < r.end) {
                continue;
            }
            // Detached only when the piece is its buffer's only view (as the worker makes
            // them): another view of it may still be read. An engine without `transfer`
            // frees the buffer at its next garbage collection instead.
            let buffer = piece.buffer();
            if piece.byte_offset() == 0 && piece.byte_length() == buffer.byte_length() {
                let _ = buffer.unchecked_ref::<Detachable>().transfer(0);
            }
            *slot = None;
        }
    }
}
