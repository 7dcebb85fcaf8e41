//! The text analyzer of knowledge-base fields: Chinese word segmentation (jieba, dictionary compiled
//! in) for CJK runs, words for everything else, then lower case and the English (Porter/Snowball)
//! stemmer. Tokens without a letter or digit (spaces, punctuation) are dropped, so "；" and " " never
//! become terms.

use std::sync::{Arc, LazyLock};

use jieba_rs::{Jieba, TokenizeMode};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name fields are indexed under; registered on every opened index.
pub const MIXED_ANALYZER: &str = "nexent_mixed";

/// Loading jieba's dictionary takes a moment and some memory: once per process, shared by all clones.
static JIEBA: LazyLock<Arc<Jieba>> = LazyLock::new(|| Arc::new(Jieba::new()));

#[derive(Clone)]
pub struct MixedTokenizer {
    jieba: Arc<Jieba>,
}

impl Default for MixedTokenizer {
    fn default() -> Self {
        Self { jieba: JIEBA.clone() }
    }
}

pub struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        // Search mode also emits the shorter words inside long compounds (中华人民共和国 → 中华, 人民, ...),
        // which is what recall wants for both documents and queries.
        let tokens = self
            .jieba
            .tokenize(text, TokenizeMode::Search, true)
            .into_iter()
            .filter(|token| token.word.chars().any(char::is_alphanumeric))
            .enumerate()
            .map(|(position, token)| Token {
                offset_from: token.byte_start,
                offset_to: token.byte_end,
                position,
                text: token.word.to_owned(),
                position_length: 1,
            })
            .collect();
        VecTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The analyzer registered as [`MIXED_ANALYZER`] for the keyword-searched text, with English stop
/// words removed (they only add noise to BM25 scores).
pub fn keyword_analyzer() -> TextAnalyzer {
    let builder =
        TextAnalyzer::builder(MixedTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter(stop_words).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

/// The terms [`keyword_analyzer`] makes of `text`, in order (a store that keeps its own term statistics
/// analyses documents and queries with it, as Tantivy does).
pub fn analyse(text: &str) -> Vec<String> {
    let mut analyzer = keyword_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        analyse(text)
    }

    #[test]
    fn english_is_lowercased_and_stemmed_without_punctuation() {
        assert_eq!(terms("Running the tests, quickly!"), ["run", "test", "quick"]);
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let words = terms("我们在北京大学学习机器学习。");
        assert!(words.contains(&"北京".to_owned()), "{words:?}");
        assert!(words.contains(&"机器".to_owned()) || words.contains(&"机器学习".to_owned()), "{words:?}");
        assert!(!words.iter().any(|word| word == "。"));
    }

    #[test]
    fn mixed_text_keeps_both() {
        let words = terms("Nexent 知识库 supports documents");
        assert!(words.contains(&"nexent".to_owned()) && words.contains(&"知识库".to_owned()), "{words:?}");
        assert!(words.contains(&"document".to_owned()), "{words:?}");
    }
}
