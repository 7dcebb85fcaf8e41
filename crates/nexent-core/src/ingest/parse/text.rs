//! The text formats: plain text and source code, Markdown, HTML, CSV/TSV, JSON and XML.

use super::budget::{self, path_heading};
use super::{Element, ParseError};

pub(super) fn text_of(bytes: &[u8]) -> Result<&str, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| ParseError::NotText)
}

/// Blank-line separated paragraphs (as many as the output budget allows).
pub(super) fn paragraphs(text: &str) -> Vec<Element> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| Element { text: paragraph.to_owned(), ..Element::default() })
        .take_while(budget::charge_element)
        .collect()
}

pub(super) fn markdown(text: &str) -> Vec<Element> {
    let mut elements = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut paragraph = String::new();
    let flush = |paragraph: &mut String, headings: &[(usize, String)], elements: &mut Vec<Element>| {
        let text = paragraph.trim();
        if !text.is_empty() && budget::charge(text.len(), text.lines().count()) {
            elements.push(Element {
                text: text.to_owned(),
                heading_path: heading_path(headings),
                ..Element::default()
            });
        }
        paragraph.clear();
    };
    let mut in_code = false;
    for line in text.replace("\r\n", "\n").lines() {
        if budget::spent() {
            break;
        }
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if !in_code && (1..=6).contains(&level) && line[level..].starts_with(' ') {
            flush(&mut paragraph, &headings, &mut elements);
            let heading = line[level..].trim().to_owned();
            headings.retain(|(existing, _)| *existing < level);
            headings.push((level, heading.clone()));
            elements.push(Element {
                text: heading,
                is_title: true,
                heading_path: heading_path(&headings),
                ..Element::default()
            });
        } else if line.trim().is_empty() && !in_code {
            flush(&mut paragraph, &headings, &mut elements);
        } else {
            paragraph.push_str(line);
            paragraph.push('\n');
        }
    }
    flush(&mut paragraph, &headings, &mut elements);
    elements
}

pub(super) fn delimited(text: &str, separator: char) -> Vec<Element> {
    table(
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| split_row(line, separator).join(" | "))
            .collect(),
    )
}

/// Rows of a table in groups, each group headed by the first row, so every chunk can be read on its own.
/// The header repeated on later groups is cut to a few hundred bytes: a huge header would otherwise be
/// copied once per 20 rows.
pub(super) fn table(rows: Vec<String>) -> Vec<Element> {
    let Some((header, body)) = rows.split_first() else { return Vec::new() };
    if body.is_empty() {
        return vec![Element { text: header.clone(), ..Element::default() }]
            .into_iter()
            .take_while(budget::charge_element)
            .collect();
    }
    let repeated_header = path_heading(header);
    body.chunks(20)
        .enumerate()
        .map(|(group_index, group)| {
            let group_header = if group_index == 0 { header.as_str() } else { repeated_header.as_str() };
            Element { text: format!("{group_header}\n{}", group.join("\n")), ..Element::default() }
        })
        .take_while(budget::charge_element)
        .collect()
}

/// Splits one row at `separator`, honouring double-quoted fields (`"a, b"` and `""` escapes).
fn split_row(line: &str, separator: char) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(character) = chars.next() {
        match character {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == separator && !quoted => fields.push(std::mem::take(&mut field).trim().to_owned()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_owned());
    fields
}

pub(super) fn json(text: &str) -> Result<Vec<Element>, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| ParseError::Malformed(error.to_string()))?;
    let mut lines = Vec::new();
    flatten_json(&mut String::new(), &value, &mut lines);
    Ok(lines.chunks(30).map(|group| Element { text: group.join("\n"), ..Element::default() }).collect())
}

/// Key paths longer than this are shown by their end only: every leaf repeats its path, so ten levels of
/// 10,000-character keys would otherwise cost 100 KB per leaf.
const MAX_JSON_PATH_BYTES: usize = 128;
/// Keys longer than this are cut inside paths (the key itself is text the leaf line does not need whole).
const MAX_JSON_KEY_BYTES: usize = 64;

