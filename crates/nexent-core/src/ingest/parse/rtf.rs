//! Rich Text Format: the document's text in paragraphs, by a small reader of RTF's syntax (groups, control
//! words with their parameters, control symbols). It skips the destinations that hold no body text (font,
//! colour and style tables, document info, pictures, objects, `\*` destinations), decodes `\'hh` escapes as
//! Windows-1252 and `\uN` as Unicode, honouring `\ucN` fallback counts. (The rtf-parser crate was tried
//! first and rejects valid `\uN?` sequences that every word processor writes.)

use super::text::paragraphs;
use super::{Element, ParseError};

/// Destinations whose text is not part of the body.
const SKIPPED_DESTINATIONS: [&str; 18] = [
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "header",
    "footer",
    "headerl",
    "headerr",
    "footerl",
    "footerr",
    "xmlnstbl",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "themedata",
];

/// Groups nest at most this deep; deeper input is refused rather than recursed into.
const MAX_DEPTH: usize = 1000;

#[derive(Clone, Copy)]
struct GroupState {
    skip: bool,
    /// Characters to drop after a `\uN` (the fallback for readers without Unicode).
    unicode_fallback: usize,
}

pub(super) fn rtf(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let start = bytes.iter().position(|byte| !byte.is_ascii_whitespace()).unwrap_or(0);
    if !bytes[start..].starts_with(b"{\\rtf") {
        return Err(ParseError::Malformed("this is not an RTF file (no {\\rtf header)".into()));
    }
    Ok(paragraphs(&rtf_text(&bytes[start..])?))
}

fn rtf_text(bytes: &[u8]) -> Result<String, ParseError> {
    let mut text = String::new();
    let mut stack: Vec<GroupState> = Vec::new();
    let mut state = GroupState { skip: false, unicode_fallback: 1 };
    let mut pending_fallback = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b'{' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::Malformed("the RTF groups nest too deeply".into()));
                }
                stack.push(state);
                at += 1;
                // `{\*\name ...}`: an optional destination a reader may ignore.
                if bytes[at..].starts_with(b"\\*") {
                    state.skip = true;
                }
            }
            b'}' => {
                state = stack.pop().unwrap_or(state);
                pending_fallback = 0;
                at += 1;
            }
            b'\\' => {
                let (control, next) = read_control(bytes, at + 1);
                at = next;
                match control {
                    Control::Word(word, parameter) => {
                        if pending_fallback > 0 && word != "u" {
                            pending_fallback = 0;
                        }
                        match word {
                            _ if SKIPPED_DESTINATIONS.contains(&word) => state.skip = true,
                            "par" | "line" | "sect" | "page" if !state.skip => text.push('\n'),
                            "row" if !state.skip => text.push('\n'),
                            "tab" | "cell" if !state.skip => text.push('\t'),
                            "uc" => state.unicode_fallback = parameter.unwrap_or(1).clamp(0, 16) as usize,
                            "u" => {
                                if !state.skip
                                    && let Some(code) = parameter
                                {
                                    // Values above 32767 are written as negative 16-bit numbers.
                                    let code = if code < 0 { code + 65536 } else { code };
                                    text.extend(u32::try_from(code).ok().and_then(char::from_u32));
                                }
                                pending_fallback = state.unicode_fallback;
                            }
                            "emdash" if !state.skip => text.push('\u{2014}'),
                            "endash" if !state.skip => text.push('\u{2013}'),
                            "bullet" if !state.skip => text.push('\u{2022}'),
                            "lquote" if !state.skip => text.push('\u{2018}'),
                            "rquote" if !state.skip => text.push('\u{2019}'),
                            "ldblquote" if !state.skip => text.push('\u{201c}'),
                            "rdblquote" if !state.skip => text.push('\u{201d}'),
                            _ => {}
                        }
                    }
                    Control::Hex(value) => {
                        if pending_fallback > 0 {
                            pending_fallback -= 1;
                        } else if !state.skip {
                            text.push(windows_1252(value));
                        }
                    }
                    Control::Symbol(symbol) => {
                        if pending_fallback > 0 {
                            pending_fallback -= 1;
                        } else if !state.skip {
                            match symbol {
                                '~' => text.push('\u{a0}'),
                                '_' => text.push('-'),
                                '\\' | '{' | '}' => text.push(symbol),
                                '\n' | '\r' => text.push('\n'),
                                _ => {} // `\-` (optional hyphen), `\|`, `\:`
                            }
                        }
                    }
                }
            }
            b'\r' | b'\n' => at += 1, // Line breaks in the source are not text.
            _ => {
                // A run of plain text up to the next special byte, decoded as Windows-1252.
                let end = bytes[at..]
                    .iter()
                    .position(|byte| matches!(byte, b'{' | b'}' | b'\\' | b'\r' | b'\n'))
                    .map_or(bytes.len(), |offset| at + offset);
                for &plain in &bytes[at..end] {
                    if pending_fallback > 0 {
                        pending_fallback -= 1;
                    } else if !state.skip {
                        text.push(windows_1252(plain));
                    }
                }
                at = end;
            }
        }
    }
    Ok(text)
}

