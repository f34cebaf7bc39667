//! The runner over in-memory and fault-injecting stores, on a manual clock: a crash or a
//! failure at every store operation, then a restart, gives byte for byte the output of an
//! uninterrupted run. Each case runs in milliseconds (no process, no disk store).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use varpulis_checkpoint::{CheckpointError, CheckpointEvery, CheckpointManager};
use varpulis_engine::clock::ManualClock;
use varpulis_engine::{CheckpointTaken, Engine, NoObserver, RunConfig, RunError, RunObserver};
use varpulis_store::faults::{CrashStore, FailMode, FailPlan, FailingStore};
use varpulis_store::{Capabilities, Key, MemoryStore, StateStore, StoreError, WriteBatch};

const PROGRAM: &str = "event Reading: zone: str, v: float
stream Stats = Reading
    .partition_by(zone)
    .window(10s)
    .aggregate(n: count(), total: sum(v))
";

/// 60 readings over 3 zones, one a second: windows close every 10 s.
fn input(dir: &Path) -> PathBuf {
    let path = dir.join("in.jsonl");
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&format!(
            "{{\"event_type\":\"Reading\",\"timestamp\":{},\"fields\":{{\"zone\":\"z{}\",\"v\":{i}.5}}}}\n",
            i * 1000,
            i % 3
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn engine() -> Engine {
    Engine::new(varpulis_vpl::parse_program(PROGRAM).unwrap()).unwrap()
}

fn config(dir: &Path, every: CheckpointEvery) -> RunConfig {
    let mut config = RunConfig::new(input(dir));
    config.output = Some(dir.join("out.jsonl"));
    config.checkpoint = config.checkpoint.with_every(every);
    config.flush_at_end = true;
    config
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// One run, as one process would do it (a fresh engine).
fn run_once(
    config: &RunConfig,
    store: Arc<dyn StateStore>,
    clock: &ManualClock,
    observer: &mut dyn RunObserver,
    shutdown: &AtomicBool,
) -> Result<varpulis_engine::RunReport, RunError> {
    block_on(varpulis_engine::run(
        &mut engine(),
        config,
        Some(store),
        shutdown,
        clock,
        observer,
    ))
}

/// A run without observer or shutdown request.
fn run_plain(
    config: &RunConfig,
    store: Arc<dyn StateStore>,
    clock: &ManualClock,
) -> Result<varpulis_engine::RunReport, RunError> {
    run_once(
        config,
        store,
        clock,
        &mut NoObserver,
        &AtomicBool::new(false),
    )
}

/// Runs again, as the next process would, and asserts the output is `expected` exactly.
fn assert_rerun_completes(
    config: &RunConfig,
    store: Arc<dyn StateStore>,
    clock: &ManualClock,
    expected: &[u8],
    after: &str,
) {
    run_plain(config, store, clock).unwrap_or_else(|e| panic!("rerun after {after}: {e}"));
    let got = std::fs::read(config.output.as_ref().unwrap()).unwrap();
    assert!(got == expected, "{after}: output differs");
}

/// The output of an uninterrupted run, and the store operations it took.
fn reference(every: CheckpointEvery) -> (Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), every);
    let store = Arc::new(FailingStore::new(MemoryStore::new()));
    let report = run_once(
        &config,
        store.clone(),
        &ManualClock::new(0),
        &mut NoObserver,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(report.checkpoints >= 5, "{report:?}");
    (
        std::fs::read(config.output.as_ref().unwrap()).unwrap(),
        store.ops(),
    )
}

#[test]
fn a_crash_at_every_store_operation_then_a_restart_gives_the_uninterrupted_output() {
    let every = CheckpointEvery::Events(7);
    let (expected, ops) = reference(every);
    for n in 0..=ops {
        for power_loss in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), every);
            let store = CrashStore::new(MemoryStore::new());
            store.crash_after(n);
            let clock = ManualClock::new(0);
            let first = run_plain(&config, Arc::new(store.clone()), &clock);
            // A crash in the last retention is logged, not an error: the run may succeed.
            if let Err(e) = &first {
                assert!(store.crashed(), "crash at {n}: {e}");
            }
            if power_loss {
                block_on(store.power_loss(|_| true)).unwrap();
            } else {
                store.restart();
            }
            let after = format!("a crash at operation {n} (power loss: {power_loss})");
            assert_rerun_completes(&config, Arc::new(store.clone()), &clock, &expected, &after);
        }
    }
}

