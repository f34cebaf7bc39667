//! Helpers shared by the fuzz targets in `fuzz_targets/`: a blocking executor for the stores'
//! futures, an independent implementation of the checkpoint envelope (from
//! `docs/design/state-format.md`), and the event-file differential check.
//!
//! Every target asserts properties of its decoder, not only that it does not panic; the
//! properties are listed in `docs/ci.md` and at the top of each target.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use varpulis_core::{Event, EventTime};
use varpulis_engine::{EventFileReader, EventFormat, ReadError, SourcePosition};

/// Runs a future to completion on this thread. The stores used here (memory store, encrypted
/// wrapper outside a tokio runtime) never wait on I/O, so this only spins if a future is
/// pending on a lock, which a single-threaded target never contends.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// crc32c (Castagnoli, reflected polynomial 0x82F63B78), written from the definition rather
/// than with the crate the codec uses, so the envelope checks are independent of it.
pub fn crc32c(pieces: &[&[u8]]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for piece in pieces {
        for &b in *piece {
            crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

/// Kind byte of a checkpoint manifest envelope.
pub const KIND_MANIFEST: u8 = 1;
/// Kind byte of a checkpoint part envelope.
pub const KIND_PART: u8 = 2;

/// A format-version-1 checkpoint envelope around `payload`, built from the spec.
pub fn envelope(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + payload.len());
    out.extend_from_slice(b"VPCK");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.push(1);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c(&[&out[..16], payload]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Whether `blob` is a well-formed envelope of `kind` according to the spec.
pub fn envelope_is_valid(kind: u8, blob: &[u8]) -> bool {
    blob.len() >= 20
        && blob[..4] == *b"VPCK"
        && blob[4..6] == 1u16.to_le_bytes()
        && blob[6] == 1
        && blob[7] == kind
        && u64::from_le_bytes(blob[8..16].try_into().unwrap()) == (blob.len() - 20) as u64
        && u32::from_le_bytes(blob[16..20].try_into().unwrap())
            == crc32c(&[&blob[..16], &blob[20..]])
}

/// A file of this process in a RAM-backed directory when there is one: the readers under test
/// only read files.
pub fn scratch_file(extension: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("varpulis-fuzz-{}.{extension}", std::process::id()))
}

/// What one line of an event file parses to: `Ok(None)` for a blank or comment line.
pub type LineParser = fn(&str, EventTime) -> Result<Option<Event>, (u64, String)>;

/// One step of reading: an event with the position after it, or the error that stopped.
#[derive(Debug)]
pub enum Step {
    /// An event and the reader's position after it.
    Event(Event, SourcePosition),
    /// The line and column of the error (the message is free text).
    Error(u64, u64),
}

/// Reads `path` to its end or first error, starting at `resume`.
pub fn read_all(
    path: &std::path::Path,
    format: EventFormat,
    resume: Option<SourcePosition>,
) -> Vec<Step> {
    let mut reader = match EventFileReader::open_as(path, format, resume) {
        Ok(r) => r,
        Err(e) => panic!("opening a readable file failed: {e}"),
    };
    let mut out = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Some(event)) => out.push(Step::Event(event, reader.position())),
            Ok(None) => return out,
            Err(ReadError { line, column, .. }) => {
                out.push(Step::Error(line, column));
                return out;
            }
        }
    }
}

/// A UTF-8 byte-order mark.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// What reading `data` must give according to the reader's documentation: lines split after
/// `\n`, invalid UTF-8 an error at its first bad byte, `\n`/`\r` trimmed, each line given to
/// `parse` with the time of the previous event, positions just past each event's line.
///
/// The model also covers the byte-order mark (added to the readers after this model was first
/// written): one UTF-8 BOM at the very start of the file is not part of line 1, for decoding as
/// for parsing, so line 1's columns (an invalid UTF-8 byte's too) count from after it, while
/// the position after line 1 still counts its bytes. A BOM anywhere else, the start of a later
/// line or a second one at the start of the file included, is given to `parse` like any other
/// text. Not modelled, because no input reaches them: the 16 MiB line cap (`-max_len` is at most
/// 4096; a unit test in `source.rs` covers it) and non-regular inputs (the harness writes a
/// regular file).
pub fn expected_steps(data: &[u8], parse: LineParser) -> Vec<Step> {
    let mut out = Vec::new();
    let mut pos = SourcePosition::default();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (raw, tail) = rest.split_at(n);
        rest = tail;
        let line_no = pos.line + 1;
        let raw = if pos.offset == 0 {
            raw.strip_prefix(BOM).unwrap_or(raw)
        } else {
            raw
        };
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                out.push(Step::Error(line_no, e.valid_up_to() as u64 + 1));
                return out;
            }
        };
        let text = text.trim_end_matches(['\n', '\r']);
        match parse(text, pos.last_time_ms) {
            Err((column, _)) => {
                out.push(Step::Error(line_no, column));
                return out;
            }
            Ok(parsed) => {
                pos.offset += n as u64;
                pos.line = line_no;
                if let Some(event) = parsed {
                    pos.last_time_ms = event.timestamp_ms();
                    out.push(Step::Event(event, pos));
                }
            }
        }
    }
    out
}

fn same(a: &[Step], b: &[Step]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Step::Event(e1, p1), Step::Event(e2, p2)) => e1 == e2 && p1 == p2,
            (Step::Error(l1, c1), Step::Error(l2, c2)) => l1 == l2 && c1 == c2,
            _ => false,
        })
}

/// The event-file reader property: reading `data` from a file gives exactly the events,
/// positions and first error that parsing its lines one by one gives, and resuming at the
/// position after any event gives exactly the rest.
pub fn check_event_file(data: &[u8], format: EventFormat, parse: LineParser, evt: bool) {
    let path = scratch_file(if evt { "evt" } else { "jsonl" });
    {
        let mut file = std::fs::File::create(&path).expect("scratch file");
        file.write_all(data).expect("write scratch file");
    }
    let got = read_all(&path, format, None);
    let want = expected_steps(data, parse);
    assert!(same(&got, &want), "reader {got:?}\nline by line {want:?}");
    for step in &got {
        if let Step::Event(_, p) = step {
            assert!(p.offset <= data.len() as u64 && p.line >= 1, "{p:?}");
        }
    }
    // Resume after the middle event (one resume per input keeps the target fast).
    let events: Vec<usize> = (0..got.len())
        .filter(|&i| matches!(got[i], Step::Event(..)))
        .collect();
    if let Some(&i) = events.get(events.len() / 2) {
        let Step::Event(_, at) = got[i] else {
            unreachable!()
        };
        let rest = read_all(&path, format, Some(at));
        assert!(
            same(&rest, &got[i + 1..]),
            "resumed at {at:?}: {rest:?}\nexpected {:?}",
            &got[i + 1..]
        );
    }
    // Not left behind in /dev/shm (a failing assertion above keeps it for inspection).
    let _ = std::fs::remove_file(&path);
}
