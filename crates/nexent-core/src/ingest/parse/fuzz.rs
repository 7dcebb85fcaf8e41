//! A hostile-input harness for every document parser, on stable Rust (cargo-fuzz needs nightly): the real
//! fixtures of `tests/fixtures/formats` (and small samples of the text formats) are mutated by a seeded
//! generator — bytes flipped, set to boundary values, inserted, deleted, duplicated, numbers made huge —
//! and, for ZIP containers, inside their members before re-zipping, where a byte flip would only break a
//! checksum. Every input must come back from `parse_document` as elements or a reason, within the output
//! budget, without a parser allocating more than [`MAX_PEAK_BYTES`] at once (a counting allocator measures
//! each parse's thread). One test per format, each running `NEXENT_FUZZ_SECONDS` (2 by default inside the
//! normal suite; `make fuzz` runs longer). `NEXENT_FUZZ_SEED` replays a run: each input is derived from the
//! seed and its number, both printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{budget, parse_as, parse_document};

/// Most bytes one parse may hold at once, above what its thread held before it began.
const MAX_PEAK_BYTES: i64 = 512 << 20;
/// A parse asking for more than this is refused its allocation (the test process then aborts, which the
/// run reports as a crash) rather than left to exhaust the machine.
const ABORT_PEAK_BYTES: i64 = 2 << 30;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

/// Counts the bytes each thread holds (only while it measures; other threads pay one flag read).
struct CountingAllocator;

fn note_allocation(size: usize) -> bool {
    MEASURING
        .try_with(|measuring| {
            if !measuring.get() {
                return true;
            }
            let live = LIVE.with(Cell::get) + size as i64;
            PEAK.with(|peak| peak.set(peak.get().max(live)));
            // A refused allocation is not held: the abort message that follows must still be allocated.
            if live > ABORT_PEAK_BYTES {
                return false;
            }
            LIVE.with(|cell| cell.set(live));
            true
        })
        .unwrap_or(true)
}

fn note_release(size: usize) {
    let _ = MEASURING.try_with(|measuring| {
        if measuring.get() {
            LIVE.with(|live| live.set(live.get() - size as i64));
        }
    });
}

// The one way to measure what a third-party parser allocates: wrap the system allocator. Each method only
// forwards to `System` with the caller's own arguments, whose contract the caller already upholds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note_allocation(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note_allocation(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        note_release(layout.size());
        // SAFETY: `pointer` was allocated by `System` with `layout` (every allocation goes through us).
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !note_allocation(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        if new_size < layout.size() {
            note_release(layout.size() - new_size);
        }
        // SAFETY: as for dealloc, with the caller's new size.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// What one parse of a hostile input cost.
struct Measured {
    peak_bytes: i64,
    outcome: Outcome,
}

enum Outcome {
    Parsed,
    Refused,
    /// A parser panicked (caught, and reported by `parse_document` as a damaged file).
    Panicked,
}

fn measure(extension: &str, bytes: &[u8]) -> Measured {
    MEASURING.with(|measuring| measuring.set(true));
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    // The parser itself, to tell panics apart, under the same budget scope as `parse_document`.
    let scope = budget::Scope::new(budget::Limits::for_input(bytes.len()));
    let raw = std::panic::catch_unwind(|| parse_as(extension, bytes));
    drop(scope);
    let outcome = match raw {
        Err(_) => Outcome::Panicked,
        Ok(_) => match parse_document(&format!("fuzz.{extension}"), bytes) {
            Ok(elements) => {
                let (produced_bytes, produced_lines) = budget::measure(&elements);
                let limits = budget::Limits::for_input(bytes.len());
                assert!(
                    produced_bytes <= limits.bytes && produced_lines <= limits.lines,
                    ".{extension}: {produced_bytes} bytes / {produced_lines} lines over {limits:?}"
                );
                Outcome::Parsed
            }
            Err(_) => Outcome::Refused,
        },
    };
    let peak_bytes = PEAK.with(Cell::get) - start;
    MEASURING.with(|measuring| measuring.set(false));
    Measured { peak_bytes, outcome }
}

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 { 0 } else { (self.next() % bound as u64) as usize }
    }
}

