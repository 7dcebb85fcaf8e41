//! Office Open XML (DOCX, PPTX) and OpenDocument text (ODT): paragraphs, headings from paragraph styles or
//! title placeholders, table rows as `cell | cell` lines, slide numbers as pages.

use super::archive::Archive;
use super::text::heading_path;
use super::xml::{Node, walk};
use super::{Element, ParseError};

/// Collects paragraphs and their headings in document order.
#[derive(Default)]
struct Outline {
    elements: Vec<Element>,
    headings: Vec<(usize, String)>,
}

impl Outline {
    fn heading(&mut self, level: usize, text: String, page: Option<u32>) {
        self.headings.retain(|(existing, _)| *existing < level);
        self.headings.push((level, text.clone()));
        self.elements.push(Element { text, is_title: true, heading_path: heading_path(&self.headings), page });
    }

    fn paragraph(&mut self, text: String, page: Option<u32>) {
        self.elements.push(Element { text, heading_path: heading_path(&self.headings), page, ..Element::default() });
    }

    /// A finished paragraph: a heading when `level` is given. Blank ones are dropped.
    fn push(&mut self, text: &str, level: Option<usize>, page: Option<u32>) {
        let text = tidy(text);
        if text.is_empty() || !super::budget::charge(text.len() + 64, text.lines().count()) {
            return;
        }
        match level {
            Some(level) => self.heading(level, text, page),
            None => self.paragraph(text, page),
        }
    }
}

