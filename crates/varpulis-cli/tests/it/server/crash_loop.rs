//! The server's crash loop: clients send events in batches with idempotency keys to three
//! pipelines of two tenants, retrying every batch that was not acknowledged; the server is
//! SIGKILLed at seeded moments spread over the run and restarted; a consumer per pipeline
//! reads the outputs over SSE, resuming by `Last-Event-ID` across every crash. What the
//! consumers collect equals, event for event and sequence number for sequence number, what
//! they collect from an uninterrupted run.
//!
//! The default variant sends 20,000 events and kills the server 20 times;
//! `VARPULIS_CRASH_LOOP=full` sends 100,000 and kills it 25 times (see `docs/ci.md`).

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};

use super::{Flags, Server};

/// The three pipelines: (tenant index, name, program, event type).
const PIPELINES: [(usize, &str, &str); 3] = [
    (0, "big", "stream Big = Txn .where(amount > 90)"),
    (
        0,
        "zones",
        "stream ZoneStats = Reading .partition_by(zone) .window(1s) \
         .aggregate(n: count(), avg_t: avg(temperature), max_t: max(temperature))",
    ),
    (
        1,
        "sessions",
        "stream Sessions = Click .partition_by(user) .window(session: 300ms) \
         .aggregate(n: count(), total: sum(amount)) .having(n > 3)",
    ),
];

/// How big a loop is.
#[derive(Debug, Clone, Copy)]
struct Size {
    events: usize,
    batch: usize,
    kills: usize,
}

impl Size {
    fn from_env() -> Self {
        match std::env::var("VARPULIS_CRASH_LOOP").as_deref() {
            Ok("full") => Self {
                events: 100_000,
                batch: 100,
                kills: 25,
            },
            _ => Self {
                events: 20_000,
                batch: 50,
                kills: 20,
            },
        }
    }
}

/// The batches of pipeline `p`: seeded, with event times that advance and now and then step
/// back a little (late events are part of what must come out the same).
fn batches(seed: u64, p: usize, size: Size) -> Vec<Json> {
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(p as u64));
    let per_pipeline = size.events / PIPELINES.len() + usize::from(p < size.events % 3);
    let mut t: i64 = 1_700_000_000_000;
    let events: Vec<Json> = (0..per_pipeline)
        .map(|_| {
            t += rng.gen_range(0..40);
            let ts = if rng.gen_ratio(1, 50) { t - 2_000 } else { t };
            let fields = match p {
                0 => json!({ "amount": rng.gen_range(0..100) }),
                1 => json!({
                    "zone": format!("z{}", rng.gen_range(0..8)),
                    "temperature": f64::from(rng.gen_range(-1000..4000_i32)) / 100.0,
                }),
                _ => json!({
                    "user": format!("u{}", rng.gen_range(0..20)),
                    "amount": rng.gen_range(1..50),
                }),
            };
            let ty = ["Txn", "Reading", "Click"][p];
            json!({ "event_type": ty, "timestamp": ts, "fields": fields })
        })
        .collect();
    events
        .chunks(size.batch)
        .map(|chunk| json!({ "events": chunk }))
        .collect()
}

/// The address of the running server, `None` while it is down.
type Base = Arc<RwLock<Option<String>>>;

