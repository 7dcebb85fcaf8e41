//! Chunking strategies (nexent-api.md §3.4): `basic` (Nexent's defaults: at most 1500 characters, a new
//! chunk begun once 500 are reached, never cutting a word), `by_title` (a new section at each heading,
//! then the same size rules inside it), and `none` (one chunk per parsed element). Pure functions.

use super::parse::Element;

pub const MAX_CHARACTERS: usize = 1500;
pub const NEW_AFTER_CHARACTERS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkingStrategy {
    Basic,
    ByTitle,
    None,
}

impl ChunkingStrategy {
    /// Nexent's names; empty or missing means `basic`.
    pub fn parse(name: Option<&str>) -> Result<Self, String> {
        match name.map(str::trim).unwrap_or("") {
            "" | "basic" => Ok(ChunkingStrategy::Basic),
            "by_title" => Ok(ChunkingStrategy::ByTitle),
            "none" => Ok(ChunkingStrategy::None),
            other => Err(format!("unknown chunking strategy {other:?}: use basic, by_title or none")),
        }
    }
}

/// A chunk of text with the metadata of the element(s) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TextChunk {
    pub text: String,
    /// The heading path of the section (`by_title`) or of the first element.
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
}

pub fn chunk_elements(elements: &[Element], strategy: ChunkingStrategy) -> Vec<TextChunk> {
    match strategy {
        ChunkingStrategy::None => elements
            .iter()
            .filter(|element| !element.text.trim().is_empty())
            .map(|element| TextChunk {
                text: element.text.trim().to_owned(),
                heading_path: element.heading_path.clone(),
                page: element.page,
            })
            .collect(),
        ChunkingStrategy::Basic => pack(elements, false),
        ChunkingStrategy::ByTitle => pack(elements, true),
    }
}

/// Packs element texts into chunks; with `split_at_titles`, a heading always starts a new chunk.
fn pack(elements: &[Element], split_at_titles: bool) -> Vec<TextChunk> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_heading: Vec<String> = Vec::new();
    let mut current_page = None;
    let flush = |current: &mut String, heading: &[String], page: Option<u32>, chunks: &mut Vec<TextChunk>| {
        let text = current.trim();
        if !text.is_empty() {
            chunks.push(TextChunk { text: text.to_owned(), heading_path: heading.to_vec(), page });
        }
        current.clear();
    };
    for element in elements {
        let text = element.text.trim();
        if text.is_empty() {
            continue;
        }
        if split_at_titles && element.is_title {
            flush(&mut current, &current_heading, current_page, &mut chunks);
        }
        if current.is_empty() {
            current_heading = element.heading_path.clone();
            current_page = element.page;
        }
        for piece in split_long(text, MAX_CHARACTERS) {
            let piece_length = piece.chars().count();
            let current_length = current.chars().count();
            if current_length > 0
                && (current_length >= NEW_AFTER_CHARACTERS || current_length + 2 + piece_length > MAX_CHARACTERS)
            {
                flush(&mut current, &current_heading, current_page, &mut chunks);
                current_heading = element.heading_path.clone();
                current_page = element.page;
            }
            if !current.is_empty() {
                current.push_str("\n\n");
            }
            current.push_str(&piece);
        }
    }
    flush(&mut current, &current_heading, current_page, &mut chunks);
    chunks
}

/// Splits text longer than `max` characters at whitespace (a single word longer than `max` is cut,
/// since nothing else can be done with it).
fn split_long(text: &str, max: usize) -> Vec<String> {
    if text.chars().count() <= max {
        return vec![text.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_length = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        let word_length = word.chars().count();
        if current_length + word_length > max && current_length > 0 {
            pieces.push(current.trim().to_owned());
            current.clear();
            current_length = 0;
        }
        if word_length > max {
            let characters: Vec<char> = word.chars().collect();
            for slice in characters.chunks(max) {
                pieces.push(slice.iter().collect::<String>().trim().to_owned());
            }
            continue;
        }
        current.push_str(word);
        current_length += word_length;
    }
    if !current.trim().is_empty() {
        pieces.push(current.trim().to_owned());
    }
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraph(text: &str) -> Element {
        Element { text: text.into(), ..Element::default() }
    }

    fn title(text: &str) -> Element {
        Element { text: text.into(), is_title: true, heading_path: vec![text.into()], ..Element::default() }
    }

    #[test]
    fn basic_packs_small_paragraphs_and_starts_anew_after_500() {
        let elements: Vec<Element> =
            (0..20).map(|i| paragraph(&format!("Paragraph {i} {}", "word ".repeat(20)))).collect();
        let chunks = chunk_elements(&elements, ChunkingStrategy::Basic);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chunk.text.chars().count() <= MAX_CHARACTERS);
        }
        // Each chunk but the last passed 500 characters before a new one began.
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(chunk.text.chars().count() >= NEW_AFTER_CHARACTERS, "{}", chunk.text.len());
        }
    }

    #[test]
    fn long_text_is_split_without_cutting_words() {
        let long = "alpha beta gamma delta ".repeat(200);
        let chunks = chunk_elements(&[paragraph(&long)], ChunkingStrategy::Basic);
        assert!(chunks.len() >= 3);
        for chunk in &chunks {
            assert!(chunk.text.chars().count() <= MAX_CHARACTERS);
            for word in chunk.text.split_whitespace() {
                assert!(["alpha", "beta", "gamma", "delta"].contains(&word), "cut word {word:?}");
            }
        }
        let joined: Vec<&str> = chunks.iter().flat_map(|chunk| chunk.text.split_whitespace()).collect();
        assert_eq!(joined.len(), 800, "nothing lost");
    }

    #[test]
    fn by_title_starts_a_chunk_at_each_heading() {
        let elements = vec![title("Intro"), paragraph("a short intro"), title("Usage"), paragraph("how to use it")];
        let chunks = chunk_elements(&elements, ChunkingStrategy::ByTitle);
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].text.starts_with("Intro") && chunks[1].text.starts_with("Usage"));
        assert_eq!(chunks[1].heading_path, ["Usage"]);
        assert_eq!(chunk_elements(&elements, ChunkingStrategy::Basic).len(), 1);
        assert_eq!(chunk_elements(&elements, ChunkingStrategy::None).len(), 4);
    }

    #[test]
    fn strategy_names() {
        assert_eq!(ChunkingStrategy::parse(None), Ok(ChunkingStrategy::Basic));
        assert_eq!(ChunkingStrategy::parse(Some("")), Ok(ChunkingStrategy::Basic));
        assert_eq!(ChunkingStrategy::parse(Some("by_title")), Ok(ChunkingStrategy::ByTitle));
        assert!(ChunkingStrategy::parse(Some("fancy")).is_err());
    }
}