#[test]
fn a_failed_store_operation_fails_the_run_and_the_rerun_completes_it_exactly_once() {
    let every = CheckpointEvery::Events(7);
    let (expected, ops) = reference(every);
    let mut failed_runs = 0;
    for n in 0..ops {
        for mode in [FailMode::Before, FailMode::After] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), every);
            let store = Arc::new(FailingStore::new(MemoryStore::new()));
            store.set_plan(FailPlan::Nth(n), mode);
            let clock = ManualClock::new(0);
            // Retention failures are logged, not errors: the run may succeed.
            if run_plain(&config, store.clone(), &clock).is_err() {
                failed_runs += 1;
            }
            store.set_plan(FailPlan::Never, FailMode::Before);
            let after = format!("failing operation {n} ({mode:?})");
            assert_rerun_completes(&config, store.clone(), &clock, &expected, &after);
        }
    }
    // Injected failures do fail runs (about half here: retention's are logged and survived),
    // so the reruns above recovered from real failures.
    assert!(failed_runs > 0, "none of {} runs failed", 2 * ops);
}

#[test]
fn interval_checkpoints_follow_the_injected_clock_and_durations_are_measured_on_it() {
    let dir = tempfile::tempdir().unwrap();
    // 60 events: the schedule reads the clock at event 64 only, so an interval schedule
    // checkpoints at the start (new output) and at the end, whatever the interval.
    let config = config(
        dir.path(),
        CheckpointEvery::Interval(Duration::from_millis(10)),
    );
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    // Every reading moves the clock 5 ms: each checkpoint takes 5 ms by this clock.
    let clock = ManualClock::new(1_700_000_000_000).with_tick(Duration::from_millis(5));
    let report = run_once(
        &config,
        store,
        &clock,
        &mut NoObserver,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.checkpoints, 2, "{report:?}");
    assert_eq!(report.checkpoint_time, Duration::from_millis(10));
    assert_eq!(report.max_checkpoint_time, Duration::from_millis(5));

    // A longer input: 64 events between clock readings, 5 ms a reading, 10 ms interval.
    let long = dir.path().join("long.jsonl");
    let line = std::fs::read_to_string(&config.events).unwrap();
    let first = line.lines().next().unwrap();
    std::fs::write(&long, format!("{first}\n").repeat(1_000)).unwrap();
    let mut config = config.clone();
    config.events = long;
    config.output = Some(dir.path().join("long-out.jsonl"));
    // Each count starts the output over with a fresh store.
    config.overwrite_output = true;
    let count = || {
        let clock = ManualClock::new(0).with_tick(Duration::from_millis(5));
        run_once(
            &config,
            Arc::new(MemoryStore::new()),
            &clock,
            &mut NoObserver,
            &AtomicBool::new(false),
        )
        .unwrap()
        .checkpoints
    };
    // Start (t=15 after the schedule's and the checkpoint's readings); event 64 reads 20
    // (5 ms: not due), event 128 reads 25 (10 ms: due) and the checkpoint ends at 35; so one
    // every 128 events: 7 up to event 896, plus the first and the final one.
    assert_eq!(count(), 9);
    assert_eq!(count(), 9, "deterministic");
}

/// Sets the shutdown flag after the `n`th checkpoint.
struct StopAfter {
    n: u64,
    seen: u64,
    flag: Arc<AtomicBool>,
}

