//! Turning a file's bytes into text elements with metadata (title flag, heading path, page), by file
//! extension. This first set covers the text formats: plain text and source code, Markdown, HTML, CSV/TSV,
//! JSON and XML. Office, PDF, e-mail and e-book formats are refused with a clear reason until their
//! parsers land, rather than indexed as garbage.

use std::path::Path;

/// One piece of a parsed document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub text: String,
    /// A heading (starts a section for `by_title`).
    pub is_title: bool,
    /// The headings above this element, outermost first.
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("File type not allowed: {0}")]
    NotAllowed(String),
    #[error("{0} files cannot be parsed yet")]
    NotYetSupported(String),
    #[error("the file is not valid UTF-8 text")]
    NotText,
    #[error("the file has no text to index")]
    Empty,
    #[error("cannot parse the file: {0}")]
    Malformed(String),
}

/// Nexent's allowed upload extensions (§3.4) plus the formats we parse beyond it.
pub const ALLOWED_EXTENSIONS: [&str; 45] = [
    "txt", "pdf", "png", "jpg", "jpeg", "gif", "docx", "pptx", "xlsx", "md", "eml", "msg", "epub", "xls", "html",
    "htm", "org", "log", "ppt", "rst", "rtf", "tsv", "doc", "xml", "js", "py", "java", "cpp", "cc", "cxx", "c", "cs",
    "php", "rb", "swift", "ts", "go", "csv", "json", "odt", "ods", "rs", "markdown", "h", "sh",
];

const PLAIN_TEXT: [&str; 21] = [
    "txt", "log", "org", "rst", "js", "py", "java", "cpp", "cc", "cxx", "c", "cs", "php", "rb", "swift", "ts", "go",
    "rs", "h", "sh", "text",
];

pub fn extension_of(file_name: &str) -> String {
    Path::new(file_name).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

pub fn is_allowed(file_name: &str) -> bool {
    ALLOWED_EXTENSIONS.contains(&extension_of(file_name).as_str())
}

/// Parses `bytes` as the format its name says.
pub fn parse_document(file_name: &str, bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let extension = extension_of(file_name);
    if !is_allowed(file_name) {
        return Err(ParseError::NotAllowed(if extension.is_empty() {
            file_name.to_owned()
        } else {
            format!(".{extension}")
        }));
    }
    let elements = match extension.as_str() {
        "md" | "markdown" => markdown(text_of(bytes)?),
        "html" | "htm" => html(text_of(bytes)?),
        "tsv" => delimited(text_of(bytes)?, '\t'),
        "csv" => delimited(text_of(bytes)?, ','),
        "json" => json(text_of(bytes)?)?,
        "xml" => vec![Element { text: strip_tags(text_of(bytes)?), ..Element::default() }],
        other if PLAIN_TEXT.contains(&other) => paragraphs(text_of(bytes)?),
        other => return Err(ParseError::NotYetSupported(format!(".{other}"))),
    };
    if elements.iter().all(|element| element.text.trim().is_empty()) {
        return Err(ParseError::Empty);
    }
    Ok(elements)
}

fn text_of(bytes: &[u8]) -> Result<&str, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| ParseError::NotText)
}

/// Blank-line separated paragraphs.
fn paragraphs(text: &str) -> Vec<Element> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| Element { text: paragraph.to_owned(), ..Element::default() })
        .collect()
}

fn markdown(text: &str) -> Vec<Element> {
    let mut elements = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut paragraph = String::new();
    let flush = |paragraph: &mut String, headings: &[(usize, String)], elements: &mut Vec<Element>| {
        if !paragraph.trim().is_empty() {
            elements.push(Element {
                text: paragraph.trim().to_owned(),
                heading_path: heading_path(headings),
                ..Element::default()
            });
        }
        paragraph.clear();
    };
    let mut in_code = false;
    for line in text.replace("\r\n", "\n").lines() {
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

fn delimited(text: &str, separator: char) -> Vec<Element> {
    let rows: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| split_row(line, separator).join(" | "))
        .collect();
    let Some((header, body)) = rows.split_first() else { return Vec::new() };
    if body.is_empty() {
        return vec![Element { text: header.clone(), ..Element::default() }];
    }
    // Rows in groups, each group headed by the header row, so every chunk can be read on its own.
    body.chunks(20)
        .map(|group| Element { text: format!("{header}\n{}", group.join("\n")), ..Element::default() })
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

fn json(text: &str) -> Result<Vec<Element>, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| ParseError::Malformed(error.to_string()))?;
    let mut lines = Vec::new();
    flatten_json("", &value, &mut lines);
    Ok(lines.chunks(30).map(|group| Element { text: group.join("\n"), ..Element::default() }).collect())
}

