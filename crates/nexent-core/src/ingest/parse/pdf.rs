//! PDF through its text layer (pdf-extract on lopdf), one page at a time so elements carry page numbers.
//! A PDF without a text layer (a scan) fails with that reason: OCR is a later step.
//!
//! lopdf inflates streams without a limit, so a 1 MB file holding one FlateDecode stream of 1 GiB would
//! cost gigabytes. Before lopdf sees the bytes, every Flate stream of the raw file is inflated here into
//! nothing by a counting decoder, and the file is refused past a per-stream or per-document budget. An
//! encrypted file's streams can only be inflated once decrypted, so they are counted again after loading.
//! The page count is capped too (each page's text extraction walks the whole page tree).

use std::io::Read;

use pdf_extract::{Document, Object, PlainTextOutput};

use super::budget;
use super::text::paragraphs;
use super::{Element, ParseError};

/// Most bytes one stream may inflate to (also bounds what pdf-extract parses as one content stream).
const MAX_STREAM_BYTES: u64 = 32 << 20;
/// Most bytes all the streams of one file may inflate to.
const MAX_DOCUMENT_BYTES: u64 = 256 << 20;
const MAX_PAGES: usize = 5_000;
/// A stream with more Flate layers than this is refused rather than unwrapped further.
const MAX_FLATE_LAYERS: usize = 4;

pub(super) fn pdf(bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    // The header may follow a little junk, as readers allow, but it must be there.
    if !bytes[..bytes.len().min(1024)].windows(5).any(|window| window == b"%PDF-") {
        return Err(ParseError::Malformed("this is not a PDF file (no %PDF header)".into()));
    }
    let mut inflated = Inflated::default();
    for (layers, data) in raw_flate_streams(bytes) {
        inflated.add(data, layers)?;
    }
    let damaged =
        |error: &dyn std::fmt::Display| ParseError::Malformed(format!("the PDF is damaged or encrypted: {error}"));
    let mut document = Document::load_mem(bytes).map_err(|error| damaged(&error))?;
    if document.is_encrypted() {
        // Readers open files encrypted with an empty user password (permissions only) without asking.
        document.decrypt("").map_err(|error| damaged(&error))?;
        let mut decrypted = Inflated::default();
        for object in document.objects.values() {
            if let Object::Stream(stream) = object {
                let layers = flate_layers(&stream.dict);
                if layers > 0 {
                    decrypted.add(&stream.content, layers)?;
                }
            }
        }
    }
    let pages = document.get_pages();
    if pages.len() > MAX_PAGES {
        return Err(ParseError::TooLarge(format!("the PDF has {} pages; at most {MAX_PAGES} are read", pages.len())));
    }
    let mut texts = Vec::with_capacity(pages.len());
    for number in pages.keys() {
        let mut text = String::new();
        {
            let mut output = PlainTextOutput::new(&mut text);
            // A page that cannot be read ends the text, as pdf-extract's own page loop does.
            if pdf_extract::output_doc_page(&document, &mut output, *number).is_err() {
                break;
            }
        }
        if !budget::charge(text.len(), 0) {
            break;
        }
        texts.push(text);
    }
    let elements: Vec<Element> = texts
        .iter()
        .enumerate()
        .flat_map(|(index, page)| {
            let number = u32::try_from(index + 1).ok();
            paragraphs(page).into_iter().map(move |element| Element { page: number, ..element })
        })
        .collect();
    if elements.iter().all(|element| element.text.trim().is_empty()) && !budget::spent() {
        return Err(ParseError::NoTextLayer(texts.len()));
    }
    Ok(elements)
}

/// Bytes inflated so far in one document.
#[derive(Default)]
struct Inflated {
    total: u64,
}

impl Inflated {
    fn add(&mut self, data: &[u8], layers: usize) -> Result<(), ParseError> {
        if layers > MAX_FLATE_LAYERS {
            return Err(ParseError::TooLarge(format!("a PDF stream is compressed {layers} times over")));
        }
        let budget = MAX_STREAM_BYTES.min(MAX_DOCUMENT_BYTES - self.total);
        let size = inflated_size(data, layers, budget + 1);
        if size > budget {
            return Err(ParseError::TooLarge(format!(
                "the PDF's compressed streams expand beyond {} MiB per stream or {} MiB in all (a decompression bomb?)",
                MAX_STREAM_BYTES >> 20,
                MAX_DOCUMENT_BYTES >> 20
            )));
        }
        self.total += size;
        Ok(())
    }
}

/// How many bytes `data` inflates to through `layers` zlib layers, counting at most `limit`. A stream that
/// is not valid zlib counts what was inflated before the error: lopdf will refuse or skip it itself.
fn inflated_size(data: &[u8], layers: usize, limit: u64) -> u64 {
    let mut reader: Box<dyn Read + '_> = Box::new(data);
    for _ in 0..layers {
        reader = Box::new(flate2::read::ZlibDecoder::new(reader));
    }
    let mut counted = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    while counted < limit {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => counted += read as u64,
        }
    }
    counted
}

