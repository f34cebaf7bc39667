//! Real crashes: a child process (this test binary, re-executed) checkpoints in a loop into a
//! `FileStore` or a `RocksDbStore`, and is killed with SIGKILL at seeded random moments. After
//! every kill, recovery must yield a complete checkpoint whose id the child reported as committed
//! (the newest one) or the one it had in flight, with exactly the state the child wrote for it.
//!
//! The child prints `ready`, then for each checkpoint `inflight <id>` before committing and
//! `committed <id>` after, flushing stdout each time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use varpulis_runtime::persistence::checkpoint::JoinCheckpoint;
use varpulis_runtime::persistence::{
    Checkpoint, CheckpointConfig, CheckpointManager, EngineCheckpoint, FileStore, RocksDbStore,
    StateStore, StoreError,
};

const CHILD_ENV: &str = "VARPULIS_CRASH_CHILD";
const ROUNDS: usize = 20;

/// The state the child writes as checkpoint `id`: eight join parts of about 1 KiB, one of which
/// changes with every id (so checkpoints share most parts and write a few new ones).
fn state_for(id: u64) -> Checkpoint {
    let mut engine = EngineCheckpoint {
        events_processed: id * 10,
        output_events_emitted: id,
        // Seed-format join parts (format version 1), as any operator state would do.
        version: 1,
        ..EngineCheckpoint::default()
    };
    for i in 0..8_u64 {
        let generation = (id + i) / 8;
        engine.join_states.insert(
            format!("j{i}"),
            JoinCheckpoint {
                buffers: BTreeMap::new(),
                expiry: vec![(generation as i64, "p".repeat(1_000), i)],
            },
        );
    }
    let mut cp = Checkpoint::new(1_700_000_000_000 + id as i64).with_context("main", engine);
    cp.metadata.insert("id".to_owned(), id.to_string());
    cp
}

fn canonical(cp: &Checkpoint) -> Vec<u8> {
    let contexts: BTreeMap<_, _> = cp.context_states.iter().collect();
    format!(
        "{:?}|{}|{contexts:?}|{:?}|{:?}",
        cp.id, cp.timestamp_ms, cp.source_offsets, cp.metadata
    )
    .into_bytes()
}

fn open_rocks(path: &Path) -> RocksDbStore {
    // The LOCK of a killed process is released by the kernel; a dropped handle's background
    // task may still hold it for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RocksDbStore::open(path) {
            Ok(store) => return store,
            Err(e) if Instant::now() < deadline => {
                let _: StoreError = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("open rocksdb at {}: {e}", path.display()),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn config() -> CheckpointConfig {
    CheckpointConfig {
        max_checkpoints: 2,
        ..CheckpointConfig::default()
    }
}

async fn child_loop<S: StateStore>(store: S) -> ! {
    let manager = CheckpointManager::new(store, config()).expect("manager");
    let recovery = manager.recover().await.expect("child recovery");
    let mut next = manager
        .list_checkpoints()
        .await
        .expect("list")
        .last()
        .map_or(1, |id| id + 1);
    let _ = recovery;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    loop {
        writeln!(out, "inflight {next}").unwrap();
        out.flush().unwrap();
        let report = manager
            .checkpoint(&state_for(next))
            .await
            .expect("checkpoint");
        assert_eq!(report.id, next, "ids are assigned in order");
        writeln!(out, "committed {next}").unwrap();
        out.flush().unwrap();
        next += 1;
    }
}

/// Not a test on its own: the body of the child process (does nothing without its env var).
#[test]
#[ignore = "child process of the real-crash tests"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, dir) = spec.split_once(':').expect("kind:dir");
    let rt = runtime();
    match kind {
        "file" => rt.block_on(child_loop(FileStore::open(dir).expect("open file store"))),
        "rocks" => rt.block_on(child_loop(open_rocks(Path::new(dir)))),
        other => panic!("unknown store kind {other}"),
    }
}

#[derive(Debug, Default)]
struct Reported {
    committed: Vec<u64>,
    inflight: Option<u64>,
}

/// Spawns the child, waits for `ready`, lets it run for `delay`, kills it, returns what it said.
fn run_child(kind: &str, dir: &Path, delay: Duration) -> Reported {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash::crash_child",
            "--nocapture",
            "--include-ignored",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{kind}:{}", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            // libtest prints "test crash::crash_child ... " without a newline before it.
            Ok(line) if line.ends_with("ready") => break,
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child never got ready ({e:?}): {lines:?}");
            }
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    lines.extend(rx.try_iter());
    let mut reported = Reported::default();
    for line in lines {
        if let Some(id) = line.strip_prefix("committed ") {
            let id: u64 = id.parse().unwrap();
            reported.committed.push(id);
            reported.inflight = None;
        } else if let Some(id) = line.strip_prefix("inflight ") {
            reported.inflight = Some(id.parse().unwrap());
        }
    }
    reported
}

async fn check_recovery<S: StateStore>(
    store: S,
    committed: &[u64],
    inflight: Option<u64>,
    round: usize,
) -> u64 {
    let manager = CheckpointManager::new(store, config()).unwrap();
    let recovery = manager.recover().await.unwrap();
    assert!(
        recovery.skipped.is_empty(),
        "round {round}: skipped {:?}",
        recovery.skipped
    );
    let newest_committed = committed.iter().max().copied();
    let Some(cp) = recovery.checkpoint else {
        assert_eq!(
            newest_committed, None,
            "round {round}: committed checkpoints vanished"
        );
        return 0;
    };
    let allowed: Vec<u64> = newest_committed.into_iter().chain(inflight).collect();
    assert!(
        allowed.contains(&cp.id),
        "round {round}: recovered {} but the child committed up to {newest_committed:?}, in flight {inflight:?}",
        cp.id
    );
    let mut expected = state_for(cp.id);
    expected.id = cp.id;
    assert!(
        canonical(&cp) == canonical(&expected),
        "round {round}: checkpoint {} is not what was written",
        cp.id
    );
    cp.id
}

fn crash_loop(kind: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut committed = Vec::new();
    let mut kills_mid_checkpoint = 0;
    let rt = runtime();
    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.gen_range(0..120));
        let reported = run_child(kind, &path, delay);
        committed.extend(&reported.committed);
        if reported.inflight.is_some() {
            kills_mid_checkpoint += 1;
        }
        let recovered = match kind {
            "file" => rt.block_on(check_recovery(
                FileStore::open(&path).unwrap(),
                &committed,
                reported.inflight,
                round,
            )),
            _ => rt.block_on(check_recovery(
                open_rocks(&path),
                &committed,
                reported.inflight,
                round,
            )),
        };
        // The next child continues after what was recovered (or after the in-flight id).
        if recovered > 0 && !committed.contains(&recovered) {
            committed.push(recovered);
        }
    }
    assert!(
        committed.len() >= ROUNDS,
        "the child committed too little: {committed:?}"
    );
    assert!(
        kills_mid_checkpoint > 0,
        "no kill landed during a checkpoint"
    );
}

#[test]
fn sigkill_at_random_moments_never_loses_a_committed_file_store_checkpoint() {
    crash_loop("file", 0xF11E);
}

#[test]
fn sigkill_at_random_moments_never_loses_a_committed_rocksdb_checkpoint() {
    crash_loop("rocks", 0x70C5);
}
