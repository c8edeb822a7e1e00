//! SQuAD's answer metrics: exact match and token F1 after normalisation (lowercase, no
//! punctuation, no articles, single spaces), each the best over the answer set, since many
//! questions have several right answers (every lead of a cast, every genre).

/// SQuAD's `normalize_answer`.
pub fn normalize(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punct: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    no_punct
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// 1 when `prediction` normalises to one of `answers`, else 0.
pub fn exact_match(prediction: &str, answers: &[String]) -> f64 {
    let p = normalize(prediction);
    f64::from(u8::from(answers.iter().any(|a| normalize(a) == p)))
}

fn f1(prediction: &str, answer: &str) -> f64 {
    let p = normalize(prediction);
    let a = normalize(answer);
    let (p, a): (Vec<&str>, Vec<&str>) = (p.split(' ').collect(), a.split(' ').collect());
    if p == [""] || a == [""] {
        return f64::from(u8::from(p == a));
    }
    let mut left = a.clone();
    let mut common = 0usize;
    for word in &p {
        if let Some(i) = left.iter().position(|w| w == word) {
            left.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / a.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The best token F1 of `prediction` against any of `answers`.
pub fn token_f1(prediction: &str, answers: &[String]) -> f64 {
    answers
        .iter()
        .map(|a| f1(prediction, a))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation_and_scores() {
        assert_eq!(normalize("The  Ridley Scott!"), "ridley scott");
        let answers = vec!["Ridley Scott".to_string(), "Jerry Goldsmith".to_string()];
        assert_eq!(exact_match("ridley scott.", &answers), 1.0);
        assert_eq!(exact_match("Ridley Scott directed it", &answers), 0.0);
        assert_eq!(token_f1("Jerry Goldsmith", &answers), 1.0);
        let f = token_f1("Ridley Scott directed it", &answers);
        assert!((f - 2.0 * 0.5 / 1.5).abs() < 1e-12, "{f}");
        assert_eq!(token_f1("nobody", &answers), 0.0);
        assert_eq!(exact_match("", &answers), 0.0);
    }
}
