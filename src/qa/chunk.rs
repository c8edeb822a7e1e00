//! Overlapping token windows over a document. The caller tokenizes (any tokenizer with byte
//! offsets: the builder uses MiniLM's, whose 256-token limit a chunk must respect) and this
//! cuts: windows of `size` tokens, each starting `size - overlap` tokens after the last, so a
//! fact cut at one window's edge is whole in the next. Edges are moved out to whitespace so
//! no word is split.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Window size and overlap, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    pub size: usize,
    pub overlap: usize,
}

impl Default for ChunkParams {
    /// 64 MiniLM tokens (≈ 70 of SmolLM2's) with 16 shared: a question (≈ 15), the best
    /// chunk with its header (≈ 80) and a short answer fit a prompt the page prefills in
    /// about a second (≈ 90 tokens/s in wasm, README "In the browser"), and most facts
    /// are shorter than the overlap.
    fn default() -> Self {
        Self {
            size: 64,
            overlap: 16,
        }
    }
}

impl ChunkParams {
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || self.overlap >= self.size {
            return Err(Error::InvalidArgument(format!(
                "chunks need a size of at least 1 token and an overlap below it (size {}, overlap {})",
                self.size, self.overlap
            )));
        }
        Ok(())
    }
}

fn snap_back(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    match text[..at].rfind(char::is_whitespace) {
        Some(space) => space + text[space..].chars().next().map_or(1, char::len_utf8),
        None => 0,
    }
}

fn snap_forward(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    text[at..]
        .find(char::is_whitespace)
        .map_or(text.len(), |space| at + space)
}

/// The byte ranges of `text`'s chunks, given its tokens' byte `spans` in order.
pub fn windows(
    text: &str,
    spans: &[(usize, usize)],
    params: ChunkParams,
) -> Result<Vec<Range<usize>>> {
    params.validate()?;
    let mut out: Vec<Range<usize>> = Vec::new();
    let step = params.size - params.overlap;
    let mut first = 0;
    while first < spans.len() {
        let last = (first + params.size).min(spans.len());
        let range = snap_back(text, spans[first].0)..snap_forward(text, spans[last - 1].1);
        // Long words can snap two windows to the same edges.
        if out.last() != Some(&range) && !text[range.clone()].trim().is_empty() {
            out.push(range);
        }
        if last == spans.len() {
            break;
        }
        first += step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per character run between spaces, split again every 3 bytes (a crude
    /// sub-word tokenizer: words are cut across tokens, as WordPiece cuts them).
    fn spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        for word in text.split(' ') {
            let mut start = at;
            while start < at + word.len() {
                let mut end = (start + 3).min(at + word.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                out.push((start, end));
                start = end;
            }
            at += word.len() + 1;
        }
        out
    }

    #[test]
    fn windows_overlap_cover_everything_and_never_split_words() {
        let text =
            "Directed by Ridley Scott. Starring Sigourney Weaver as Ellen Ripley. Crème brûlée.";
        let tokens = spans(text);
        let params = ChunkParams {
            size: 8,
            overlap: 3,
        };
        let chunks = windows(text, &tokens, params).expect("valid");
        assert!(chunks.len() > 2, "{chunks:?}");
        assert_eq!(chunks[0].start, 0);
        assert_eq!(chunks.last().map(|c| c.end), Some(text.len()));
        for pair in chunks.windows(2) {
            assert!(
                pair[1].start < pair[0].end,
                "consecutive chunks overlap: {pair:?}"
            );
            assert!(pair[1].start > pair[0].start);
        }
        for c in &chunks {
            let piece = &text[c.clone()];
            assert!(c.start == 0 || text[..c.start].ends_with(' '), "{piece:?}");
            assert!(
                c.end == text.len() || text[c.end..].starts_with(' '),
                "{piece:?}"
            );
        }
    }

    #[test]
    fn short_texts_are_one_chunk_and_bad_settings_are_refused() {
        let text = "Music by Jerry Goldsmith.";
        let one = windows(text, &spans(text), ChunkParams::default()).expect("valid");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], 0..text.len());
        assert!(windows("", &[], ChunkParams::default())
            .expect("valid")
            .is_empty());
        for (size, overlap) in [(0, 0), (4, 4), (4, 9)] {
            let err = windows(text, &spans(text), ChunkParams { size, overlap }).expect_err("bad");
            assert!(err.to_string().contains("overlap"), "{err}");
        }
    }

    #[test]
    fn a_window_count_follows_size_and_overlap() {
        let text = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let tokens: Vec<(usize, usize)> = {
            let mut at = 0;
            text.split(' ')
                .map(|w| {
                    let span = (at, at + w.len());
                    at += w.len() + 1;
                    span
                })
                .collect()
        };
        let chunks = windows(
            &text,
            &tokens,
            ChunkParams {
                size: 20,
                overlap: 5,
            },
        )
        .expect("ok");
        // Windows start at tokens 0, 15, 30, 45, 60, 75 and 90 (which reaches the end).
        assert_eq!(chunks.len(), 7);
        assert!(text[chunks[1].clone()].starts_with("w15 "));
    }
}