enum Control<'a> {
    Word(&'a str, Option<i32>),
    Hex(u8),
    Symbol(char),
}

/// Reads the control word or symbol that starts at `at` (just after a backslash); returns where it ends,
/// past the space that may delimit a word.
fn read_control(bytes: &[u8], at: usize) -> (Control<'_>, usize) {
    let Some(&first) = bytes.get(at) else { return (Control::Symbol(' '), at) };
    if first == b'\'' {
        let hex = bytes.get(at + 1..at + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        return match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            Some(value) => (Control::Hex(value), at + 3),
            None => (Control::Symbol('\''), at + 1),
        };
    }
    if !first.is_ascii_alphabetic() {
        return (Control::Symbol(first as char), at + 1);
    }
    let word_end = bytes[at..].iter().position(|byte| !byte.is_ascii_alphabetic()).map_or(bytes.len(), |n| at + n);
    let word = std::str::from_utf8(&bytes[at..word_end]).unwrap_or("");
    let mut end = word_end;
    if bytes.get(end) == Some(&b'-') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let digits_end = bytes[end..].iter().position(|byte| !byte.is_ascii_digit()).map_or(bytes.len(), |n| end + n);
    let parameter = if digits_end > word_end {
        std::str::from_utf8(&bytes[word_end..digits_end]).ok().and_then(|number| number.parse::<i32>().ok())
    } else {
        None
    };
    let after = if bytes.get(digits_end) == Some(&b' ') { digits_end + 1 } else { digits_end };
    (Control::Word(word, parameter), after)
}

/// A Windows-1252 byte as a character (the 0x80–0x9F block differs from Latin-1).
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}',
        '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}',
        '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}',
        '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
    ];
    match byte {
        0x80..=0x9f => HIGH[(byte - 0x80) as usize],
        other => other as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(rtf: &str) -> String {
        rtf_text(rtf.as_bytes()).expect("rtf")
    }

    #[test]
    fn body_text_without_tables_and_with_escapes() {
        let document = r"{\rtf1\ansi\deff0{\fonttbl{\f0 Times;}}{\colortbl;\red0\green0\blue0;}{\*\generator Word;}{\info{\title T}}\f0\fs24 Caf\'e9 \b bold\b0\par Next \u8364?5 and 2\u183?9-3\par}";
        assert_eq!(text(document), "Café bold\nNext €5 and 2·9-3\n");
    }

    #[test]
    fn unicode_fallbacks_symbols_and_groups() {
        assert_eq!(text(r"{\rtf1\uc2 \u26085??x}"), "日x");
        assert_eq!(text(r"{\rtf1 a\~b\{c\}\\d\tab e}"), "a\u{a0}b{c}\\d\te");
        assert_eq!(text(r"{\rtf1 {\*\unknown hidden}shown{\pict 0a0b}}"), "shown");
        assert_eq!(text("{\\rtf1 line\none}"), "lineone");
        assert_eq!(text(r"{\rtf1 \u-3913?}"), "\u{f0b7}");
        let deep = format!("{{\\rtf1 {}", "{".repeat(MAX_DEPTH + 5));
        assert!(rtf_text(deep.as_bytes()).is_err());
    }
}
