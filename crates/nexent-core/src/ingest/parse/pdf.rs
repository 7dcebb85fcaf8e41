//! PDF through its text layer (pdf-extract on lopdf), one page at a time so elements carry page numbers.
//! A PDF without a text layer (a scan) fails with that reason: OCR is a later step.

use super::text::paragraphs;
use super::{Element, ParseError};

pub(super) fn pdf(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    // The header may follow a little junk, as readers allow, but it must be there.
    if !bytes[..bytes.len().min(1024)].windows(5).any(|window| window == b"%PDF-") {
        return Err(ParseError::Malformed("this is not a PDF file (no %PDF header)".into()));
    }
    let pages = pdf_extract::extract_text_from_mem_by_pages(bytes)
        .map_err(|error| ParseError::Malformed(format!("the PDF is damaged or encrypted: {error}")))?;
    let elements: Vec<Element> = pages
        .iter()
        .enumerate()
        .flat_map(|(index, page)| {
            let number = u32::try_from(index + 1).ok();
            paragraphs(page).into_iter().map(move |element| Element { page: number, ..element })
        })
        .collect();
    if elements.iter().all(|element| element.text.trim().is_empty()) {
        return Err(ParseError::NoTextLayer(pages.len()));
    }
    Ok(elements)
}
