//! What the tasks' prompts share: a token budget, and cutting text to fit one.

/// Token limits of a prompt that quotes movies' overviews. Each task declares its own
/// (`tagline::BUDGET`, `recommend::BUDGET`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The whole prompt, quoted movies included.
    pub max_prompt_tokens: usize,
    /// Each quoted overview is cut to this many tokens.
    pub max_overview_tokens: usize,
}

/// The longest run of `text`'s first words that, followed by `suffix`, is at most
/// `max_tokens` tokens (by `count`). A binary search over the word count: a tokenizer
/// counts a run of words as no fewer tokens than any shorter run.
pub(crate) fn first_words(
    text: &str,
    max_tokens: usize,
    suffix: &str,
    count: &dyn Fn(&str) -> usize,
) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (mut low, mut high) = (0, words.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if count(&format!("{}{suffix}", words[..mid].join(" "))) <= max_tokens {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    format!("{}{suffix}", words[..low].join(" "))
}

/// `text` as it is when it fits `max_tokens` (by `count`), else cut at a word boundary and
/// ended with "…".
pub(crate) fn shorten(text: &str, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> String {
    if count(text) <= max_tokens {
        return text.to_string();
    }
    first_words(text, max_tokens, "…", count)
}

/// One token per word: what the prompts' tests count with, enough to test a budget.
#[cfg(test)]
pub(crate) fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_word_boundary_to_fit() {
        assert_eq!(shorten("one two three", 3, &words), "one two three");
        assert_eq!(shorten("one two three four", 3, &words), "one two three…");
        assert_eq!(first_words("one two three four", 2, "", &words), "one two");
        assert_eq!(first_words("one two", 0, "", &words), "");
    }
}