impl RunObserver for StopAfter {
    fn checkpointed(&mut self, _taken: &CheckpointTaken) {
        self.seen += 1;
        if self.seen == self.n {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

#[test]
fn checkpoint_on_shutdown_decides_whether_a_stopped_run_takes_a_final_checkpoint() {
    let every = CheckpointEvery::Events(7);
    let (expected, _) = reference(every);
    for on_shutdown in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), every);
        config.checkpoint.checkpoint_on_shutdown = on_shutdown;
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let flag = Arc::new(AtomicBool::new(false));
        let mut stop = StopAfter {
            n: 3,
            seen: 0,
            flag: flag.clone(),
        };
        let clock = ManualClock::new(0);
        let report = run_once(&config, store.clone(), &clock, &mut stop, &flag).unwrap();
        assert!(report.interrupted);
        // The initial checkpoint and two scheduled ones: the flag is seen before the next
        // event, then the final checkpoint is taken only if asked for.
        assert_eq!(report.checkpoints, if on_shutdown { 4 } else { 3 });
        assert_eq!(report.events_read, 14);
        run_once(
            &config,
            store,
            &clock,
            &mut NoObserver,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(std::fs::read(config.output.as_ref().unwrap()).unwrap() == expected);
    }
}

#[test]
fn a_malformed_resume_position_is_refused_not_read_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), CheckpointEvery::Events(7));
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(0);
    run_once(
        &config,
        store.clone(),
        &clock,
        &mut NoObserver,
        &AtomicBool::new(false),
    )
    .unwrap();
    // A newer checkpoint whose line number does not parse.
    block_on(async {
        let manager = CheckpointManager::new(store.clone(), config.checkpoint.clone()).unwrap();
        let mut cp = manager.recover().await.unwrap().checkpoint.unwrap();
        cp.metadata
            .insert("input_line".to_owned(), "sixty".to_owned());
        manager.checkpoint(&cp).await.unwrap();
    });
    let before = std::fs::read(config.output.as_ref().unwrap()).unwrap();
    let err = run_once(
        &config,
        store,
        &clock,
        &mut NoObserver,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::BadCheckpoint { .. }), "{err}");
    assert!(
        err.to_string().contains("\"input_line\" is \"sixty\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read(config.output.as_ref().unwrap()).unwrap(),
        before,
        "nothing was cut or written"
    );
}

// Checkpoints in flight: the commit runs beside the loop, which goes on processing.

/// A store whose every operation first yields to the runtime once. On the tests'
/// current-thread runtime a commit then goes on only while the loop waits for it (at the next
/// checkpoint, or at the end): the loop runs ahead of every scheduled commit, deterministically.
struct YieldingStore<S>(S);

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: StateStore> StateStore for YieldingStore<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

#[test]
fn commits_behind_the_loop_make_each_checkpoint_wait_for_the_last_and_change_no_output() {
    let every = CheckpointEvery::Events(7);
    let (expected, _) = reference(every);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), every);
    let store = Arc::new(YieldingStore(MemoryStore::new()));
    let report = run_plain(&config, store, &ManualClock::new(0)).unwrap();
    // Every checkpoint but the new output's (waited for) and the first scheduled one (after
    // it) found the previous one still committing, the final one included.
    assert!(report.checkpoints >= 5, "{report:?}");
    assert_eq!(
        report.checkpoints_waited,
        report.checkpoints - 2,
        "{report:?}"
    );
    assert!(std::fs::read(config.output.as_ref().unwrap()).unwrap() == expected);
}

#[test]
fn commits_behind_the_loop_survive_a_crash_at_every_store_operation_with_the_same_output() {
    let every = CheckpointEvery::Events(7);
    // The same commits, so the same operations, whether they run behind the loop or not.
    let (expected, ops) = reference(every);
    for n in 0..=ops {
        for power_loss in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), every);
            let store = CrashStore::new(MemoryStore::new());
            store.crash_after(n);
            let clock = ManualClock::new(0);
            let first = run_plain(&config, Arc::new(YieldingStore(store.clone())), &clock);
            if let Err(e) = &first {
                assert!(store.crashed(), "crash at {n}: {e}");
            }
            if power_loss {
                block_on(store.power_loss(|_| true)).unwrap();
            } else {
                store.restart();
            }
            let after =
                format!("a crash at operation {n} behind the loop (power loss: {power_loss})");
            let rerun = Arc::new(YieldingStore(store.clone()));
            assert_rerun_completes(&config, rerun, &clock, &expected, &after);
        }
    }
}

