//! Spreadsheets (XLSX, XLS, ODS) through calamine: each sheet's rows as `cell | cell` lines in groups headed by
//! the sheet's first row, the sheet's name as the heading and its number as the page.
//!
//! A sheet is never materialised as its full rectangle: a 1.6 KB XLSX with cells in `A1` and `XFD1048576`
//! would make a dense range of 17 billion cells. XLSX cells are streamed one by one (calamine's cell
//! reader) into a sparse map; XLS and ODS, which calamine only reads whole, are first scanned for the
//! rectangle calamine would allocate (BIFF cell records, ODS repeat attributes) and refused when it is
//! absurd. Rows are then written with only the columns that hold something.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use calamine::Reader;

use super::archive::Archive;
use super::budget;
use super::text::table;
use super::{Element, ParseError};

/// Most non-empty cells read from one workbook.
const MAX_CELLS: usize = 2_000_000;
/// Most cells of the rectangle calamine would allocate for one XLS or ODS sheet (32 bytes each).
const MAX_RANGE_CELLS: u64 = 4_000_000;
/// Most cells of the table written for one sheet: rows holding something × columns holding something.
const MAX_TABLE_CELLS: u64 = 4_000_000;

/// One sheet's non-empty cells by row, then column.
type SparseSheet = BTreeMap<u32, BTreeMap<u32, String>>;

pub(super) fn spreadsheet(bytes: &[u8], extension: &str) -> Result<Vec<Element>, ParseError> {
    let sheets = match extension {
        "xlsx" => xlsx_sheets(bytes)?,
        "xls" => {
            xls_check_ranges(bytes)?;
            materialised_sheets(calamine::Xls::new(Cursor::new(bytes)).map_err(cannot_open)?)?
        }
        _ => {
            ods_check_ranges(bytes)?;
            materialised_sheets(calamine::Ods::new(Cursor::new(bytes)).map_err(cannot_open)?)?
        }
    };
    let mut elements = Vec::new();
    for (index, (name, sheet)) in sheets.into_iter().enumerate() {
        let page = u32::try_from(index + 1).ok();
        let heading = budget::path_heading(&name);
        elements.extend(table(rows_of(&name, &sheet)?).into_iter().map(|element| Element {
            heading_path: vec![heading.clone()],
            page,
            ..element
        }));
    }
    Ok(elements)
}

fn cannot_open(error: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed(format!("cannot open the spreadsheet: {error}"))
}

fn too_many_cells() -> ParseError {
    ParseError::TooLarge(format!("the spreadsheet holds more than {MAX_CELLS} cells"))
}

/// Keeps a cell that holds something, counting it against the workbook's [`MAX_CELLS`].
fn record_cell(
    sheet: &mut SparseSheet,
    cells_read: &mut usize,
    row: u32,
    column: u32,
    text: &str,
) -> Result<(), ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    *cells_read += 1;
    if *cells_read > MAX_CELLS {
        return Err(too_many_cells());
    }
    sheet.entry(row).or_default().insert(column, text.to_owned());
    Ok(())
}

/// Streams every worksheet's cells; nothing proportional to a sheet's declared dimensions is allocated.
fn xlsx_sheets(bytes: &[u8]) -> Result<Vec<(String, SparseSheet)>, ParseError> {
    // calamine opens the ZIP container itself: check first that it expands within the limits.
    Archive::open(bytes, "XLSX")?.check_expansion()?;
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes)).map_err(cannot_open)?;
    let mut sheets = Vec::new();
    let mut cells_read = 0usize;
    for name in workbook.sheet_names() {
        let mut reader = match workbook.worksheet_cells_reader(&name) {
            Ok(reader) => reader,
            // Chart sheets and dialog sheets have no cells.
            Err(calamine::XlsxError::NotAWorksheet(_)) => continue,
            Err(error) => return Err(cannot_open(error)),
        };
        let mut sheet = SparseSheet::new();
        while let Some(cell) = reader.next_cell().map_err(cannot_open)? {
            let value: calamine::Data = cell.get_value().clone().into();
            let (row, column) = cell.get_position();
            record_cell(&mut sheet, &mut cells_read, row, column, &value.to_string())?;
        }
        sheets.push((name, sheet));
    }
    Ok(sheets)
}

