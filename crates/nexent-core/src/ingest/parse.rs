//! Turning a file's bytes into text elements with metadata (title flag, heading path, page), by file
//! extension: plain text and source code, Markdown, HTML, CSV/TSV, JSON, XML (`text`), PDF's text layer
//! (`pdf`), DOCX, PPTX and ODT (`office`), XLSX, XLS and ODS (`sheet`), EML (`mail`), EPUB (`epub`) and RTF
//! (`rtf`). All in-process Rust; ZIP containers are read with expansion limits (`archive`). A file that is not
//! what its name says, or that a parser cannot read, fails with a reason rather than being indexed as garbage.

mod archive;
pub mod budget;
mod epub;
#[cfg(test)]
mod fuzz;
mod mail;
mod office;
mod pdf;
mod rtf;
mod sheet;
mod text;
mod xml;

use std::path::Path;

pub use text::strip_tags;
use text::{delimited, html, json, markdown, paragraphs, text_of};

/// One piece of a parsed document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub text: String,
    /// A heading (starts a section for `by_title`).
    pub is_title: bool,
    /// The headings above this element, outermost first.
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("File type not allowed: {0}")]
    NotAllowed(String),
    #[error("{0} files cannot be parsed yet (an old binary format): save the file as {1} and upload that")]
    NotYetSupported(String, &'static str),
    #[error("images are described only by a vision model, and none is configured")]
    NeedsVision,
    #[error("the PDF has no text layer in its {0} page(s) (a scanned document?); OCR is not available yet")]
    NoTextLayer(usize),
    #[error("the file is too large to parse: {0}")]
    TooLarge(String),
    #[error("the file is not valid UTF-8 text")]
    NotText,
    #[error("the file has no text to index")]
    Empty,
    #[error("cannot parse the file: {0}")]
    Malformed(String),
}

/// Nexent's allowed upload extensions (§3.4) plus the formats we parse beyond it.
pub const ALLOWED_EXTENSIONS: [&str; 45] = [
    "txt", "pdf", "png", "jpg", "jpeg", "gif", "docx", "pptx", "xlsx", "md", "eml", "msg", "epub", "xls", "html",
    "htm", "org", "log", "ppt", "rst", "rtf", "tsv", "doc", "xml", "js", "py", "java", "cpp", "cc", "cxx", "c", "cs",
    "php", "rb", "swift", "ts", "go", "csv", "json", "odt", "ods", "rs", "markdown", "h", "sh",
];

const PLAIN_TEXT: [&str; 21] = [
    "txt", "log", "org", "rst", "js", "py", "java", "cpp", "cc", "cxx", "c", "cs", "php", "rb", "swift", "ts", "go",
    "rs", "h", "sh", "text",
];