#[test]
fn commits_behind_the_loop_fail_the_run_at_a_failed_store_operation_and_the_rerun_completes() {
    let every = CheckpointEvery::Events(7);
    let (expected, ops) = reference(every);
    let mut failed_runs = 0;
    for n in 0..ops {
        for mode in [FailMode::Before, FailMode::After] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), every);
            let failing = Arc::new(FailingStore::new(MemoryStore::new()));
            failing.set_plan(FailPlan::Nth(n), mode);
            let store = Arc::new(YieldingStore(failing.clone()));
            let clock = ManualClock::new(0);
            if run_plain(&config, store.clone(), &clock).is_err() {
                failed_runs += 1;
            }
            failing.set_plan(FailPlan::Never, FailMode::Before);
            let after = format!("failing operation {n} ({mode:?}) behind the loop");
            assert_rerun_completes(&config, store, &clock, &expected, &after);
        }
    }
    assert!(failed_runs > 0, "none of {} runs failed", 2 * ops);
}

/// Makes every `write_batch` fail once the first checkpoint has committed.
struct FailAfterFirst(Arc<FailingStore<MemoryStore>>);

impl RunObserver for FailAfterFirst {
    fn checkpointed(&mut self, _taken: &CheckpointTaken) {
        self.0
            .set_plan(FailPlan::Every("write_batch"), FailMode::Before);
    }
}

/// The tests' current-thread runtime, and the binary's multi-thread one (where the commit
/// runs on a thread of the blocking pool).
fn runtimes() -> [tokio::runtime::Runtime; 2] {
    [
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap(),
    ]
}

#[test]
fn a_failed_background_commit_fails_the_run_with_the_stores_error_on_either_runtime() {
    let every = CheckpointEvery::Events(7);
    let (expected, _) = reference(every);
    for rt in runtimes() {
        for behind in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), every);
            let failing = Arc::new(FailingStore::new(MemoryStore::new()));
            let store: Arc<dyn StateStore> = if behind {
                Arc::new(YieldingStore(failing.clone()))
            } else {
                failing.clone()
            };
            let err = rt
                .block_on(varpulis_engine::run(
                    &mut engine(),
                    &config,
                    Some(store.clone()),
                    &AtomicBool::new(false),
                    &ManualClock::new(0),
                    &mut FailAfterFirst(failing.clone()),
                ))
                .unwrap_err();
            // What a synchronous checkpoint returned: the store's error, unchanged.
            assert!(
                matches!(
                    &err,
                    RunError::Checkpoint(CheckpointError::Store(StoreError::Unavailable { reason }))
                        if reason.contains("injected failure")
                ),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "state store error");
            failing.set_plan(FailPlan::Never, FailMode::Before);
            let clock = ManualClock::new(0);
            let after = format!(
                "a failed background commit ({:?})",
                rt.handle().runtime_flavor()
            );
            assert_rerun_completes(&config, store, &clock, &expected, &after);
        }
    }
}

/// A store whose writes wait while its gate is shut.
struct GatedStore {
    inner: MemoryStore,
    open: tokio::sync::watch::Sender<bool>,
}

impl GatedStore {
    /// Waits for the gate to open; a loop that waits for the commit would never open it, so
    /// after a minute that is an error, not a hang.
    async fn pass(&self) -> Result<(), StoreError> {
        let mut open = self.open.subscribe();
        let opened = open.wait_for(|open| *open);
        match tokio::time::timeout(Duration::from_secs(60), opened).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable {
                reason: "the gate never opened: the loop stopped while a checkpoint committed"
                    .to_owned(),
            }),
        }
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl StateStore for GatedStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.pass().await?;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.pass().await?;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.pass().await?;
        self.inner.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.pass().await?;
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// Shuts the store's gate once the first checkpoint (the new output's, waited for) has
/// committed, opens it at the first progress report, and logs both kinds of callback.
struct Gatekeeper {
    store: Arc<GatedStore>,
    log: Vec<String>,
}