/// How many FlateDecode filters a stream dictionary applies.
fn flate_layers(dict: &pdf_extract::Dictionary) -> usize {
    match dict.get(b"Filter") {
        Ok(Object::Name(name)) => usize::from(name == b"FlateDecode" || name == b"Fl"),
        Ok(Object::Array(filters)) => filters
            .iter()
            .filter(|filter| matches!(filter, Object::Name(name) if name == b"FlateDecode" || name == b"Fl"))
            .count(),
        _ => 0,
    }
}

/// The Flate-encoded stream bodies of a raw PDF with their number of Flate layers, found by their keywords
/// (`<< ... /FlateDecode ... >> stream EOL ... endstream`), without trusting `/Length` or the xref table:
/// this is what a hostile file cannot hide a stream from, since lopdf finds its objects the same way when
/// the table is damaged.
fn raw_flate_streams(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut streams = Vec::new();
    let mut search = 0usize;
    while let Some(found) = find(&bytes[search..], b"stream") {
        let keyword = search + found;
        search = keyword + b"stream".len();
        if bytes[..keyword].ends_with(b"end") {
            continue;
        }
        let mut start = search;
        if bytes.get(start) == Some(&b'\r') {
            start += 1;
        }
        if bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
        if start == search {
            continue; // "stream" inside something else: the keyword is always followed by an end of line.
        }
        // The stream's dictionary: back to the `obj` keyword that opens its object (a window suffices: a
        // dictionary longer than it would be refused by lopdf as absurd anyway).
        let window = &bytes[keyword.saturating_sub(64 * 1024)..keyword];
        let dictionary = rfind(window, b"obj").map(|at| &window[at..]).unwrap_or(window);
        let end = find(&bytes[start..], b"endstream").map(|at| start + at).unwrap_or(bytes.len());
        let layers = count(dictionary, b"/FlateDecode") + count(dictionary, b"/Fl ") + count(dictionary, b"/Fl/");
        if layers > 0 {
            streams.push((layers, &bytes[start..end]));
        }
        search = end;
    }
    streams
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|window| window == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|window| *window == needle).count()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A one-page PDF whose only content stream is Flate-compressed `inflated_bytes` of spaces after a line of
    /// text: `inflated_bytes` of 1 GiB gives the stream bomb in about 1 MB.
    pub(crate) fn pdf_with_flate_stream(inflated_bytes: u64) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(b"BT /F1 12 Tf 72 720 Td (The zorbling bomb is defused.) Tj ET\n").expect("text");
        let spaces = vec![b' '; 1 << 20];
        let mut left = inflated_bytes;
        while left > 0 {
            let part = left.min(spaces.len() as u64) as usize;
            encoder.write_all(&spaces[..part]).expect("spaces");
            left -= part as u64;
        }
        let content = encoder.finish().expect("deflate");
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        let mut object = |pdf: &mut Vec<u8>, body: &[u8]| {
            offsets.push(pdf.len());
            pdf.extend(format!("{} 0 obj\n", offsets.len()).as_bytes());
            pdf.extend(body);
            pdf.extend(b"\nendobj\n");
        };
        object(&mut pdf, b"<< /Type /Catalog /Pages 2 0 R >>");
        object(&mut pdf, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
        object(&mut pdf, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>");
        let mut stream = format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", content.len()).into_bytes();
        stream.extend(&content);
        stream.extend(b"\nendstream");
        object(&mut pdf, &stream);
        object(&mut pdf, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
        let xref = pdf.len();
        pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes());
        for offset in &offsets {
            pdf.extend(format!("{offset:010} 00000 n \n").as_bytes());
        }
        pdf.extend(
            format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", offsets.len() + 1).as_bytes(),
        );
        pdf
    }

    #[test]
    fn a_small_flate_stream_is_read_and_a_stream_bomb_is_refused() {
        let fine = pdf(&pdf_with_flate_stream(1 << 20)).expect("1 MiB stream");
        assert!(fine.iter().any(|element| element.text.contains("zorbling")), "{fine:#?}");

        let bomb = pdf_with_flate_stream(1 << 30);
        assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
        let error = pdf(&bomb).expect_err("1 GiB stream");
        assert!(
            matches!(error, ParseError::TooLarge(_)) && error.to_string().contains("decompression bomb"),
            "{error}"
        );
    }

    #[test]
    fn raw_streams_are_found_with_their_layers_and_inflated_with_a_limit() {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&[0u8; 100_000]).expect("zeros");
        let once = encoder.finish().expect("once");
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&once).expect("twice");
        let twice = encoder.finish().expect("twice");
        let mut file = b"%PDF-1.5\n1 0 obj << /Filter [/FlateDecode /FlateDecode] >>\nstream\r\n".to_vec();
        file.extend(&twice);
        file.extend(b"\nendstream endobj\n2 0 obj << /Length 3 >>\nstream\nabc\nendstream endobj\n");
        let streams = raw_flate_streams(&file);
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].0, 2);
        assert_eq!(inflated_size(streams[0].1, 2, u64::MAX), 100_000);
        let limited = inflated_size(streams[0].1, 2, 1000);
        assert!(limited > 1000 && limited <= 64 * 1024, "stops at the first read past the limit: {limited}");
        assert_eq!(inflated_size(b"not zlib", 1, u64::MAX), 0);
    }
}
