//! Rich Text Format through rtf-parser: the document's text, in paragraphs.

use super::text::paragraphs;
use super::{Element, ParseError};

pub(super) fn rtf(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    // RTF is 7-bit text (other characters are escaped), so a lossy decode loses nothing of a valid file.
    let source = String::from_utf8_lossy(bytes);
    if !source.trim_start().starts_with("{\\rtf") {
        return Err(ParseError::Malformed("this is not an RTF file (no {\\rtf header)".into()));
    }
    let document = rtf_parser::RtfDocument::try_from(source.as_ref())
        .map(|document| document.get_text())
        .map_err(|error| ParseError::Malformed(format!("the RTF file is damaged: {error}")))?;
    Ok(paragraphs(&document.replace('\r', "")))
}