/// Reads XLS and ODS sheets through calamine's whole-sheet ranges (checked beforehand) into sparse maps.
fn materialised_sheets<RS, R>(mut workbook: R) -> Result<Vec<(String, SparseSheet)>, ParseError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
{
    let mut sheets = Vec::new();
    let mut cells_read = 0usize;
    for (name, range) in workbook.worksheets() {
        let (first_row, first_column) = range.start().unwrap_or((0, 0));
        let mut sheet = SparseSheet::new();
        for (row, column, value) in range.used_cells() {
            let (row, column) = (first_row.saturating_add(row as u32), first_column.saturating_add(column as u32));
            record_cell(&mut sheet, &mut cells_read, row, column, &value.to_string())?;
        }
        sheets.push((name, sheet));
    }
    Ok(sheets)
}

/// A sheet's rows as `a | b | c` lines over the columns that hold something anywhere in the sheet, so two
/// distant cells make two short lines, not lines of 16,384 empty cells.
fn rows_of(name: &str, sheet: &SparseSheet) -> Result<Vec<String>, ParseError> {
    let columns: BTreeSet<u32> = sheet.values().flat_map(|row| row.keys().copied()).collect();
    let area = (sheet.len() as u64).saturating_mul(columns.len() as u64);
    if area > MAX_TABLE_CELLS {
        return Err(ParseError::TooLarge(format!(
            "the sheet {name:?} spans {} rows × {} columns, more than {MAX_TABLE_CELLS} cells",
            sheet.len(),
            columns.len()
        )));
    }
    let mut rows = Vec::with_capacity(sheet.len());
    for cells in sheet.values() {
        if budget::spent() {
            break;
        }
        let line: Vec<&str> =
            columns.iter().map(|column| cells.get(column).map(String::as_str).unwrap_or("")).collect();
        rows.push(line.join(" | "));
    }
    Ok(rows)
}

/// Refuses an XLS whose sheets calamine would allocate absurd rectangles for. calamine reads every sheet of
/// an XLS when it opens it and allocates each one's bounding rectangle of cells, so the cell records'
/// positions are scanned first (BIFF8 records in the OLE `Workbook` stream; BIFF5's `Book` alike).
fn xls_check_ranges(bytes: &[u8]) -> Result<(), ParseError> {
    let mut file = cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|error| ParseError::Malformed(format!("this is not an XLS file: {error}")))?;
    let stream_name = ["/Workbook", "/Book"]
        .into_iter()
        .find(|name| file.is_stream(name))
        .ok_or_else(|| ParseError::Malformed("this is not an XLS file (it has no Workbook stream)".into()))?;
    let mut stream = Vec::new();
    file.open_stream(stream_name)
        .and_then(|stream_reader| stream_reader.take(bytes.len() as u64 * 2 + 4096).read_to_end(&mut stream))
        .map_err(|error| ParseError::Malformed(format!("cannot read the XLS workbook: {error}")))?;
    let mut total: u64 = 0;
    for (rows, columns) in xls_sheet_extents(&stream) {
        let cells = rows.saturating_mul(columns);
        total = total.saturating_add(cells);
        if cells > MAX_RANGE_CELLS || total > MAX_RANGE_CELLS.saturating_mul(2) {
            return Err(ParseError::TooLarge(format!(
                "a sheet of the XLS spans {rows} rows × {columns} columns ({cells} cells; at most {MAX_RANGE_CELLS} are read)"
            )));
        }
    }
    Ok(())
}

