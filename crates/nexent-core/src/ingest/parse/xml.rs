//! A small walk over XML for the office and e-book formats: tags by local name (namespace prefixes
//! dropped), attributes, and text with entity references resolved.

use quick_xml::events::Event;

use super::ParseError;

pub(super) struct Tag {
    pub name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    /// The value of the attribute whose local name is `local`.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes.iter().find(|(name, _)| name == local).map(|(_, value)| value.as_str())
    }
}

pub(super) enum Node {
    Open(Tag),
    /// Also sent right after `Open` for an empty element (`<w:tab/>`).
    Close(String),
    Text(String),
}

pub(super) fn walk(xml: &str, mut visit: impl FnMut(Node)) -> Result<(), ParseError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let malformed = |error: &dyn std::fmt::Display| ParseError::Malformed(format!("invalid XML: {error}"));
    loop {
        match reader.read_event().map_err(|error| malformed(&error))? {
            Event::Start(start) => visit(Node::Open(tag(&start))),
            Event::Empty(empty) => {
                let tag = tag(&empty);
                let name = tag.name.clone();
                visit(Node::Open(tag));
                visit(Node::Close(name));
            }
            Event::End(end) => visit(Node::Close(local(end.local_name().as_ref()))),
            Event::Text(text) => visit(Node::Text(text.xml10_content().into_owned())),
            Event::CData(data) => visit(Node::Text(data.into_inner().into_owned())),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(character)) => Some(character.to_string()),
                    _ => quick_xml::escape::resolve_xml_entity(&reference).map(str::to_owned),
                };
                if let Some(text) = resolved {
                    visit(Node::Text(text));
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn tag(start: &quick_xml::events::BytesStart<'_>) -> Tag {
    let attributes = start
        .attributes()
        .filter_map(Result::ok)
        .map(|attribute| {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|value| value.into_owned())
                .unwrap_or_default();
            (local(attribute.key.local_name().as_ref()), value)
        })
        .collect();
    Tag { name: local(start.local_name().as_ref()), attributes }
}

fn local(name: &str) -> String {
    name.to_owned()
}
