//! Spreadsheets (XLSX, XLS, ODS) through calamine: each sheet's rows as `cell | cell` lines in groups headed by
//! the sheet's first row, the sheet's name as the heading and its number as the page.

use std::io::Cursor;

use calamine::Reader;

use super::archive::Archive;
use super::text::table;
use super::{Element, ParseError};

pub(super) fn spreadsheet(bytes: &[u8], extension: &str) -> Result<Vec<Element>, ParseError> {
    // XLSX and ODS are ZIP containers that calamine opens itself: check that they expand within the limits
    // first. XLS is an OLE file without compression, bounded by its own size.
    if extension != "xls" {
        Archive::open(bytes, if extension == "ods" { "ODS" } else { "XLSX" })?.check_expansion()?;
    }
    let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|error| ParseError::Malformed(format!("cannot open the spreadsheet: {error}")))?;
    let mut elements = Vec::new();
    for (index, (name, range)) in workbook.worksheets().into_iter().enumerate() {
        let rows: Vec<String> = range
            .rows()
            .map(|row| row.iter().map(|cell| cell.to_string().trim().to_owned()).collect::<Vec<_>>())
            .filter(|cells| cells.iter().any(|cell| !cell.is_empty()))
            .map(|cells| cells.join(" | "))
            .collect();
        let page = u32::try_from(index + 1).ok();
        elements.extend(table(rows).into_iter().map(|element| Element {
            heading_path: vec![name.clone()],
            page,
            ..element
        }));
    }
    Ok(elements)
}
