//! Members of ZIP containers (DOCX, PPTX, XLSX, ODT, ODS, EPUB), read with limits, so a zip bomb fails with a
//! reason instead of filling memory. Sizes declared in the archive are not trusted: every read is capped.

use std::io::{Cursor, Read};

use super::ParseError;

/// Most bytes one member may expand to.
const MAX_MEMBER_BYTES: u64 = 64 << 20;
/// Most bytes all the members read from one file may expand to.
const MAX_TOTAL_BYTES: u64 = 256 << 20;
const MAX_MEMBERS: usize = 20_000;

pub(super) struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    kind: &'static str,
    expanded: u64,
}

impl<'a> Archive<'a> {
    /// Opens `bytes` as the ZIP container of a `kind` file ("DOCX", "EPUB", ...).
    pub fn open(bytes: &'a [u8], kind: &'static str) -> Result<Self, ParseError> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|_| ParseError::Malformed(format!("this is not a {kind} file (it is not a ZIP container)")))?;
        if zip.len() > MAX_MEMBERS {
            return Err(ParseError::TooLarge(format!("the {kind} container holds {} members", zip.len())));
        }
        Ok(Self { zip, kind, expanded: 0 })
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn names(&self) -> Vec<String> {
        self.zip.file_names().filter_map(Result::ok).map(|name| name.into_owned()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// The member `name` as UTF-8 text.
    pub fn read_text(&mut self, name: &str) -> Result<String, ParseError> {
        let bytes = self.read(name)?;
        String::from_utf8(bytes).map_err(|_| ParseError::Malformed(format!("{name} in the {} is not UTF-8", self.kind)))
    }

    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, ParseError> {
        let kind = self.kind;
        let budget = MAX_MEMBER_BYTES.min(MAX_TOTAL_BYTES.saturating_sub(self.expanded));
        let member = self.zip.by_name(name).map_err(|_| {
            ParseError::Malformed(format!("the {kind} file has no {name}; it is damaged or not a {kind}"))
        })?;
        let mut bytes = Vec::with_capacity(member.size().min(budget) as usize);
        member
            .take(budget + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| ParseError::Malformed(format!("cannot read {name} in the {kind}: {error}")))?;
        if bytes.len() as u64 > budget {
            return Err(bomb(kind, name));
        }
        self.expanded += bytes.len() as u64;
        Ok(bytes)
    }

    /// Expands every member into nothing, within the limits, before a reader that opens the container itself
    /// (calamine) gets the bytes.
    pub fn check_expansion(&mut self) -> Result<(), ParseError> {
        let kind = self.kind;
        let mut total: u64 = 0;
        for index in 0..self.zip.len() {
            let member = self
                .zip
                .by_index(index)
                .map_err(|error| ParseError::Malformed(format!("the {kind} container is damaged: {error}")))?;
            let name = member.name().map(|name| name.into_owned()).unwrap_or_default();
            let budget = MAX_MEMBER_BYTES.min(MAX_TOTAL_BYTES.saturating_sub(total));
            let expanded = std::io::copy(&mut member.take(budget + 1), &mut std::io::sink())
                .map_err(|error| ParseError::Malformed(format!("cannot read {name} in the {kind}: {error}")))?;
            if expanded > budget {
                return Err(bomb(kind, &name));
            }
            total += expanded;
        }
        Ok(())
    }
}

fn bomb(kind: &str, name: &str) -> ParseError {
    ParseError::TooLarge(format!(
        "{name} in the {kind} expands beyond {} MiB per member or {} MiB in all (a zip bomb?)",
        MAX_MEMBER_BYTES >> 20,
        MAX_TOTAL_BYTES >> 20
    ))
}