impl RunObserver for Gatekeeper {
    fn progress(&mut self, position: varpulis_engine::SourcePosition, _file_len: u64) {
        self.log.push(format!("progress at line {}", position.line));
        self.store.open.send_replace(true);
    }
    fn checkpointed(&mut self, taken: &CheckpointTaken) {
        if self.log.is_empty() {
            self.store.open.send_replace(false);
        }
        assert!(
            taken.waited <= taken.took && taken.took <= taken.total,
            "{taken:?}"
        );
        self.log
            .push(format!("checkpoint of {} events", taken.events_processed));
    }
}

#[test]
fn the_loop_goes_on_processing_while_a_checkpoint_commits_on_either_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CheckpointEvery::Events(3_000));
    // 10,000 readings: progress is reported every 4,096 events.
    let first = std::fs::read_to_string(&config.events).unwrap();
    let lines: Vec<&str> = first.lines().collect();
    let text: String = (0..10_000)
        .map(|i| format!("{}\n", lines[i % lines.len()]))
        .collect();
    config.events = dir.path().join("many.jsonl");
    std::fs::write(&config.events, text).unwrap();
    config.flush_at_end = false;
    for rt in runtimes() {
        let flavor = rt.handle().runtime_flavor();
        config.output = Some(dir.path().join(format!("out-{flavor:?}.jsonl")));
        let (open, _) = tokio::sync::watch::channel(true);
        let store = Arc::new(GatedStore {
            inner: MemoryStore::new(),
            open,
        });
        let mut keeper = Gatekeeper {
            store: store.clone(),
            log: Vec::new(),
        };
        let report = rt
            .block_on(varpulis_engine::run(
                &mut engine(),
                &config,
                Some(store),
                &AtomicBool::new(false),
                &ManualClock::new(0),
                &mut keeper,
            ))
            .unwrap();
        assert_eq!(report.events_read, 10_000);
        assert_eq!(report.checkpoints, 5, "{:?}", keeper.log);
        // The checkpoint of 3,000 events could not commit before the loop had read 4,096.
        let log = &keeper.log;
        let at = |what: &str| log.iter().position(|l| l == what);
        assert_eq!(at("checkpoint of 0 events"), Some(0), "{log:?}");
        let progress = at("progress at line 4096").expect("progress reported");
        let second = at("checkpoint of 3000 events").expect("second checkpoint");
        assert!(progress < second, "{flavor:?}: {log:?}");
        assert!(
            log.last()
                .is_some_and(|l| l == "checkpoint of 10000 events"),
            "{log:?}"
        );
    }
}

#[test]
fn the_checkpoint_committed_in_the_background_is_the_engines_sorted_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CheckpointEvery::Events(7));
    config.flush_at_end = false;
    // 50 partitions: their hash order is not their key order.
    let text: String = (0..200)
        .map(|i| {
            format!(
                "{{\"event_type\":\"Reading\",\"timestamp\":{},\"fields\":{{\"zone\":\"z{}\",\"v\":{i}.5}}}}\n",
                i * 10,
                i % 50
            )
        })
        .collect();
    std::fs::write(&config.events, text).unwrap();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let mut engine = engine();
    block_on(varpulis_engine::run(
        &mut engine,
        &config,
        Some(store.clone()),
        &AtomicBool::new(false),
        &ManualClock::new(0),
        &mut NoObserver,
    ))
    .unwrap();
    let manager = CheckpointManager::new(store, config.checkpoint.clone()).unwrap();
    let cp = block_on(manager.recover()).unwrap().checkpoint.unwrap();
    let state = &cp.context_states[varpulis_engine::CONTEXT];
    assert_eq!(*state, engine.create_checkpoint());
    let keys: Vec<_> = state.window_states["Stats"]
        .partitions
        .iter()
        .map(|p| p.key.clone())
        .collect();
    assert_eq!(keys.len(), 50);
    assert!(keys.is_sorted(), "{keys:?}");
}