/// One `path: value` line per leaf. `path` is the full (key-cut) path, grown and shrunk in place so a deep
/// document costs one path buffer, not one per level.
fn flatten_json(path: &mut String, value: &serde_json::Value, lines: &mut Vec<String>) {
    if budget::spent() {
        return;
    }
    let restore = path.len();
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(cut_at_boundary(key, MAX_JSON_KEY_BYTES));
                flatten_json(path, child, lines);
                path.truncate(restore);
            }
        }
        // A list of plain values is one line: a leaf per line would repeat the path once per value.
        serde_json::Value::Array(items)
            if !items.is_empty() && items.iter().all(|item| !item.is_array() && !item.is_object()) =>
        {
            let values: Vec<String> = items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            let line = format!("{}: {}", shown_path(path), values.join(", "));
            if budget::charge(line.len() + 24, 1) {
                lines.push(line);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                flatten_json(path, child, lines);
                path.truncate(restore);
            }
        }
        leaf => {
            let shown = shown_path(path);
            let line = match leaf {
                serde_json::Value::String(text) => format!("{shown}: {text}"),
                other => format!("{shown}: {other}"),
            };
            if budget::charge(line.len() + 24, 1) {
                lines.push(line);
            }
        }
    }
}

/// The last [`MAX_JSON_PATH_BYTES`] of a path, marked with a leading ellipsis when cut.
fn shown_path(path: &str) -> String {
    if path.len() <= MAX_JSON_PATH_BYTES {
        return path.to_owned();
    }
    let mut start = path.len() - MAX_JSON_PATH_BYTES;
    while !path.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &path[start..])
}

fn cut_at_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The heading texts of a `(level, text)` stack, outermost first, each cut for repetition (charged to the
/// output budget: the path is copied onto every element below it).
pub(super) fn heading_path(headings: &[(usize, String)]) -> Vec<String> {
    let path: Vec<String> = headings.iter().map(|(_, heading)| path_heading(heading)).collect();
    budget::charge(path.iter().map(String::len).sum(), 0);
    path
}

pub(super) fn html(text: &str) -> Vec<Element> {
    // Headings become title elements; everything else is block text with tags removed.
    let mut elements = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut offset = 0;
    let mut headings: Vec<(usize, String)> = Vec::new();
    let push_body = |html: &str, headings: &[(usize, String)], elements: &mut Vec<Element>| {
        elements.extend(
            paragraphs(&strip_tags(html))
                .into_iter()
                .map(|element| Element { heading_path: heading_path(headings), ..element }),
        );
    };
    while let Some((at, level)) = find_heading(&lower[offset..]).map(|(at, level)| (offset + at, level)) {
        if budget::spent() {
            break;
        }
        push_body(&text[offset..at], &headings, &mut elements);
        let close = format!("</h{level}");
        let end = lower[at..].find(&close).map(|found| at + found).unwrap_or(lower.len());
        let heading = strip_tags(&text[at..end]).trim().to_owned();
        headings.retain(|(existing, _)| *existing < level);
        headings.push((level, heading.clone()));
        if !heading.is_empty() {
            elements.push(Element {
                text: heading,
                is_title: true,
                heading_path: heading_path(&headings),
                ..Element::default()
            });
        }
        offset = lower[end..].find('>').map(|found| end + found + 1).unwrap_or(lower.len());
    }
    push_body(&text[offset..], &headings, &mut elements);
    elements
}

fn find_heading(lower: &str) -> Option<(usize, usize)> {
    let mut search = 0;
    while let Some(found) = lower[search..].find("<h") {
        let at = search + found;
        let level =
            lower.as_bytes().get(at + 2).copied().filter(u8::is_ascii_digit).map(|digit| (digit - b'0') as usize);
        if let Some(level) = level.filter(|level| (1..=6).contains(level)) {
            return Some((at, level));
        }
        search = at + 2;
    }
    None
}

/// Removes tags (and the contents of script/style), turns block ends into line breaks, decodes the
/// common entities.
pub fn strip_tags(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let lower = text.to_ascii_lowercase();
    while let Some((at, character)) = chars.next() {
        if character != '<' {
            output.push(character);
            continue;
        }
        let tag_end = text[at..].find('>').map(|end| at + end).unwrap_or(text.len());
        let tag = &lower[at + 1..tag_end.max(at + 1)];
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let skip_to = if (name == "script" || name == "style") && !tag.starts_with('/') {
            let closing = lower[tag_end..].find(&format!("</{name}")).map(|end| tag_end + end).unwrap_or(text.len());
            lower[closing..].find('>').map(|end| closing + end).unwrap_or(text.len())
        } else {
            tag_end
        };
        if matches!(
            name.as_str(),
            "p" | "div"
                | "br"
                | "li"
                | "tr"
                | "section"
                | "article"
                | "table"
                | "ul"
                | "ol"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
        ) {
            output.push_str("\n\n");
        } else {
            output.push(' ');
        }
        while chars.peek().is_some_and(|(next, _)| *next <= skip_to) {
            chars.next();
        }
    }
    let decoded = output
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    // Collapse runs of spaces within lines; keep paragraph breaks.
    decoded
        .split("\n\n")
        .map(|block| block.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|block| !block.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}
