//! Event-file readers alone: `EventFileReader` over 100,000 generated lines
//! `SensorEvent { zone: "zNN", value: F }` (100 zones), as `.evt` and as the equivalent `.jsonl`
//! (`{"event_type":"SensorEvent","timestamp":T,"fields":{"zone":"zNN","value":F}}`), from a file
//! in the page cache, against two baselines measured in the same run:
//!
//! - `lines`: the same file only split into lines (`BufReader::read_until`, the reader's own
//!   buffering), the floor any line reader pays;
//! - `reference`: the reader's loop before the line scanners (split, UTF-8 check, then the
//!   reference line parser `varpulis_engine::parse_evt` — the VPL program lexer and parser —
//!   or `parse_json_line`, the `serde_json` visitor), i.e. the old path, kept as the reference
//!   the scanners are tested against.
//!
//! Throughput is in bytes of the file; events/s is 100,000 / time.
//!
//! ```sh
//! cargo bench -p varpulis-benches --no-default-features --bench readers -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `VARPULIS_READERS_ONCE=<format>/<path>` (e.g. `evt/reader`) reads the file once through one
//! path and exits, for instruction counts:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='readers::once_*' ...`.

#![allow(missing_docs)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group};
use varpulis_benches::Rng;
use varpulis_core::EventTime;
use varpulis_engine::source::parse_json_line;
use varpulis_engine::{EventFileReader, parse_evt};

const LINES: usize = 100_000;
const ZONES: u64 = 100;

/// The workload in both formats, line for line the same events (`.evt` lines carry no `@`
/// time, as in the issue's comparison; the JSONL lines carry increasing timestamps).
fn generate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let evt = dir.join("sensors.evt");
    let jsonl = dir.join("sensors.jsonl");
    let mut e = std::io::BufWriter::new(File::create(&evt).expect("create .evt"));
    let mut j = std::io::BufWriter::new(File::create(&jsonl).expect("create .jsonl"));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t: i64 = 1_700_000_000_000;
    for _ in 0..LINES {
        let zone = rng.next_u64() % ZONES;
        // 0.0 .. 199.9, one decimal: about half above the filter's 100.0.
        let value = (rng.next_u64() % 2_000) as f64 / 10.0;
        t += (rng.next_u64() % 10) as i64;
        writeln!(
            e,
            "SensorEvent {{ zone: \"z{zone:02}\", value: {value:?} }}"
        )
        .expect("write");
        writeln!(
            j,
            "{{\"event_type\":\"SensorEvent\",\"timestamp\":{t},\"fields\":{{\"zone\":\"z{zone:02}\",\"value\":{value:?}}}}}"
        )
        .expect("write");
    }
    e.flush().expect("flush");
    j.flush().expect("flush");
    (evt, jsonl)
}

/// Splits the file into lines and nothing else; returns the line count.
#[inline(never)]
fn once_lines(path: &Path) -> usize {
    let mut r = BufReader::with_capacity(1 << 16, File::open(path).expect("open"));
    let mut buf = Vec::with_capacity(256);
    let mut n = 0;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).expect("read") == 0 {
            return n;
        }
        n += 1;
        black_box(&buf);
    }
}

type LineParser = fn(&str, EventTime) -> Result<Option<varpulis_core::Event>, (u64, String)>;

/// The reader's loop before the scanners: split, check UTF-8, parse each line with `parse`.
fn reference(path: &Path, parse: LineParser) -> usize {
    let mut r = BufReader::with_capacity(1 << 16, File::open(path).expect("open"));
    let mut buf = Vec::with_capacity(256);
    let (mut n, mut last) = (0, 0);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).expect("read") == 0 {
            return n;
        }
        let text = std::str::from_utf8(&buf).expect("UTF-8");
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(event) = parse(text, last).expect("valid line") {
            last = event.timestamp_ms();
            n += 1;
            black_box(event);
        }
    }
}

#[inline(never)]
fn once_reference_evt(path: &Path) -> usize {
    reference(path, parse_evt)
}

#[inline(never)]
fn once_reference_jsonl(path: &Path) -> usize {
    reference(path, parse_json_line)
}

/// `EventFileReader`, as the runner uses it.
#[inline(never)]
fn once_reader(path: &Path) -> usize {
    let mut r = EventFileReader::open(path, None).expect("open");
    let mut n = 0;
    while let Some(event) = r.next_event().expect("valid line") {
        n += 1;
        black_box(event);
    }
    n
}

fn readers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (evt, jsonl) = generate(dir.path());
    for (format, path, old) in [
        ("evt", &evt, once_reference_evt as fn(&Path) -> usize),
        ("jsonl", &jsonl, once_reference_jsonl),
    ] {
        let bytes = std::fs::metadata(path).expect("file").len();
        assert_eq!(once_reader(path), LINES);
        assert_eq!(old(path), LINES);
        let mut g = c.benchmark_group(format!("readers/{format}"));
        g.throughput(Throughput::Bytes(bytes)).sample_size(20);
        g.bench_function("lines", |b| b.iter(|| once_lines(path)));
        g.bench_function("reference", |b| b.iter(|| old(path)));
        g.bench_function("reader", |b| b.iter(|| once_reader(path)));
        g.finish();
    }
}

fn main() {
    if let Ok(which) = std::env::var("VARPULIS_READERS_ONCE") {
        let dir = tempfile::tempdir().expect("tempdir");
        let (evt, jsonl) = generate(dir.path());
        let n = match which.as_str() {
            "evt/lines" => once_lines(&evt),
            "evt/reference" => once_reference_evt(&evt),
            "evt/reader" => once_reader(&evt),
            "jsonl/lines" => once_lines(&jsonl),
            "jsonl/reference" => once_reference_jsonl(&jsonl),
            "jsonl/reader" => once_reader(&jsonl),
            other => {
                panic!("VARPULIS_READERS_ONCE={other}: expected evt|jsonl / lines|reference|reader")
            }
        };
        println!("{which}: {n} lines");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group!(benches, readers);
