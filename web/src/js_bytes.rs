//! Bytes that stay in JavaScript's memory (a `Uint8Array`), read into the wasm heap a piece
//! at a time. The generator's GGUF (92 MB) is read this way: its matrices are converted to
//! the kernels' layout one at a time, so the wasm heap, which never shrinks, never holds
//! the file itself beside them (the renderer's peak memory, measured by bench/browser).

use std::io::{self, Read, Seek, SeekFrom};

use js_sys::Uint8Array;

/// How much of the file one hashing step copies into the wasm heap.
const PIECE: u32 = 1 << 20;

pub struct JsBytes {
    array: Uint8Array,
    position: u32,
}

impl JsBytes {
    pub fn new(array: Uint8Array) -> Self {
        Self { array, position: 0 }
    }

    fn len(&self) -> u32 {
        self.array.length()
    }

    /// Every byte, in order, a piece at a time (to hash the file without a copy of it).
    pub fn for_each_piece(&self, mut f: impl FnMut(&[u8])) {
        let mut buffer = vec![0u8; PIECE.min(self.len()) as usize];
        let mut start = 0;
        while start < self.len() {
            let end = start.saturating_add(PIECE).min(self.len());
            let piece = &mut buffer[..(end - start) as usize];
            self.array.subarray(start, end).copy_to(piece);
            f(piece);
            start = end;
        }
    }
}

impl Read for JsBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len().saturating_sub(self.position);
        let n = left.min(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        let end = self.position + n;
        self.array
            .subarray(self.position, end)
            .copy_to(&mut buf[..n as usize]);
        self.position = end;
        Ok(n as usize)
    }
}

impl Seek for JsBytes {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => (self.len() as u64).checked_add_signed(d),
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
