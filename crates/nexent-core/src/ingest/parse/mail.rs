//! E-mail messages (EML, RFC 5322 with MIME) through mail-parser: the subject as the title, a header
//! paragraph (from, to, date, attachment names) and the text body (HTML bodies converted to text).

use mail_parser::{MessageParser, MimeHeaders};

use super::text::paragraphs;
use super::{Element, ParseError};

pub(super) fn eml(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ParseError::Malformed("this is not an e-mail message".into()))?;
    if message.headers().is_empty() {
        return Err(ParseError::Malformed("this is not an e-mail message (it has no headers)".into()));
    }
    let subject = message.subject().unwrap_or_default().trim().to_owned();
    let addresses = |address: Option<&mail_parser::Address<'_>>| {
        address
            .map(|address| {
                address
                    .iter()
                    .map(|addr| match (addr.name(), addr.address()) {
                        (Some(name), Some(email)) => format!("{name} <{email}>"),
                        (name, email) => name.or(email).unwrap_or_default().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut header = Vec::new();
    for (label, value) in [
        ("From", addresses(message.from())),
        ("To", addresses(message.to())),
        ("Cc", addresses(message.cc())),
        ("Date", message.date().map(|date| date.to_rfc3339()).unwrap_or_default()),
        ("Attachments", message.attachments().filter_map(|part| part.attachment_name()).collect::<Vec<_>>().join(", ")),
    ] {
        if !value.is_empty() {
            header.push(format!("{label}: {value}"));
        }
    }
    // The subject heads every paragraph: cut for repetition, and charged per paragraph below.
    let heading_path = if subject.is_empty() { Vec::new() } else { vec![super::budget::path_heading(&subject)] };
    let mut elements = Vec::new();
    if !subject.is_empty() {
        elements.push(Element { text: subject, is_title: true, heading_path: heading_path.clone(), page: None });
    }
    if !header.is_empty() {
        elements.push(Element { text: header.join("\n"), heading_path: heading_path.clone(), ..Element::default() });
    }
    let body = message.body_text(0).unwrap_or_default();
    let path_bytes: usize = heading_path.iter().map(String::len).sum();
    elements.extend(
        paragraphs(&body)
            .into_iter()
            .take_while(|_| super::budget::charge(path_bytes, 0))
            .map(|element| Element { heading_path: heading_path.clone(), ..element }),
    );
    Ok(elements)
}