pub fn extension_of(file_name: &str) -> String {
    Path::new(file_name).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

pub fn is_allowed(file_name: &str) -> bool {
    ALLOWED_EXTENSIONS.contains(&extension_of(file_name).as_str())
}

/// Parses `bytes` as the format its name says.
pub fn parse_document(file_name: &str, bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    let extension = extension_of(file_name);
    if !is_allowed(file_name) {
        return Err(ParseError::NotAllowed(if extension.is_empty() {
            file_name.to_owned()
        } else {
            format!(".{extension}")
        }));
    }
    let limits = budget::Limits::for_input(bytes.len());
    let scope = budget::Scope::new(limits);
    // A parser that panics on a hostile file has met a damaged file; the worker goes on.
    let parsed = std::panic::catch_unwind(|| parse_as(&extension, bytes))
        .unwrap_or_else(|_| Err(ParseError::Malformed(format!("the .{extension} file is damaged"))))?;
    // The charges stopped the parsers early; the measure is the rule, whatever a parser forgot to charge.
    let (produced_bytes, produced_lines) = budget::measure(&parsed);
    if scope.exceeded() || produced_bytes > limits.bytes || produced_lines > limits.lines {
        return Err(ParseError::TooLarge(format!(
            "the extracted text would exceed {} MiB or {} lines for a file of {} bytes",
            limits.bytes >> 20,
            limits.lines,
            bytes.len()
        )));
    }
    if parsed.iter().all(|element| element.text.trim().is_empty()) {
        return Err(ParseError::Empty);
    }
    Ok(parsed)
}

/// Whether the file's parser is a binary-format reader (PDF, Office, spreadsheets, mail, EPUB, RTF): those
/// run large third-party code on the bytes, so a task records that its parse started (see `IngestQueue`).
pub fn is_binary_format(file_name: &str) -> bool {
    matches!(
        extension_of(file_name).as_str(),
        "pdf" | "docx" | "pptx" | "odt" | "xlsx" | "xls" | "ods" | "eml" | "epub" | "rtf"
    )
}

fn parse_as(extension: &str, bytes: &[u8]) -> Result<Vec<Element>, ParseError> {
    Ok(match extension {
        "md" | "markdown" => markdown(text_of(bytes)?),
        "html" | "htm" => html(text_of(bytes)?),
        "tsv" => delimited(text_of(bytes)?, '\t'),
        "csv" => delimited(text_of(bytes)?, ','),
        "json" => json(text_of(bytes)?)?,
        "xml" => vec![Element { text: strip_tags(text_of(bytes)?), ..Element::default() }],
        "pdf" => pdf::pdf(bytes)?,
        "docx" => office::docx(bytes)?,
        "pptx" => office::pptx(bytes)?,
        "odt" => office::odt(bytes)?,
        "xlsx" | "xls" | "ods" => sheet::spreadsheet(bytes, extension)?,
        "eml" => mail::eml(bytes)?,
        "epub" => epub::epub(bytes)?,
        "rtf" => rtf::rtf(bytes)?,
        "png" | "jpg" | "jpeg" | "gif" => return Err(ParseError::NeedsVision),
        "doc" => return Err(ParseError::NotYetSupported(".doc".into(), ".docx")),
        "ppt" => return Err(ParseError::NotYetSupported(".ppt".into(), ".pptx")),
        "msg" => return Err(ParseError::NotYetSupported(".msg".into(), ".eml")),
        other if PLAIN_TEXT.contains(&other) => paragraphs(text_of(bytes)?),
        other => return Err(ParseError::NotAllowed(format!(".{other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_headings_become_titles_with_paths() {
        let elements = parse_document("a.md", b"# Guide\n\nIntro text.\n\n## Install\n\nRun it.\n").expect("parse");
        let titles: Vec<&str> = elements.iter().filter(|e| e.is_title).map(|e| e.text.as_str()).collect();
        assert_eq!(titles, ["Guide", "Install"]);
        let run = elements.iter().find(|e| e.text == "Run it.").expect("paragraph");
        assert_eq!(run.heading_path, ["Guide", "Install"]);
    }

    #[test]
    fn html_loses_tags_scripts_and_keeps_headings() {
        let page = b"<html><head><style>p{}</style><script>var x = '<p>';</script></head><body><h1>Title</h1><p>Hello &amp; welcome</p><div>Second</div></body></html>";
        let elements = parse_document("page.html", page).expect("parse");
        let texts: Vec<&str> = elements.iter().map(|e| e.text.as_str()).collect();
        assert!(
            texts.contains(&"Title") && texts.contains(&"Hello & welcome") && texts.contains(&"Second"),
            "{texts:?}"
        );
        assert!(
            !texts
                .iter()
                .any(|t| t.contains("var x") || t.contains("p{}") || t.contains("/script") || t.contains("/style")),
            "{texts:?}"
        );
        // Unclosed tags at the end of multibyte text do not panic.
        for text in ["\u{2039}\u{e9}", "<b \u{65e5}\u{672c}", "<", "a<"] {
            let _ = strip_tags(text);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_document("x.exe", b"MZ"), Err(ParseError::NotAllowed(".exe".into())));
        assert_eq!(parse_document("x.txt", &[0xff, 0xfe, 0x00]), Err(ParseError::NotText));
        assert_eq!(parse_document("x.txt", b"   \n\n "), Err(ParseError::Empty));
        assert!(matches!(parse_document("x.json", b"{nope"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_document("x.docx", b"\x89PNG\r\n"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_document("x.pdf", b"%PDF-1.4\n1 0 obj"), Err(ParseError::Malformed(_))));
        assert_eq!(parse_document("x.doc", b"\xd0\xcf"), Err(ParseError::NotYetSupported(".doc".into(), ".docx")));
        assert_eq!(parse_document("x.png", b"\x89PNG"), Err(ParseError::NeedsVision));
    }

    #[test]
    fn json_and_tables_are_flattened_to_lines() {
        let elements = parse_document("d.json", br#"{"product":{"name":"Zorblax","weight_kg":12}}"#).expect("json");
        assert!(
            elements[0].text.contains("product.name: Zorblax") && elements[0].text.contains("product.weight_kg: 12")
        );
        let table = parse_document("t.tsv", b"name\tweight\nZorblax\t12\n").expect("tsv");
        assert_eq!(table[0].text, "name | weight\nZorblax | 12");
        let csv = parse_document("t.csv", b"name,note\nZorblax,\"heavy, 12 kg\"\n").expect("csv");
        assert_eq!(csv[0].text, "name | note\nZorblax | heavy, 12 kg");
    }

    #[test]
    fn json_with_giant_key_paths_stays_small_and_lists_are_one_line() {
        // Issue 15: 10 levels of 10,000-character keys over 20,000 leaves (137 KB) made 5.8 GB of lines.
        let mut document = format!("[{}]", vec!["1"; 20_000].join(","));
        for level in 0..10 {
            document = format!("{{\"{}\": {document}}}", format!("{level}").repeat(10_000));
        }
        let elements = parse_document("keys.json", document.as_bytes()).expect("json");
        let (bytes, _) = budget::measure(&elements);
        assert!(bytes < 100_000, "{bytes} bytes");
        let (path, values) = elements[0].text.split_once(": ").expect("a path");
        assert!(path.starts_with('…') && path.len() <= 128 + '…'.len_utf8(), "{path}");
        assert!(values.starts_with("1, 1"));

        let tags = parse_document("t.json", br#"{"tags":["a","b"],"rows":[{"n":1},{"n":2}]}"#).expect("json");
        assert_eq!(tags[0].text, "rows[0].n: 1\nrows[1].n: 2\ntags: a, b");
    }

    #[test]
    fn output_past_the_budget_fails_with_a_reason() {
        let mut markdown = String::new();
        for level in 1..=6 {
            markdown.push_str(&format!("{} {}\n\n", "#".repeat(level), "h".repeat(300)));
        }
        markdown.push_str(&"a\n\n".repeat(100_000));
        let error = parse_document("outline.md", markdown.as_bytes()).expect_err("over budget");
        assert!(error.to_string().contains("the extracted text would exceed 16 MiB"), "{error}");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats").join(name);
        std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// The committed fixtures (tests/fixtures/formats/make_fixtures.py wrote them with the usual libraries).
    #[test]
    fn every_binary_format_yields_its_unique_sentence() {
        for (file, word) in [
            ("report.pdf", "quorbinite"),
            ("garden.docx", "zelkovaria"),
            ("review.pptx", "frumbleberry"),
            ("inventory.xlsx", "glimmerwort"),
            ("parts.xls", "snorkelvane"),
            ("birds.ods", "brambleflux"),
            ("choir.odt", "vantablossom"),
            ("meeting.eml", "plinkerton"),
            ("dragon.epub", "drovenstone"),
            ("bakery.rtf", "wobbletart"),
        ] {
            let elements = parse_document(file, &fixture(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
            assert!(elements.iter().any(|element| element.text.contains(word)), "{file}: {elements:#?}");
        }
    }

    #[test]
    fn binary_formats_keep_structure() {
        let pdf = parse_document("report.pdf", &fixture("report.pdf")).expect("pdf");
        let sentence = pdf.iter().find(|element| element.text.contains("quorbinite")).expect("sentence");
        assert_eq!(sentence.page, Some(2));

        let docx = parse_document("garden.docx", &fixture("garden.docx")).expect("docx");
        let titles: Vec<&str> = docx.iter().filter(|e| e.is_title).map(|e| e.text.as_str()).collect();
        assert_eq!(titles, ["Garden notes", "Spring"]);
        let planted = docx.iter().find(|element| element.text.contains("zelkovaria")).expect("sentence");
        assert_eq!(planted.heading_path, ["Garden notes", "Spring"]);
        assert!(docx.iter().any(|element| element.text == "tulip | April"), "{docx:#?}");

        let pptx = parse_document("review.pptx", &fixture("review.pptx")).expect("pptx");
        let sales = pptx.iter().find(|element| element.text.contains("frumbleberry")).expect("sentence");
        assert_eq!((sales.page, sales.heading_path.clone()), (Some(2), vec!["Sales".to_owned()]));

        let xlsx = parse_document("inventory.xlsx", &fixture("inventory.xlsx")).expect("xlsx");
        assert_eq!(xlsx[0].text, "item | count | note\nlamp | 3 | ordinary\nglimmerwort | 12 | rare herb");
        assert_eq!(xlsx[0].heading_path, ["Inventory"]);

        let odt = parse_document("choir.odt", &fixture("choir.odt")).expect("odt");
        assert!(odt[0].is_title && odt[0].text == "Choir", "{odt:#?}");

        let eml = parse_document("meeting.eml", &fixture("meeting.eml")).expect("eml");
        assert!(eml[0].is_title && eml[0].text == "Meeting on Friday", "{eml:#?}");
        assert!(eml[1].text.contains("From: Ada Lovelace <ada@example.org>") && eml[1].text.contains("agenda.txt"));

        let epub = parse_document("dragon.epub", &fixture("dragon.epub")).expect("epub");
        let dragon = epub.iter().find(|element| element.text.contains("drovenstone")).expect("sentence");
        assert_eq!(dragon.heading_path, ["Chapter 2"]);

        let rtf = parse_document("bakery.rtf", &fixture("bakery.rtf")).expect("rtf");
        assert!(rtf.iter().any(|element| element.text.contains("caf\u{e9}")), "{rtf:#?}");
    }

    #[test]
    fn hostile_files_fail_with_reasons() {
        let reason = |file: &str| parse_document(file, &fixture(file)).expect_err(file);
        assert!(matches!(reason("bad-truncated.pdf"), ParseError::Malformed(_)));
        assert!(matches!(reason("bad-scanned.pdf"), ParseError::NoTextLayer(1)));
        assert!(reason("bad-really-a-png.docx").to_string().contains("not a DOCX"));
        assert!(matches!(reason("bad-zip-bomb.docx"), ParseError::TooLarge(_)));
    }
}
