//! BM25 over the chunks: the lexical signal beside MiniLM. Dense retrievers miss rare names
//! on templated questions (EntityQuestions: DPR 49.7 % top-20 against BM25's 72.0 %), and a
//! name or a title is exactly what a movie question turns on. Built when the passages load
//! (a few hundred milliseconds for the catalogue's chunks), so the bundle ships no postings.

use std::collections::HashMap;

/// Words a question is made of that say nothing about which movie it is about.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "by", "did", "do", "does", "film", "for", "from", "how", "in",
    "is", "it", "long", "movie", "of", "on", "star", "starred", "the", "to", "was", "what", "when",
    "which", "who", "whom", "with", "year",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Lowercase words of letters and digits; a possessive "'s" is dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .map(|w| w.strip_suffix("'s").map(str::to_string).unwrap_or(w))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A BM25 index (k1 = 1.2, b = 0.75, Lucene's idf, which is never negative).
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u16)>>,
    lengths: Vec<u16>,
    average_length: f32,
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

impl Bm25 {
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
        let mut lengths = Vec::new();
        for (doc, text) in texts.into_iter().enumerate() {
            let words = words(text);
            lengths.push(words.len().min(u16::MAX as usize) as u16);
            let mut counts: HashMap<String, u16> = HashMap::new();
            for w in words {
                *counts.entry(w).or_default() += 1;
            }
            for (word, count) in counts {
                postings.entry(word).or_default().push((doc as u32, count));
            }
        }
        let total: f32 = lengths.iter().map(|&l| f32::from(l)).sum();
        let average_length = total / lengths.len().max(1) as f32;
        Self {
            postings,
            lengths,
            average_length: average_length.max(1.0),
        }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Every text's score for `query` (0 for texts sharing no word with it). Query words are
    /// deduplicated and taken in order, so the sums, and the scores, do not depend on the
    /// hash map's order.
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let mut scores = vec![0f32; self.lengths.len()];
        let n = self.lengths.len() as f32;
        let mut seen: Vec<String> = Vec::new();
        for word in words(query) {
            if is_stopword(&word) || seen.contains(&word) {
                continue;
            }
            let Some(list) = self.postings.get(&word) else {
                seen.push(word);
                continue;
            };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let tf = f32::from(tf);
                let norm =
                    1.0 - B + B * f32::from(self.lengths[doc as usize]) / self.average_length;
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
            }
            seen.push(word);
        }
        scores
    }

    /// The `k` best texts with a score above 0, best first (ties: the earlier text).
    pub fn search(&self, query: &str, k: usize) -> Vec<(usize, f32)> {
        best(&self.scores(query), k)
    }
}

/// The `k` best of `scores` above 0, best first (ties: the earlier one).
pub fn best(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut hits: Vec<(usize, f32)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| *s > 0.0)
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits.truncate(k);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_without_punctuation_or_possessives() {
        assert_eq!(
            words("Who directed Schindler's List? (1993) Dan O'Bannon"),
            [
                "who",
                "directed",
                "schindler",
                "list",
                "1993",
                "dan",
                "o'bannon"
            ]
        );
    }

    #[test]
    fn a_rare_name_outranks_common_words() {
        let texts = [
            "Alien (1979): Directed by Ridley Scott. Starring Sigourney Weaver.",
            "Heat (1995): Directed by Michael Mann. Starring Al Pacino.",
            "Avatar (2009): Directed by James Cameron. Starring Sigourney Weaver.",
            "Up (2009): Directed by Pete Docter.",
        ];
        let index = Bm25::build(texts);
        let hits = index.search("Which film did Michael Mann direct?", 3);
        assert_eq!(hits[0].0, 1, "{hits:?}");
        let hits = index.search("Who directed Alien?", 4);
        assert_eq!(hits[0].0, 0, "{hits:?}");
        let hits = index.search("Sigourney Weaver 2009", 4);
        assert_eq!(hits[0].0, 2, "both words beat one: {hits:?}");
        assert!(
            index.search("what is the film", 4).is_empty(),
            "stopwords only"
        );
        assert_eq!(index.scores("weaver weaver"), index.scores("weaver"));
    }
}
