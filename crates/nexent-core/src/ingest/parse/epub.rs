//! EPUB: the package document's spine in reading order, each chapter's XHTML through the HTML parser, the
//! chapter number as the page.

use std::collections::HashMap;

use super::archive::Archive;
use super::text::html;
use super::xml::{Node, walk};
use super::{Element, ParseError};

pub(super) fn epub(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let mut archive = Archive::open(bytes, "EPUB")?;
    let container = archive.read_text("META-INF/container.xml")?;
    let mut package_path = None;
    walk(&container, |node| {
        if let Node::Open(tag) = node
            && tag.name == "rootfile"
            && package_path.is_none()
        {
            package_path = tag.attribute("full-path").map(str::to_owned);
        }
    })?;
    let package_path =
        package_path.ok_or_else(|| ParseError::Malformed("the EPUB names no package document".into()))?;
    let package = archive.read_text(&package_path)?;
    let (mut manifest, mut spine) = (HashMap::new(), Vec::new());
    walk(&package, |node| {
        if let Node::Open(tag) = node {
            match tag.name.as_str() {
                "item" => {
                    if let (Some(id), Some(href)) = (tag.attribute("id"), tag.attribute("href")) {
                        manifest.insert(id.to_owned(), href.to_owned());
                    }
                }
                "itemref" => spine.extend(tag.attribute("idref").map(str::to_owned)),
                _ => {}
            }
        }
    })?;
    let base = package_path.rsplit_once('/').map(|(folder, _)| format!("{folder}/")).unwrap_or_default();
    let mut elements = Vec::new();
    for (chapter, id) in spine.iter().enumerate() {
        let Some(href) = manifest.get(id) else { continue };
        let path = resolve(&base, href);
        if !archive.contains(&path) {
            continue;
        }
        let page = u32::try_from(chapter + 1).ok();
        let xhtml = archive.read_text(&path)?;
        elements.extend(html(&xhtml).into_iter().map(|element| Element { page, ..element }));
    }
    if spine.is_empty() {
        return Err(ParseError::Malformed(format!("the EPUB's {} has no spine", archive.kind())));
    }
    Ok(elements)
}

/// `href` relative to `base` (a folder ending in `/`), with `.` / `..` segments and `%20`-style escapes resolved.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let mut segments: Vec<&str> = base.split('/').filter(|segment| !segment.is_empty()).collect();
    for segment in href.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    percent_decode(&segments.join("/"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match (bytes[index], hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapter_paths_resolve_against_the_package_folder() {
        assert_eq!(resolve("OEBPS/", "text/ch%201.xhtml#top"), "OEBPS/text/ch 1.xhtml");
        assert_eq!(resolve("OEBPS/text/", "../images/a.xhtml"), "OEBPS/images/a.xhtml");
        assert_eq!(resolve("", "chapter.xhtml"), "chapter.xhtml");
    }
}