/// Collapses runs of spaces and tabs within lines and drops blank lines.
fn tidy(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The heading level a paragraph style names: `Title` is 0, `Heading1` / `heading 1` is 1, and so on.
fn heading_level(style: &str) -> Option<usize> {
    let style = style.to_ascii_lowercase().replace([' ', '_', '-'], "");
    if style == "title" {
        return Some(0);
    }
    style.strip_prefix("heading").and_then(|level| level.parse::<usize>().ok()).filter(|level| (1..=9).contains(level))
}

/// Table rows are gathered cell by cell and emitted as one `a | b | c` paragraph.
#[derive(Default)]
struct Table {
    depth: usize,
    row: Vec<String>,
    cell: String,
}

pub(super) fn docx(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let mut archive = Archive::open(bytes, "DOCX")?;
    let xml = archive.read_text("word/document.xml")?;
    let mut outline = Outline::default();
    let mut table = Table::default();
    let (mut paragraph, mut style, mut in_text) = (String::new(), None::<String>, false);
    walk(&xml, |node| match node {
        Node::Open(tag) => match tag.name.as_str() {
            "p" => {
                paragraph.clear();
                style = None;
            }
            "pStyle" => style = tag.attribute("val").map(str::to_owned),
            "t" => in_text = true,
            "tab" => paragraph.push('\t'),
            "br" | "cr" => paragraph.push('\n'),
            "tbl" => table.depth += 1,
            "tr" => table.row.clear(),
            "tc" => table.cell.clear(),
            _ => {}
        },
        Node::Text(text) if in_text => paragraph.push_str(&text),
        Node::Text(_) => {}
        Node::Close(name) => match name.as_str() {
            "t" => in_text = false,
            "p" if table.depth > 0 => {
                table.cell.push(' ');
                table.cell.push_str(&paragraph);
            }
            "p" => outline.push(&paragraph, style.as_deref().and_then(heading_level), None),
            "tc" => table.row.push(tidy(&table.cell).replace('\n', " ")),
            "tr" if table.depth == 1 => outline.push(&table.row.join(" | "), None, None),
            "tbl" => table.depth = table.depth.saturating_sub(1),
            _ => {}
        },
    })?;
    Ok(outline.elements)
}

pub(super) fn pptx(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let mut archive = Archive::open(bytes, "PPTX")?;
    let mut slides: Vec<(u32, String)> = archive
        .names()
        .into_iter()
        .filter_map(|name| {
            let number = name.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse::<u32>().ok()?;
            Some((number, name))
        })
        .collect();
    if slides.is_empty() && !archive.contains("ppt/presentation.xml") {
        return Err(ParseError::Malformed("this is not a PPTX file (it has no ppt/presentation.xml)".into()));
    }
    slides.sort();
    let mut outline = Outline::default();
    for (page, (number, name)) in slides.into_iter().enumerate() {
        let xml = archive.read_text(&name)?;
        let page = Some(u32::try_from(page + 1).unwrap_or(number));
        let (mut title, mut body) = (Vec::<String>::new(), Vec::<String>::new());
        let (mut paragraph, mut in_title_shape, mut in_text) = (String::new(), false, false);
        walk(&xml, |node| match node {
            Node::Open(tag) => match tag.name.as_str() {
                "sp" => in_title_shape = false,
                "ph" => in_title_shape = matches!(tag.attribute("type"), Some("title" | "ctrTitle")),
                "p" => paragraph.clear(),
                "t" => in_text = true,
                "br" => paragraph.push('\n'),
                _ => {}
            },
            Node::Text(text) if in_text => paragraph.push_str(&text),
            Node::Text(_) => {}
            Node::Close(name) => match name.as_str() {
                "t" => in_text = false,
                "sp" => in_title_shape = false,
                "p" if in_title_shape => title.push(std::mem::take(&mut paragraph)),
                "p" => body.push(std::mem::take(&mut paragraph)),
                _ => {}
            },
        })?;
        // Every slide starts a section, titled or not, so its body never sits under the previous title.
        let title = tidy(&title.join("\n"));
        outline.heading(1, if title.is_empty() { format!("Slide {number}") } else { title }, page);
        for paragraph in body {
            outline.push(&paragraph, None, page);
        }
    }
    Ok(outline.elements)
}

pub(super) fn odt(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let mut archive = Archive::open(bytes, "ODT")?;
    let xml = archive.read_text("content.xml")?;
    let mut outline = Outline::default();
    let mut table = Table::default();
    // Paragraphs nest (a footnote's body holds paragraphs inside a paragraph): one buffer per open paragraph.
    let mut open: Vec<(String, Option<usize>)> = Vec::new();
    walk(&xml, |node| match node {
        Node::Open(tag) => match tag.name.as_str() {
            "p" => open.push((String::new(), None)),
            "h" => {
                let level = tag.attribute("outline-level").and_then(|level| level.parse().ok()).unwrap_or(1);
                open.push((String::new(), Some(level)));
            }
            "s" => {
                let count = tag.attribute("c").and_then(|count| count.parse().ok()).unwrap_or(1usize).min(64);
                if let Some((text, _)) = open.last_mut() {
                    text.push_str(&" ".repeat(count));
                }
            }
            "tab" | "line-break" => {
                if let Some((text, _)) = open.last_mut() {
                    text.push(if tag.name == "tab" { '\t' } else { '\n' });
                }
            }
            "table" => table.depth += 1,
            "table-row" => table.row.clear(),
            "table-cell" => table.cell.clear(),
            _ => {}
        },
        Node::Text(text) => {
            if let Some((paragraph, _)) = open.last_mut() {
                paragraph.push_str(&text);
            }
        }
        Node::Close(name) => match name.as_str() {
            "p" | "h" => {
                if let Some((paragraph, level)) = open.pop() {
                    if table.depth > 0 {
                        table.cell.push(' ');
                        table.cell.push_str(&paragraph);
                    } else {
                        outline.push(&paragraph, level, None);
                    }
                }
            }
            "table-cell" => table.row.push(tidy(&table.cell).replace('\n', " ")),
            "table-row" if table.depth == 1 => outline.push(&table.row.join(" | "), None, None),
            "table" => table.depth = table.depth.saturating_sub(1),
            _ => {}
        },
    })?;
    Ok(outline.elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraph_styles_name_heading_levels() {
        assert_eq!(heading_level("Heading1"), Some(1));
        assert_eq!(heading_level("heading 2"), Some(2));
        assert_eq!(heading_level("Title"), Some(0));
        assert_eq!(heading_level("Normal"), None);
        assert_eq!(heading_level("HeadingX"), None);
    }
}