fn current(base: &Base) -> Option<String> {
    base.read().expect("base lock").clone()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// What the clients saw: acknowledgements, retries, and original answers replayed to a retry
/// of a batch that had been applied before its answer was lost.
#[derive(Debug, Default)]
struct Seen {
    acked: AtomicUsize,
    retries: AtomicUsize,
    replayed: AtomicUsize,
}

/// Sends every batch in order, each until it is acknowledged.
fn send_all(base: &Base, key: &str, pipeline: &str, batches: &[Json], seen: &Seen) {
    let client = http();
    for (i, batch) in batches.iter().enumerate() {
        let idem = format!("{pipeline}-{i}");
        let body = batch.to_string();
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > 1 {
                seen.retries.fetch_add(1, Ordering::SeqCst);
            }
            assert!(tries < 10_000, "batch {i} of {pipeline} never acknowledged");
            let Some(url) = current(base) else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let sent = client
                .post(format!("{url}/pipelines/{pipeline}/events-batch"))
                .header("x-api-key", key)
                .header("idempotency-key", &idem)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let resp = match sent {
                Ok(resp) => resp,
                // The server died under the request (or is down): not acknowledged, retry.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let replayed = resp.headers().get("idempotent-replayed").is_some();
            let Ok(text) = resp.text() else {
                continue; // the answer was cut off: not acknowledged
            };
            match status {
                200 => {
                    let answer: Json = serde_json::from_str(&text).expect("a JSON answer");
                    let n = batch["events"].as_array().expect("events").len();
                    assert_eq!(answer["accepted"], n, "{text}");
                    if replayed {
                        seen.replayed.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                // The log append failed (or a quota window): retry, as a client is told to.
                429 | 503 => std::thread::sleep(Duration::from_millis(20)),
                _ => panic!("batch {i} of {pipeline}: {status} {text}"),
            }
        }
    }
}

/// Every retained output of `pipeline`, page by page (the uninterrupted run's reference).
fn pages(server: &Server, key: &str, pipeline: &str) -> Vec<(u64, Json)> {
    let mut out: Vec<(u64, Json)> = Vec::new();
    loop {
        let next = out.last().map_or(1, |(s, _)| s + 1);
        let page = server.call(
            "GET",
            &format!("/pipelines/{pipeline}/outputs?from={next}&limit=1000"),
            None,
            super::Auth::Key(key),
        );
        assert_eq!(page.status, 200, "{page:?}");
        let page = page.json["outputs"].as_array().expect("outputs").clone();
        if page.is_empty() {
            return out;
        }
        out.extend(
            page.into_iter()
                .map(|o| (o["seq"].as_u64().expect("seq"), o["event"].clone())),
        );
    }
}

/// Reads the outputs of `pipeline` over SSE until it has `want` of them, reconnecting after
/// every crash with the last id it got.
fn consume(
    base: &Base,
    key: &str,
    pipeline: &str,
    want: usize,
    deadline: Instant,
) -> Vec<(u64, Json)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut out: Vec<(u64, Json)> = Vec::new();
    let mut reconnects = 0;
    'connect: while out.len() < want {
        assert!(
            Instant::now() < deadline,
            "{pipeline}: {} outputs of {want} before the deadline, after {reconnects} reconnects",
            out.len()
        );
        let Some(url) = current(base) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let mut req = client
            .get(format!("{url}/pipelines/{pipeline}/logs"))
            .header("x-api-key", key);
        req = match out.last() {
            Some((seq, _)) => req.header("last-event-id", seq.to_string()),
            None => req.query(&[("from", "1")]),
        };
        let Ok(mut resp) = req.send() else {
            reconnects += 1;
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        assert_eq!(resp.status().as_u16(), 200, "{pipeline}: logs");
        reconnects += 1;
        let mut text = String::new();
        let mut buf = [0u8; 8192];
        loop {
            if out.len() >= want {
                continue 'connect;
            }
            let k = match resp.read(&mut buf) {
                Ok(0) | Err(_) => continue 'connect, // the server went away (or a timeout)
                Ok(k) => k,
            };
            text.push_str(&String::from_utf8_lossy(&buf[..k]));
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                };
                match field("event:") {
                    Some("gap") => {
                        panic!("{pipeline}: the reader fell behind the retention: {message}")
                    }
                    // It skipped outputs: read them again from the retained ones.
                    Some("lagged") => continue 'connect,
                    _ => {}
                }
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    let seq: u64 = id.parse().expect("numeric id");
                    let expected = out.last().map_or(1, |(s, _)| s + 1);
                    assert_eq!(seq, expected, "{pipeline}: outputs in sequence, each once");
                    let mut event: Json = serde_json::from_str(data).expect("JSON data");
                    // The stream carries the fields under `data`, pages under `fields`.
                    let fields = event["data"].take();
                    event = json!({
                        "event_type": event["event_type"],
                        "timestamp": event["timestamp"],
                        "fields": fields,
                    });
                    out.push((seq, event));
                }
            }
        }
    }
    out
}

/// What a run collected.
struct Outcome {
    outputs: Vec<Vec<(u64, Json)>>,
    kills: usize,
    seen: Seen,
}

