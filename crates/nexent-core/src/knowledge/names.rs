//! Knowledge-base (index) names. A name becomes a folder under `indices/`, so it must not be able to
//! escape it; the rules otherwise follow Elasticsearch's, which Nexent's users already know: lower case,
//! no separators or wildcards, no leading `-`, `_`, `+` or `.`. Letters of any script are allowed
//! (Nexent's users name knowledge bases in Chinese).

pub const MAX_INDEX_NAME_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid index name {name:?}: {reason}")]
pub struct InvalidIndexName {
    pub name: String,
    pub reason: &'static str,
}

/// Checks an index name; the same rules apply to every route that names an index.
pub fn validate_index_name(name: &str) -> Result<(), InvalidIndexName> {
    let invalid = |reason| Err(InvalidIndexName { name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    // A name becomes a folder name, which Linux limits to 255 bytes.
    if name.chars().count() > MAX_INDEX_NAME_CHARS || name.len() > 255 {
        return invalid("it is longer than 128 characters (or 255 bytes)");
    }
    if name == "." || name == ".." || name.contains("..") {
        return invalid("it may not contain '..'");
    }
    if name.starts_with(['-', '_', '+', '.']) {
        return invalid("it may not start with '-', '_', '+' or '.'");
    }
    for character in name.chars() {
        if character.is_control() || character.is_whitespace() {
            return invalid("it may not contain spaces or control characters");
        }
        if matches!(character, '/' | '\\' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | '\0') {
            return invalid("it may not contain / \\ * ? \" < > | , # or :");
        }
        if character.is_uppercase() {
            return invalid("it must be lower case");
        }
    }
    Ok(())
}

/// Whether `name` matches a pattern of `*` wildcards (GET /api/indices?pattern=), as Elasticsearch does.
pub fn matches_pattern(name: &str, pattern: &str) -> bool {
    pattern.split(',').map(str::trim).filter(|part| !part.is_empty()).any(|part| wildcard_match(name, part))
}

fn wildcard_match(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut text_at, mut pattern_at) = (0usize, 0usize);
    let (mut star_at, mut star_text_at) = (None, 0usize);
    while text_at < text.len() {
        if pattern_at < pattern.len() && (pattern[pattern_at] == text[text_at]) {
            text_at += 1;
            pattern_at += 1;
        } else if pattern_at < pattern.len() && pattern[pattern_at] == '*' {
            star_at = Some(pattern_at);
            star_text_at = text_at;
            pattern_at += 1;
        } else if let Some(star) = star_at {
            pattern_at = star + 1;
            star_text_at += 1;
            text_at = star_text_at;
        } else {
            return false;
        }
    }
    pattern[pattern_at..].iter().all(|character| *character == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_chinese_names() {
        for name in ["docs", "test_index_documents", "kb-2025", "知识库", "a.b"] {
            assert_eq!(validate_index_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_or_confuse() {
        for name in [
            "",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "Docs",
            "-x",
            "_x",
            ".hidden",
            "a b",
            "a\0b",
            "x*",
            "a:b",
            &"x".repeat(129),
            &"\u{4e2d}".repeat(100),
        ] {
            assert!(validate_index_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn wildcard_patterns() {
        assert!(matches_pattern("test_docs", "*"));
        assert!(matches_pattern("test_docs", "test_*"));
        assert!(matches_pattern("test_docs", "*docs"));
        assert!(matches_pattern("test_docs", "other,test*"));
        assert!(!matches_pattern("test_docs", "prod_*"));
        assert!(matches_pattern("abc", "a*c"));
        assert!(!matches_pattern("abcd", "a*c"));
    }
}