fn flatten_json(prefix: &str, value: &serde_json::Value, lines: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten_json(&path, child, lines);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                flatten_json(&format!("{prefix}[{index}]"), child, lines);
            }
        }
        serde_json::Value::String(text) => lines.push(format!("{prefix}: {text}")),
        other => lines.push(format!("{prefix}: {other}")),
    }
}

/// The heading texts of a `(level, text)` stack, outermost first.
fn heading_path(headings: &[(usize, String)]) -> Vec<String> {
    headings.iter().map(|(_, heading)| heading.clone()).collect()
}

fn html(text: &str) -> Vec<Element> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_headings_become_titles_with_paths() {
        let elements = parse_document("a.md", b"# Guide\n\nIntro text.\n\n## Install\n\nRun it.\n").expect("parse");
        let titles: Vec<&str> = elements.iter().filter(|e| e.is_title).map(|e| e.text.as_str()).collect();
        assert_eq!(titles, ["Guide", "Install"]);
        let run = elements.iter().find(|e| e.text == "Run it.").expect("paragraph");
        assert_eq!(run.heading_path, ["Guide", "Install"]);
    }

    #[test]
    fn html_loses_tags_scripts_and_keeps_headings() {
        let page = b"<html><head><style>p{}</style><script>var x = '<p>';</script></head><body><h1>Title</h1><p>Hello &amp; welcome</p><div>Second</div></body></html>";
        let elements = parse_document("page.html", page).expect("parse");
        let texts: Vec<&str> = elements.iter().map(|e| e.text.as_str()).collect();
        assert!(
            texts.contains(&"Title") && texts.contains(&"Hello & welcome") && texts.contains(&"Second"),
            "{texts:?}"
        );
        assert!(
            !texts
                .iter()
                .any(|t| t.contains("var x") || t.contains("p{}") || t.contains("/script") || t.contains("/style")),
            "{texts:?}"
        );
        // Unclosed tags at the end of multibyte text do not panic.
        for text in ["\u{2039}\u{e9}", "<b \u{65e5}\u{672c}", "<", "a<"] {
            let _ = strip_tags(text);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_document("x.exe", b"MZ"), Err(ParseError::NotAllowed(".exe".into())));
        assert_eq!(parse_document("x.txt", &[0xff, 0xfe, 0x00]), Err(ParseError::NotText));
        assert_eq!(parse_document("x.txt", b"   \n\n "), Err(ParseError::Empty));
        assert!(matches!(parse_document("x.json", b"{nope"), Err(ParseError::Malformed(_))));
        assert_eq!(parse_document("x.docx", b"PK"), Err(ParseError::NotYetSupported(".docx".into())));
    }

    #[test]
    fn json_and_tables_are_flattened_to_lines() {
        let elements = parse_document("d.json", br#"{"product":{"name":"Zorblax","weight_kg":12}}"#).expect("json");
        assert!(
            elements[0].text.contains("product.name: Zorblax") && elements[0].text.contains("product.weight_kg: 12")
        );
        let table = parse_document("t.tsv", b"name\tweight\nZorblax\t12\n").expect("tsv");
        assert_eq!(table[0].text, "name | weight\nZorblax | 12");
        let csv = parse_document("t.csv", b"name,note\nZorblax,\"heavy, 12 kg\"\n").expect("csv");
        assert_eq!(csv[0].text, "name | note\nZorblax | heavy, 12 kg");
    }
}