const HUGE_NUMBERS: [&[u8]; 8] =
    [b"1048576", b"16384", b"4294967295", b"2147483648", b"-1", b"99999999999999999999", b"0", b"65535"];

/// One to eight byte-level mutations of `bytes`.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let index = at.min(bytes.len() - 1);
                bytes[index] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let index = at.min(bytes.len() - 1);
                bytes[index] = [0u8, 0xff, 0x7f, 0x80, b'<', b'>', b'"', b'{'][rng.below(8)];
            }
            2 => {
                let inserted: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, inserted);
            }
            3 if at < bytes.len() => {
                let end = (at + 1 + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 if at < bytes.len() => {
                // Repetition is what amplification bugs feed on.
                let end = (at + 1 + rng.below(256)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                for _ in 0..1 + rng.below(32) {
                    bytes.splice(at..at, copy.iter().copied());
                }
            }
            5 => {
                // A number, where one was: sizes, counts, repeats, offsets.
                let digits = bytes.iter().skip(at).position(u8::is_ascii_digit).map(|offset| at + offset);
                if let Some(start) = digits {
                    let end = bytes[start..]
                        .iter()
                        .position(|byte| !byte.is_ascii_digit())
                        .map_or(bytes.len(), |n| start + n);
                    bytes.splice(start..end, HUGE_NUMBERS[rng.below(HUGE_NUMBERS.len())].iter().copied());
                }
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Mutates one member of a ZIP container (or the container's raw bytes, now and then), re-zipped stored.
fn mutate_zip(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(original)) else {
        let mut bytes = original.to_vec();
        mutate_bytes(rng, &mut bytes);
        return bytes;
    };
    if rng.below(5) == 0 {
        let mut bytes = original.to_vec();
        mutate_bytes(rng, &mut bytes);
        return bytes;
    }
    let victim = rng.below(archive.len());
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for index in 0..archive.len() {
        let Ok(mut member) = archive.by_index(index) else { continue };
        let name = member.name().map(|name| name.into_owned()).unwrap_or_default();
        let mut content = Vec::new();
        if member.by_ref().take(8 << 20).read_to_end(&mut content).is_err() {
            continue;
        }
        drop(member);
        if index == victim {
            mutate_bytes(rng, &mut content);
        }
        if writer.start_file(name, options).is_err() || writer.write_all(&content).is_err() {
            return original.to_vec();
        }
    }
    writer.finish().map(Cursor::into_inner).unwrap_or_else(|_| original.to_vec())
}

fn seeds(extension: &str) -> Vec<Vec<u8>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats");
    let from_fixtures: Vec<Vec<u8>> = std::fs::read_dir(&fixtures)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|found| found == extension))
                .filter_map(|path| std::fs::read(path).ok())
                .collect()
        })
        .unwrap_or_default();
    let samples: &[&[u8]] = match extension {
        "json" => &[br#"{"product":{"name":"Zorblax","tags":["a","b"],"weight":12.5,"ok":true,"none":null}}"#],
        "csv" => &[b"name,note\nZorblax,\"heavy, 12 kg\"\nQuib,\"said \"\"hi\"\"\"\n"],
        "tsv" => &[b"city\tmascot\nBrindle\tthe copper heron\n"],
        "md" => &[b"# Guide\n\nIntro.\n\n## Install\n\n```\n# not a heading\n```\n\nRun it.\n"],
        "html" => &[b"<html><head><style>p{}</style></head><body><h1>T</h1><p>Hi &amp; bye</p><h2>S</h2><div>x</div></body></html>"],
        "xml" => &[b"<?xml version=\"1.0\"?><root><item id=\"1\">Zorblax &lt;9000&gt;</item></root>"],
        "txt" => &[b"First paragraph.\n\nSecond paragraph with \xc3\xa9.\r\n\r\nThird."],
        _ => &[],
    };
    from_fixtures.into_iter().chain(samples.iter().map(|sample| sample.to_vec())).collect()
}