/// One run: setup and clients; with `expect`, the SSE consumers (each reads as many outputs
/// as `expect` holds for its pipeline) and the kills. Without, the uninterrupted reference
/// run, whose outputs are read page by page once everything is acknowledged. Returns each
/// pipeline's outputs and the number of kills.
fn run(flags: &Flags, seed: u64, size: Size, expect: Option<&[Vec<(u64, Json)>]>) -> Outcome {
    let server = Server::start(flags);
    let tenants = [
        server.tenant("acme", Some("pro")),
        server.tenant("globex", Some("enterprise")),
    ];
    let ids: Vec<String> = PIPELINES
        .iter()
        .map(|(t, name, source)| server.pipeline(&tenants[*t].1, name, source))
        .collect();
    let work: Vec<Vec<Json>> = (0..PIPELINES.len())
        .map(|p| batches(seed, p, size))
        .collect();
    let total: usize = work.iter().map(Vec::len).sum();
    let base: Base = Arc::new(RwLock::new(Some(server.base.clone())));
    let seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    let kills = if expect.is_some() { size.kills } else { 0 };
    // Kill after these many acknowledged batches: spread over the run whatever the speed.
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x00c0_ffee);
    let mut marks: Vec<usize> = (0..kills).map(|_| rng.gen_range(1..total)).collect();
    marks.sort_unstable();
    let mut server = Some(server);
    let mut killed = 0;
    let collected = std::thread::scope(|s| {
        let consumers: Vec<_> = match expect {
            None => Vec::new(),
            Some(expect) => ids
                .iter()
                .enumerate()
                .map(|(p, id)| {
                    let key = &tenants[PIPELINES[p].0].1;
                    let (base, want) = (&base, expect[p].len());
                    s.spawn(move || consume(base, key, id, want, deadline))
                })
                .collect(),
        };
        let clients: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(p, id)| {
                let key = &tenants[PIPELINES[p].0].1;
                let (base, seen, batches) = (&base, &seen, &work[p]);
                s.spawn(move || send_all(base, key, id, batches, seen))
            })
            .collect();
        for mark in marks {
            while seen.acked.load(Ordering::SeqCst) < mark {
                assert!(Instant::now() < deadline, "the clients stalled");
                std::thread::sleep(Duration::from_millis(1));
            }
            // Land inside a request or between two, at a seeded offset.
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..3_000)));
            *base.write().expect("base lock") = None;
            server.take().expect("running").kill_9();
            killed += 1;
            let restarted = Server::start(flags);
            *base.write().expect("base lock") = Some(restarted.base.clone());
            server = Some(restarted);
        }
        for client in clients {
            client.join().expect("client");
        }
        consumers
            .into_iter()
            .map(|c| c.join().expect("consumer"))
            .collect::<Vec<_>>()
    });
    let server = server.expect("running");
    // Each event counted once, whatever was retried.
    for (p, id) in ids.iter().enumerate() {
        let key = &tenants[PIPELINES[p].0].1;
        let m = server.call(
            "GET",
            &format!("/pipelines/{id}/metrics"),
            None,
            super::Auth::Key(key),
        );
        let sent: usize = work[p]
            .iter()
            .map(|b| b["events"].as_array().expect("events").len())
            .sum();
        assert_eq!(m.json["events_in"], sent, "{}: {m:?}", PIPELINES[p].1);
    }
    let outputs = if expect.is_some() {
        collected
    } else {
        ids.iter()
            .enumerate()
            .map(|(p, id)| pages(&server, &tenants[PIPELINES[p].0].1, id))
            .collect()
    };
    Outcome {
        outputs,
        kills: killed,
        seen,
    }
}

fn crash_loop(flags: &Flags, reference: &Flags, seed: u64) {
    let size = Size::from_env();
    let expected = run(reference, seed, size, None).outputs;
    for (p, outputs) in expected.iter().enumerate() {
        assert!(
            outputs.len() > 50,
            "{} produces plenty of output: {}",
            PIPELINES[p].1,
            outputs.len()
        );
        let seqs: Vec<u64> = outputs.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=outputs.len() as u64).collect::<Vec<_>>());
    }
    let started = Instant::now();
    let Outcome {
        outputs: got,
        kills,
        seen,
    } = run(flags, seed, size, Some(&expected));
    assert!(kills >= 20, "{kills} kills");
    // The kills landed under requests: some batches were sent again.
    assert!(seen.retries.load(Ordering::SeqCst) > 0, "{seen:?}");
    for (p, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            got.len(),
            want.len(),
            "{}: outputs after {kills} kills",
            PIPELINES[p].1
        );
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{}: output after {kills} kills", PIPELINES[p].1);
        }
    }
    eprintln!(
        "server crash loop {:?}: {} events, {kills} kills, {} outputs, {seen:?}, {:?}",
        flags.store.unwrap_or("file"),
        size.events,
        expected.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
}

fn flags(dir: &std::path::Path, store: Option<&'static str>) -> Flags {
    Flags {
        store,
        extra: vec!["--checkpoint-interval".into(), "200ms".into()],
        ..Flags::dir(dir)
    }
}

#[test]
fn clients_and_sse_consumers_see_every_output_once_across_repeated_kill_9_on_the_file_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_loop(
        &flags(&dir.path().join("state"), None),
        &flags(&dir.path().join("reference"), None),
        11,
    );
}

#[cfg(feature = "persistence")]
#[test]
fn clients_and_sse_consumers_see_every_output_once_across_repeated_kill_9_on_rocksdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_loop(
        &flags(&dir.path().join("state"), Some("rocksdb")),
        &flags(&dir.path().join("reference"), Some("rocksdb")),
        12,
    );
}
