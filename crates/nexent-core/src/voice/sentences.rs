//! Text for speech: what of an answer is read aloud, and in which pieces.
//!
//! Synthesis goes sentence by sentence so the first audio leaves while the rest is computed. Sentences end
//! at `.`, `!`, `?`, `…` followed by a space (or at the end), at CJK full stops, and at line breaks; not
//! after common abbreviations or initials. A sentence longer than [`MAX_SENTENCE_CHARS`] is cut at a comma
//! or a space, since the voice model's cost grows with its input and a long wait defeats streaming.
//! Citation marks (`[[a0]]`) and Markdown symbols are not read out.

pub const MAX_SENTENCE_CHARS: usize = 300;

const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx", "inc", "ltd",
];

/// `text` without citation marks and Markdown symbols, whitespace normalised per line.
pub fn speakable(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        cleaned.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start + 2..];
            }
        }
    }
    cleaned.push_str(rest);
    cleaned
        .lines()
        .map(|line| {
            let line = line.trim_start_matches(['#', '>', ' ', '\t']);
            let line = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")).unwrap_or(line);
            line.replace(['*', '`', '_', '|'], " ").split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        // A removed mark leaves a space before the punctuation that followed it.
        .replace(" .", ".")
        .replace(" !", "!")
        .replace(" ?", "?")
        .replace(" ,", ",")
        .replace(" ;", ";")
        .replace(" :", ":")
}

/// The sentences of `text` in order, each trimmed and at most [`MAX_SENTENCE_CHARS`] long.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    for line in text.lines() {
        let characters: Vec<char> = line.chars().collect();
        let mut start = 0;
        for index in 0..characters.len() {
            let character = characters[index];
            let next = characters.get(index + 1).copied();
            let ends = match character {
                '。' | '！' | '？' | '；' => true,
                '.' | '!' | '?' | '…' => {
                    next.is_none_or(char::is_whitespace)
                        && !(character == '.' && is_abbreviation(&characters[start..index]))
                }
                _ => false,
            };
            if ends {
                push_sentence(&mut sentences, &characters[start..=index]);
                start = index + 1;
            }
        }
        push_sentence(&mut sentences, &characters[start..]);
    }
    sentences
}

fn is_abbreviation(before: &[char]) -> bool {
    let word: String = before.iter().rev().take_while(|character| !character.is_whitespace()).collect();
    let word: String = word.chars().rev().collect::<String>().to_lowercase();
    let word = word.trim_start_matches(|character: char| !character.is_alphanumeric());
    // A single letter is an initial ("J. R. R. Tolkien").
    (word.chars().count() == 1 && word.chars().all(char::is_alphabetic)) || ABBREVIATIONS.contains(&word)
}

fn push_sentence(sentences: &mut Vec<String>, characters: &[char]) {
    let sentence: String = characters.iter().collect();
    let mut rest = sentence.trim();
    while rest.chars().count() > MAX_SENTENCE_CHARS {
        let limit = rest.char_indices().nth(MAX_SENTENCE_CHARS).map_or(rest.len(), |(at, _)| at);
        let head = &rest[..limit];
        let cut = head
            .rfind([',', ';', ':', '，', '、'])
            .map(|at| at + head[at..].chars().next().map_or(1, char::len_utf8))
            .or_else(|| head.rfind(' '))
            .filter(|&at| at > 0)
            .unwrap_or(limit);
        sentences.push(rest[..cut].trim().to_owned());
        rest = rest[cut..].trim_start();
    }
    if rest.chars().any(char::is_alphanumeric) {
        sentences.push(rest.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_stops_but_not_after_abbreviations_initials_or_decimals() {
        let sentences = split_sentences("Dr. Smith paid $3.50 today. J. R. Tolkien wrote it! Did he? Yes…");
        assert_eq!(sentences, vec!["Dr. Smith paid $3.50 today.", "J. R. Tolkien wrote it!", "Did he?", "Yes…"]);
    }

    #[test]
    fn chinese_full_stops_and_line_breaks_end_sentences() {
        assert_eq!(split_sentences("你好。今天天气很好！\nNext line"), vec!["你好。", "今天天气很好！", "Next line"]);
    }

    #[test]
    fn long_sentences_are_cut_at_a_comma_or_a_space() {
        let long = format!("{}, {}", "word ".repeat(40).trim(), "more ".repeat(40).trim());
        let sentences = split_sentences(&long);
        assert!(sentences.len() >= 2);
        assert!(sentences.iter().all(|sentence| sentence.chars().count() <= MAX_SENTENCE_CHARS));
        assert!(sentences[0].ends_with(','));
        let unbroken = "x".repeat(700);
        assert_eq!(split_sentences(&unbroken).len(), 3);
    }

    #[test]
    fn punctuation_alone_is_no_sentence() {
        assert!(split_sentences(" ... !! ").is_empty());
    }

    #[test]
    fn citations_and_markdown_are_not_read_out() {
        assert_eq!(
            speakable("## Answer\n**Paris** is the capital[[a0]] of `France`.[[a1]]\n- one item"),
            "Answer\nParis is the capital of France.\none item"
        );
    }
}