fn fuzz_seconds() -> u64 {
    std::env::var("NEXENT_FUZZ_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(2)
}

fn fuzz(extension: &str) {
    let seeds = seeds(extension);
    assert!(!seeds.is_empty(), "no seed for .{extension}");
    let seed: u64 = std::env::var("NEXENT_FUZZ_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(0x5eed_0015);
    let zipped = matches!(extension, "docx" | "pptx" | "xlsx" | "ods" | "odt" | "epub");
    // Panics are counted, not printed: the default hook symbolises a backtrace of this debug binary, which
    // allocates some 230 MB on the parsing thread and would be measured as the parser's.
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs(fuzz_seconds());
    let (mut inputs, mut parsed, mut refused, mut panicked, mut over_cap, mut worst) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0i64);
    while Instant::now() < deadline {
        // Each input depends on the seed and its number only, so a failure can be replayed.
        let mixed = inputs.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = Rng((seed ^ mixed) | 1);
        let original = &seeds[rng.below(seeds.len())];
        let input = if zipped {
            mutate_zip(&mut rng, original)
        } else {
            let mut bytes = original.clone();
            mutate_bytes(&mut rng, &mut bytes);
            bytes
        };
        inputs += 1;
        // To replay an abort: the input about to be parsed is written where NEXENT_FUZZ_DUMP says.
        if let Ok(dump) = std::env::var("NEXENT_FUZZ_DUMP") {
            let _ = std::fs::write(dump, &input);
        }
        let measured = measure(extension, &input);
        worst = worst.max(measured.peak_bytes);
        if measured.peak_bytes > MAX_PEAK_BYTES {
            over_cap += 1;
            eprintln!("fuzz .{extension}: input {inputs} (seed {seed}) held {} MiB", measured.peak_bytes >> 20);
        }
        match measured.outcome {
            Outcome::Parsed => parsed += 1,
            Outcome::Refused => refused += 1,
            Outcome::Panicked => panicked += 1,
        }
    }
    println!(
        "fuzz .{extension}: {inputs} inputs in {} s (seed {seed}): {parsed} parsed, {refused} refused with a reason, \
         {panicked} parser panics caught, {over_cap} over the {} MiB allocation cap, largest peak {:.1} MiB",
        fuzz_seconds(),
        MAX_PEAK_BYTES >> 20,
        worst as f64 / f64::from(1 << 20)
    );
    assert_eq!(over_cap, 0, ".{extension}: parses allocated more than the cap");
}

macro_rules! fuzz_tests {
    ($($name:ident => $extension:literal),* $(,)?) => {
        $(#[test] fn $name() { fuzz($extension); })*
    };
}

fuzz_tests! {
    fuzz_pdf => "pdf", fuzz_docx => "docx", fuzz_pptx => "pptx", fuzz_odt => "odt", fuzz_xlsx => "xlsx",
    fuzz_xls => "xls", fuzz_ods => "ods", fuzz_eml => "eml", fuzz_epub => "epub", fuzz_rtf => "rtf",
    fuzz_json => "json", fuzz_csv => "csv", fuzz_tsv => "tsv", fuzz_md => "md", fuzz_html => "html",
    fuzz_xml => "xml", fuzz_txt => "txt",
}

#[test]
fn the_counting_allocator_sees_a_parse_allocate() {
    let measured = measure("txt", &vec![b'a'; 4 << 20]);
    assert!(matches!(measured.outcome, Outcome::Parsed));
    assert!(measured.peak_bytes >= 4 << 20, "{}", measured.peak_bytes);
}