/// The bounding rectangle (rows, columns) of the cell records of each sheet substream in a BIFF stream.
fn xls_sheet_extents(stream: &[u8]) -> Vec<(u64, u64)> {
    let mut extents = Vec::new();
    /// (top, bottom, left, right) of the current substream's cells.
    type Bounds = Option<(u16, u16, u16, u16)>;
    fn widen(bounds: &mut Bounds, row: u16, first: u16, last: u16) {
        let (top, bottom, left, right) = bounds.get_or_insert((row, row, first, last));
        *top = (*top).min(row);
        *bottom = (*bottom).max(row);
        *left = (*left).min(first);
        *right = (*right).max(last);
    }
    let mut bounds: Bounds = None;
    let mut at = 0usize;
    while at + 4 <= stream.len() {
        let kind = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let length = u16::from_le_bytes([stream[at + 2], stream[at + 3]]) as usize;
        let data = &stream[at + 4..(at + 4 + length).min(stream.len())];
        at += 4 + length;
        let word = |offset: usize| data.get(offset..offset + 2).map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        match kind {
            // NUMBER, LABEL, RSTRING, BOOLERR, RK, LABELSST, FORMULA: row, column first.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => {
                if let (Some(row), Some(column)) = (word(0), word(2)) {
                    widen(&mut bounds, row, column, column);
                }
            }
            // MULRK: row, first column, ..., last column in its last two bytes.
            0x00BD => {
                if let (Some(row), Some(first), Some(last)) = (word(0), word(2), word(data.len().saturating_sub(2))) {
                    widen(&mut bounds, row, first.min(last), first.max(last));
                }
            }
            // DIMENSIONS: calamine reserves the declared rectangle before it reads a cell (found by the
            // fuzz harness: 83 GB for a flipped byte). Computed as calamine computes it, wrapping included.
            0x0200 => extents.push(declared_dimensions(data)),
            // EOF ends a substream (the globals or a sheet).
            0x000A => {
                if let Some((top, bottom, left, right)) = bounds.take() {
                    extents.push((u64::from(bottom - top) + 1, u64::from(right - left) + 1));
                }
            }
            _ => {}
        }
    }
    if let Some((top, bottom, left, right)) = bounds {
        extents.push((u64::from(bottom - top) + 1, u64::from(right - left) + 1));
    }
    extents
}

/// The (rows, columns) calamine reserves for a DIMENSIONS record (`calamine::xls::parse_dimensions`).
fn declared_dimensions(data: &[u8]) -> (u64, u64) {
    let word = |at: usize| data.get(at..at + 2).map_or(0, |pair| u32::from(u16::from_le_bytes([pair[0], pair[1]])));
    let double =
        |at: usize| data.get(at..at + 4).map_or(0, |quad| u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]));
    let (first_row, last_row, mut first_column, last_column) = match data.len() {
        10 => (word(0), word(2), word(4), word(6)),
        14 | 16 => (double(0), double(4), word(8), word(10)),
        // calamine refuses other lengths.
        _ => return (1, 1),
    };
    if first_column > 0xFF || last_column < first_column {
        first_column = 0;
    }
    if last_row < 1 || last_column < 1 {
        return (1, 1);
    }
    let rows = (last_row - 1).wrapping_sub(first_row).wrapping_add(1);
    let columns = (last_column - 1).wrapping_sub(first_column).wrapping_add(1);
    (u64::from(rows), u64::from(columns))
}

/// Refuses an ODS whose tables calamine would expand into absurd rectangles: ODS compresses repetition
/// into `number-rows-repeated` and `number-columns-repeated`, which calamine expands cell by cell.
fn ods_check_ranges(bytes: &[u8]) -> Result<(), ParseError> {
    let mut archive = Archive::open(bytes, "ODS")?;
    archive.check_expansion()?;
    let content = archive.read("content.xml")?;
    for (rows, columns) in ods_table_extents(&content)? {
        let cells = rows.saturating_mul(columns);
        if cells > MAX_RANGE_CELLS {
            return Err(ParseError::TooLarge(format!(
                "a table of the ODS spans {rows} rows × {columns} columns ({cells} cells; at most {MAX_RANGE_CELLS} are read)"
            )));
        }
    }
    Ok(())
}

