//! The output budget of one parse: every parser charges the text it produces here, so a small hostile file
//! (a JSON document whose leaves repeat giant key paths, a table whose huge header is repeated per group, a
//! mail whose long subject heads every paragraph) stops producing once it has produced more than its input
//! can justify, instead of filling memory. The budget is per thread because one parse runs on one blocking
//! thread; `Scope` sets it for the parse and clears it afterwards.

use std::cell::Cell;

use super::Element;

/// Every file may produce at least this much text, however small it is.
const FLOOR_BYTES: u64 = 16 << 20;
/// Text may be this many times the file's size (compressed formats expand: DOCX, XLSX, PDF streams).
const BYTES_PER_INPUT_BYTE: u64 = 8;
/// No file produces more than this, whatever its size.
const HARD_CAP_BYTES: u64 = 256 << 20;
const FLOOR_LINES: u64 = 200_000;
const HARD_CAP_LINES: u64 = 4_000_000;
/// What an element costs besides its text: the struct, its vector and string headers.
const ELEMENT_OVERHEAD: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bytes: u64,
    pub lines: u64,
}

impl Limits {
    /// What a file of `input_bytes` may produce.
    pub fn for_input(input_bytes: usize) -> Self {
        let input = input_bytes as u64;
        Self {
            bytes: input.saturating_mul(BYTES_PER_INPUT_BYTE).clamp(FLOOR_BYTES, HARD_CAP_BYTES),
            lines: input.clamp(FLOOR_LINES, HARD_CAP_LINES),
        }
    }
}

#[derive(Clone, Copy)]
struct Spent {
    limits: Limits,
    bytes: u64,
    lines: u64,
    exceeded: bool,
}

thread_local! {
    static SPENT: Cell<Option<Spent>> = const { Cell::new(None) };
}

/// The budget of the parse running on this thread, cleared when dropped (also when the parser panics).
pub struct Scope {
    previous: Option<Spent>,
}

impl Scope {
    pub fn new(limits: Limits) -> Self {
        let previous = SPENT.with(|spent| spent.replace(Some(Spent { limits, bytes: 0, lines: 0, exceeded: false })));
        Self { previous }
    }

    /// Whether some parser was refused output during this scope.
    pub fn exceeded(&self) -> bool {
        SPENT.with(|spent| spent.get().is_some_and(|spent| spent.exceeded))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SPENT.with(|spent| spent.set(self.previous));
    }
}

/// Charges `bytes` of text in `lines` lines; false once the budget is spent (the caller stops producing).
/// Without a scope (a parser called directly by a unit test) everything is allowed.
pub fn charge(bytes: usize, lines: usize) -> bool {
    SPENT.with(|cell| {
        let Some(mut spent) = cell.get() else { return true };
        spent.bytes = spent.bytes.saturating_add(bytes as u64);
        spent.lines = spent.lines.saturating_add(lines as u64);
        if spent.bytes > spent.limits.bytes || spent.lines > spent.limits.lines {
            spent.exceeded = true;
        }
        cell.set(Some(spent));
        !spent.exceeded
    })
}

/// Whether the budget of this thread's parse is already spent (for loops that want to stop early).
pub fn spent() -> bool {
    SPENT.with(|cell| cell.get().is_some_and(|spent| spent.exceeded))
}

/// Charges one element (its text, its heading path and its bookkeeping).
pub fn charge_element(element: &Element) -> bool {
    let path: usize = element.heading_path.iter().map(String::len).sum();
    let lines = element.text.bytes().filter(|byte| *byte == b'\n').count() + 1;
    charge(element.text.len() + path + ELEMENT_OVERHEAD as usize, lines)
}

/// What a parse produced, measured the same way as it was charged.
pub fn measure(elements: &[Element]) -> (u64, u64) {
    elements.iter().fold((0, 0), |(bytes, lines), element| {
        let path: usize = element.heading_path.iter().map(String::len).sum();
        let element_lines = element.text.bytes().filter(|byte| *byte == b'\n').count() as u64 + 1;
        (bytes + (element.text.len() + path) as u64 + ELEMENT_OVERHEAD, lines + element_lines)
    })
}

/// Headings inside heading paths are cut to this many bytes: a path is repeated on every element below it.
pub const MAX_PATH_HEADING_BYTES: usize = 200;

/// `heading` as it is kept in heading paths: at most [`MAX_PATH_HEADING_BYTES`], cut at a character
/// boundary with an ellipsis.
pub fn path_heading(heading: &str) -> String {
    if heading.len() <= MAX_PATH_HEADING_BYTES {
        return heading.to_owned();
    }
    let mut end = MAX_PATH_HEADING_BYTES;
    while !heading.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &heading[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_grow_with_the_input_between_a_floor_and_a_cap() {
        assert_eq!(Limits::for_input(1000), Limits { bytes: FLOOR_BYTES, lines: FLOOR_LINES });
        assert_eq!(Limits::for_input(10 << 20).bytes, 80 << 20);
        assert_eq!(Limits::for_input(200 << 20), Limits { bytes: HARD_CAP_BYTES, lines: HARD_CAP_LINES });
    }

    #[test]
    fn charging_past_the_limit_is_refused_and_remembered_until_the_scope_ends() {
        assert!(charge(usize::MAX / 2, 0), "no scope, no limit");
        {
            let scope = Scope::new(Limits { bytes: 100, lines: 3 });
            assert!(charge(60, 1));
            assert!(!scope.exceeded());
            assert!(!charge(60, 1));
            assert!(scope.exceeded() && spent());
        }
        assert!(!spent());
        let scope = Scope::new(Limits { bytes: 1000, lines: 3 });
        assert!(charge(1, 3));
        assert!(!charge(1, 1), "lines are budgeted too");
        assert!(scope.exceeded());
    }

    #[test]
    fn path_headings_are_cut_at_a_character_boundary() {
        assert_eq!(path_heading("Intro"), "Intro");
        let long = "é".repeat(150);
        let cut = path_heading(&long);
        assert!(cut.len() <= MAX_PATH_HEADING_BYTES + '…'.len_utf8() && cut.ends_with('…'), "{cut}");
    }
}