/// Per table: the rows from the first to the last that hold something (repeats counted), and the widest
/// such row up to its last non-empty cell (repeats counted), as calamine would lay them out.
fn ods_table_extents(content: &[u8]) -> Result<Vec<(u64, u64)>, ParseError> {
    use quick_xml::events::Event;
    let malformed =
        |error: &dyn std::fmt::Display| ParseError::Malformed(format!("the ODS content is damaged: {error}"));
    let repeats = |element: &quick_xml::events::BytesStart<'_>, name: &str| -> u64 {
        element
            .attributes()
            .flatten()
            .find(|attribute| attribute.key.as_ref() == name)
            .and_then(|attribute| attribute.value.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let content = std::str::from_utf8(content).map_err(|error| malformed(&error))?;
    let mut reader = quick_xml::Reader::from_str(content);
    let mut extents = Vec::new();
    // Per table: rows counted so far, first/last non-empty row, widest row.
    let (mut rows_seen, mut first_row, mut last_row, mut widest) = (0u64, None::<u64>, 0u64, 0u64);
    // Per row: its repeat count, columns counted so far, end of its last non-empty cell.
    let (mut row_repeats, mut columns_seen, mut row_width) = (1u64, 0u64, 0u64);
    // Per cell: its repeat count and whether it held text or a value.
    let (mut cell_repeats, mut cell_filled, mut in_cell) = (1u64, false, false);
    // Tables and rows still open: calamine reads a table until its end tag and loops forever when the
    // content ends first (found by the fuzz harness), so such a file is refused here.
    let (mut open_tables, mut open_rows) = (0u32, 0u32);
    loop {
        let event = reader.read_event().map_err(|error| malformed(&error))?;
        match &event {
            Event::Start(element) | Event::Empty(element) => match element.name().as_ref() {
                "table:table" => {
                    (rows_seen, first_row, last_row, widest) = (0, None, 0, 0);
                    open_tables += u32::from(matches!(event, Event::Start(_)));
                }
                "table:table-row" => {
                    (row_repeats, columns_seen, row_width) = (repeats(element, "table:number-rows-repeated"), 0, 0);
                    open_rows += u32::from(matches!(event, Event::Start(_)));
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    cell_repeats = repeats(element, "table:number-columns-repeated");
                    cell_filled =
                        element.attributes().flatten().any(|attribute| attribute.key.as_ref() == "office:value-type");
                    in_cell = matches!(event, Event::Start(_));
                    if !in_cell {
                        columns_seen = columns_seen.saturating_add(cell_repeats);
                        if cell_filled {
                            row_width = columns_seen;
                        }
                    }
                }
                _ => {}
            },
            Event::Text(text) if in_cell && !text.trim().is_empty() => cell_filled = true,
            Event::CData(_) | Event::GeneralRef(_) if in_cell => cell_filled = true,
            Event::End(element) => match element.name().as_ref() {
                "table:table-cell" | "table:covered-table-cell" => {
                    in_cell = false;
                    columns_seen = columns_seen.saturating_add(cell_repeats);
                    if cell_filled {
                        row_width = columns_seen;
                    }
                }
                "table:table-row" => {
                    open_rows = open_rows.saturating_sub(1);
                    if row_width > 0 {
                        first_row.get_or_insert(rows_seen);
                        last_row = rows_seen.saturating_add(row_repeats);
                        widest = widest.max(row_width);
                    }
                    rows_seen = rows_seen.saturating_add(row_repeats);
                }
                "table:table" => {
                    open_tables = open_tables.saturating_sub(1);
                    if let Some(first) = first_row {
                        extents.push((last_row - first, widest));
                    }
                }
                _ => {}
            },
            Event::Eof if open_tables > 0 || open_rows > 0 => {
                return Err(ParseError::Malformed("the ODS content ends inside a table (a truncated file?)".into()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(extents)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An XLSX with the given `(reference, text)` inline-string cells on one sheet, as a spreadsheet program
    /// writes the minimum (the hostile sparse sheet of issue 15 is `[("A1", ..), ("XFD1048576", ..)]`).
    fn xlsx_with_cells(cells: &[(&str, &str)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        let mut add = |name: &str, text: String| {
            zip.start_file(name, options).expect("member");
            zip.write_all(text.as_bytes()).expect("write");
        };
        add("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.into());
        add("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into());
        add("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sparse" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into());
        add("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.into());
        let mut rows = BTreeMap::<u32, String>::new();
        for (reference, text) in cells {
            let row: u32 = reference.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().expect("row");
            rows.entry(row)
                .or_default()
                .push_str(&format!(r#"<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>"#));
        }
        let data: String = rows.iter().map(|(row, cells)| format!(r#"<row r="{row}">{cells}</row>"#)).collect();
        let last = cells.last().map(|(reference, _)| *reference).unwrap_or("A1");
        add(
            "xl/worksheets/sheet1.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:{last}"/><sheetData>{data}</sheetData></worksheet>"#
            ),
        );
        zip.finish().expect("zip").into_inner()
    }

    #[test]
    fn a_sparse_sheet_with_a1_and_xfd1048576_is_read_as_two_short_rows() {
        let bytes = xlsx_with_cells(&[("A1", "northwest"), ("XFD1048576", "southeast")]);
        assert!(bytes.len() < 4096, "{} bytes", bytes.len());
        let elements = spreadsheet(&bytes, "xlsx").expect("read");
        assert_eq!(elements.len(), 1, "{elements:#?}");
        assert_eq!(elements[0].text, "northwest | \n | southeast");
        assert_eq!(elements[0].heading_path, ["Sparse"]);
    }

    #[test]
    fn a_sheet_whose_table_would_be_too_large_is_refused() {
        let mut sheet = SparseSheet::new();
        for index in 0..3000u32 {
            sheet.entry(index).or_default().insert(index, "x".into());
        }
        let error = rows_of("Diagonal", &sheet).expect_err("3000 × 3000");
        assert!(error.to_string().contains("3000 rows × 3000 columns"), "{error}");
    }

    #[test]
    fn xls_extents_come_from_cell_records_per_sheet() {
        let record = |kind: u16, data: &[u8]| {
            let mut bytes = kind.to_le_bytes().to_vec();
            bytes.extend((data.len() as u16).to_le_bytes());
            bytes.extend(data);
            bytes
        };
        let cell = |row: u16, column: u16| [row.to_le_bytes(), column.to_le_bytes(), [0, 0]].concat();
        let mut stream = record(0x0809, &[0; 8]);
        stream.extend(record(0x000A, &[]));
        stream.extend(record(0x0809, &[0; 8]));
        stream.extend(record(0x00FD, &[cell(0, 0), vec![0; 4]].concat()));
        stream.extend(record(0x0203, &[cell(65535, 255), vec![0; 8]].concat()));
        stream.extend(record(0x000A, &[]));
        stream.extend(record(0x0809, &[0; 8]));
        stream.extend(record(0x00BD, &[cell(3, 2), vec![0; 12], 7u16.to_le_bytes().to_vec()].concat()));
        stream.extend(record(0x000A, &[]));
        assert_eq!(xls_sheet_extents(&stream), [(65536, 256), (1, 6)]);
        // A declared DIMENSIONS rectangle counts too, wrapped as calamine wraps it (rows 5..0 wraps).
        let dimensions = [5u32.to_le_bytes().to_vec(), 1u32.to_le_bytes().to_vec(), vec![0, 0, 2, 0, 0, 0]].concat();
        assert_eq!(xls_sheet_extents(&record(0x0200, &dimensions)), [(4_294_967_292, 2)]);
        let fine = [0u32.to_le_bytes().to_vec(), 10u32.to_le_bytes().to_vec(), vec![0, 0, 3, 0, 0, 0]].concat();
        assert_eq!(xls_sheet_extents(&record(0x0200, &fine)), [(10, 3)]);
    }

    #[test]
    fn ods_extents_count_repeats_of_filled_rows_and_cells_only() {
        let content = br#"<office:document-content><office:body><office:spreadsheet>
            <table:table table:name="A">
              <table:table-row><table:table-cell office:value-type="string"><text:p>a</text:p></table:table-cell></table:table-row>
              <table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="3"/><table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="16000"/></table:table-row>
              <table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>
            </table:table>
            <table:table table:name="B">
              <table:table-row><table:table-cell/><table:table-cell><text:p>b</text:p></table:table-cell></table:table-row>
            </table:table>
        </office:spreadsheet></office:body></office:document-content>"#;
        assert_eq!(ods_table_extents(content).expect("scan"), [(1_000_001, 16_003), (1, 2)]);
        let truncated = br#"<office:document-content><office:body><office:spreadsheet><table:table table:name="A"><table:table-row>"#;
        assert!(matches!(ods_table_extents(truncated), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn the_fixtures_still_read() {
        let fixture = |name: &str| {
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats").join(name),
            )
            .expect("fixture")
        };
        for (name, extension) in [("parts.xls", "xls"), ("birds.ods", "ods"), ("inventory.xlsx", "xlsx")] {
            let elements = spreadsheet(&fixture(name), extension).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(!elements.is_empty(), "{name}");
        }
    }
}
