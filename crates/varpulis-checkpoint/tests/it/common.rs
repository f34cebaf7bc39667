//! Fixtures shared by the test modules: deterministic states that exercise every type, and a
//! bit-exact comparison (derived `PartialEq` says NaN != NaN, the checkpoint must not care).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use varpulis_checkpoint::{
    AccumulatorState, Checkpoint, EngineCheckpoint, ExactSumState, JoinCheckpoint, JoinCounters,
    JoinOperatorCheckpoint, PaneState, PartitionState, PatternCheckpoint, PatternCounters,
    PatternPartitionState, PatternRunState, SaseCheckpoint, SaseRunState, SourceWatermark,
    WatermarkCheckpoint, WindowCheckpoint, WindowKind, WindowSpecState,
};
use varpulis_core::{Event, Value};
use varpulis_store::{Capabilities, Key, StateStore, StoreError, WriteBatch};

/// Runs a future on a small runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Every kind of value, floats at their edges.
pub(crate) fn every_value() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(i64::MIN),
        Value::Float(f64::NAN),
        Value::Float(-f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
        Value::Float(-0.0),
        Value::Float(f64::MIN_POSITIVE / 2.0),
        Value::Str(Arc::from("caf\u{e9} \u{1f600}")),
        Value::Timestamp(1_700_000_000_000),
        Value::Duration(-5),
        Value::Array(Arc::from(vec![Value::Int(1), Value::Float(f64::NAN)])),
        Value::Map(Arc::new(BTreeMap::from([
            (Arc::from("k"), Value::Bool(false)),
            (Arc::from(""), Value::Null),
        ]))),
    ]
}

/// An event carrying every value.
pub(crate) fn event(ts: i64) -> Event {
    let mut e = Event::new("SensorEvent", ts);
    for (i, v) in every_value().into_iter().enumerate() {
        e.set(format!("f{i}"), v);
    }
    e
}

/// A window state with every accumulator kind.
pub(crate) fn window(seed: u64) -> WindowCheckpoint {
    let accumulators = vec![
        AccumulatorState::Count(seed),
        AccumulatorState::Sum {
            int: i128::MAX,
            exact: exact(seed),
            saw_float: true,
            n: 3,
        },
        AccumulatorState::Avg {
            sum: exact(seed + 1),
            n: 2,
        },
        AccumulatorState::Min(Some(Value::Float(f64::NEG_INFINITY))),
        AccumulatorState::Max(None),
        AccumulatorState::First(Some((1, 0, Value::Str(Arc::from("a"))))),
        AccumulatorState::Last(Some((i64::MAX, u64::MAX, Value::Null))),
        AccumulatorState::StdDev {
            n: 5,
            sum: ExactSumState::default(),
            sum_sq: exact(seed + 2),
        },
        AccumulatorState::CountDistinct(every_value()),
    ];
    WindowCheckpoint {
        spec: WindowSpecState {
            kind: WindowKind::Sliding {
                size_ms: 300_000,
                slide_ms: 60_000,
            },
            partition_by: Some("zone".to_owned()),
            aggregates: vec!["n=count()".to_owned(), "s=sum(value)".to_owned()],
            allowed_lateness_ms: 30_000,
        },
        partitions: vec![PartitionState {
            key: Value::Str(Arc::from("z1")),
            panes: vec![PaneState {
                start_ms: 0,
                end_ms: 300_000,
                count: seed,
                accumulators,
            }],
            events: vec![event(seed as i64)],
        }],
        late_events_dropped: seed,
        watermark_ms: Some(-(seed as i64)),
        next_seq: seed + 1,
    }
}

/// An exact sum with negative limbs and every non-finite flag.
pub(crate) fn exact(seed: u64) -> ExactSumState {
    ExactSumState {
        lowest_limb: -3,
        limbs: vec![seed as i64, i64::from(u32::MAX), -1],
        nan: true,
        pos_inf: seed.is_multiple_of(2),
        neg_inf: true,
    }
}

/// An engine state of format version 1 (the seed's): windows, a seed SASE run, a seed join,
/// variables and watermarks.
pub(crate) fn engine_v1(seed: u64) -> EngineCheckpoint {
    let mut e = engine_common(seed, 1);
    e.sase_states.insert(
        "Pattern".to_owned(),
        SaseCheckpoint {
            runs: vec![SaseRunState {
                nfa_state: 2,
                started_ms: -1,
                captured: BTreeMap::from([("a".to_owned(), vec![event(1), event(2)])]),
            }],
        },
    );
    e.join_states.insert(
        "Joined".to_owned(),
        JoinCheckpoint {
            buffers: BTreeMap::from([("Left".to_owned(), vec![event(3)])]),
            expiry: vec![(10, "Left".to_owned(), 0)],
        },
    );
    e
}

/// An engine state of today's format: windows, a pattern operator with open runs, a join
/// operator, variables and watermarks.
pub(crate) fn engine(seed: u64) -> EngineCheckpoint {
    let mut e = engine_common(seed, varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION);
    e.pattern_states.insert(
        "Fraud".to_owned(),
        PatternCheckpoint {
            shape: "A as a -> all B as b within 60000ms".to_owned(),
            partitions: vec![PatternPartitionState {
                key: Some(Value::from("u1")),
                runs: vec![PatternRunState {
                    id: 3,
                    step: 1,
                    matched: 0,
                    started_ms: -1,
                    last_ms: 2,
                    kleene_len: 1,
                    captures: vec![vec![event(1)], vec![event(2)]],
                }],
            }],
            pending: vec![(7, event(4))],
            next_arrival: 8,
            next_run: 4,
            watermark_ms: Some(seed as i64),
            counters: PatternCounters {
                runs_started: 4,
                matches: 1,
                runs_expired: 1,
                runs_cancelled: 1,
                runs_evicted: seed,
                kleene_overflows: 0,
                late_events_dropped: 2,
                events_without_key: 3,
            },
        },
    );
    e.join_operator_states.insert(
        "Paid".to_owned(),
        JoinOperatorCheckpoint {
            shape: "join(Orders, Payments) on id == id window 300000ms".to_owned(),
            buffers: vec![vec![event(3)], vec![]],
            pending: vec![(2, 1, event(5))],
            next_arrival: 3,
            watermark_ms: None,
            counters: JoinCounters {
                matches: seed,
                expired: 1,
                keys_evicted: 0,
                late_events_dropped: 0,
                events_without_key: 1,
            },
        },
    );
    e
}

/// Windows, variables and watermarks at `version`, no pattern or join state.
fn engine_common(seed: u64, version: u32) -> EngineCheckpoint {
    let mut e = EngineCheckpoint {
        version,
        events_processed: seed * 10,
        output_events_emitted: seed,
        ..EngineCheckpoint::default()
    };
    e.window_states.insert("Avg".to_owned(), window(seed));
    e.window_states.insert(
        "Counts".to_owned(),
        WindowCheckpoint {
            spec: WindowSpecState {
                kind: WindowKind::Count { size: 100 },
                partition_by: None,
                aggregates: vec![],
                allowed_lateness_ms: 0,
            },
            partitions: vec![],
            late_events_dropped: 0,
            watermark_ms: None,
            next_seq: 0,
        },
    );
    for (i, v) in every_value().into_iter().enumerate() {
        e.variables.insert(format!("v{i}"), v);
    }
    e.watermark_state = Some(WatermarkCheckpoint {
        sources: BTreeMap::from([(
            "SensorEvent".to_owned(),
            SourceWatermark {
                max_timestamp_ms: 9_000,
                out_of_order_ms: 1_000,
                idle: true,
            },
        )]),
        effective_ms: Some(8_000),
    });
    e
}

/// A checkpoint with two contexts, offsets and metadata.
pub(crate) fn checkpoint(seed: u64) -> Checkpoint {
    with_offsets(
        Checkpoint::new(1_700_000_000_000 + seed as i64)
            .with_context("main", engine(seed))
            .with_context("empty", EngineCheckpoint::default()),
        seed,
    )
}

/// [`checkpoint`] in format version 1 (the golden files of `tests/golden/v1`).
pub(crate) fn checkpoint_v1(seed: u64) -> Checkpoint {
    let empty = EngineCheckpoint {
        version: 1,
        ..EngineCheckpoint::default()
    };
    with_offsets(
        Checkpoint::new(1_700_000_000_000 + seed as i64)
            .with_context("main", engine_v1(seed))
            .with_context("empty", empty),
        seed,
    )
}

fn with_offsets(mut cp: Checkpoint, seed: u64) -> Checkpoint {
    cp.source_offsets
        .insert("events.evt".to_owned(), seed * 100);
    cp.metadata.insert("program".to_owned(), format!("p{seed}"));
    cp
}

/// A checkpoint whose every part depends on `seed` (no part shared with another seed).
pub(crate) fn distinct_checkpoint(seed: u64) -> Checkpoint {
    let mut cp = checkpoint(seed);
    let empty = EngineCheckpoint {
        events_processed: seed,
        ..EngineCheckpoint::default()
    };
    cp.context_states.insert("empty".to_owned(), empty);
    for engine in cp.context_states.values_mut() {
        for w in engine.window_states.values_mut() {
            w.late_events_dropped = seed;
        }
        for p in engine.pattern_states.values_mut() {
            p.next_run = seed + 100;
        }
        for j in engine.join_operator_states.values_mut() {
            j.next_arrival = seed + 100;
        }
    }
    cp
}

/// A state of `parts` window operators of about `part_bytes` each (a one-context checkpoint).
pub(crate) fn big_checkpoint(parts: usize, part_bytes: usize, seed: u64) -> Checkpoint {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut engine = EngineCheckpoint::default();
    for i in 0..parts {
        let distinct: Vec<Value> = (0..part_bytes / 9)
            .map(|_| Value::Float(rng.r#gen::<f64>()))
            .collect();
        let mut w = window(i as u64);
        w.partitions[0].panes[0].accumulators = vec![AccumulatorState::CountDistinct(distinct)];
        w.partitions[0].events.clear();
        engine.window_states.insert(format!("w{i:05}"), w);
    }
    Checkpoint::new(0).with_context("main", engine)
}

/// Canonical bytes of a checkpoint: contexts sorted, floats by bits (postcard is bit-exact).
pub(crate) fn canonical(cp: &Checkpoint) -> Vec<u8> {
    let contexts: BTreeMap<&String, &EngineCheckpoint> = cp.context_states.iter().collect();
    postcard::to_stdvec(&(
        cp.id,
        cp.timestamp_ms,
        contexts,
        &cp.source_offsets,
        &cp.metadata,
    ))
    .expect("encode")
}

/// Asserts two checkpoints are bit-for-bit equal.
#[track_caller]
pub(crate) fn assert_same(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.id, b.id, "ids differ");
    assert!(canonical(a) == canonical(b), "checkpoint {} differs", a.id);
}

/// The postcard size of the raw state (what the checkpoint holds, without any framing).
pub(crate) fn raw_size(cp: &Checkpoint) -> u64 {
    canonical(cp).len() as u64
}

/// A store that records its calls (the key of a `get`, `put` or `delete`, the prefix of a
/// `list`, `"manifest"` for a `write_batch` that writes a manifest, nothing otherwise), can
/// report fewer capabilities than its inner store (or ordered durability), and can fail the
/// gets of one key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recording<S> {
    pub(crate) inner: S,
    log: Arc<std::sync::Mutex<Vec<(&'static str, String)>>>,
    ordered: Option<bool>,
    atomic: Option<bool>,
    /// Gets of this key fail as a backend error would (a damaged block, an I/O error).
    failing_get: Arc<std::sync::Mutex<Option<Key>>>,
    /// Flushes never complete (a stalled disk).
    stalled_flush: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> Recording<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            log: Arc::default(),
            ordered: None,
            atomic: None,
            failing_get: Arc::default(),
            stalled_flush: Arc::default(),
        }
    }

    /// Makes every `flush` wait forever (`true`) or work again (`false`).
    pub(crate) fn stall_flushes(&self, stalled: bool) {
        self.stalled_flush
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every `get` of `key` fail with a backend error (`None`: no failures).
    pub(crate) fn fail_gets_of(&self, key: Option<Key>) {
        *self.failing_get.lock().unwrap() = key;
    }

    /// Reports these capabilities instead of the inner store's (`atomic_batch = true` only over
    /// a store whose batches are atomic).
    pub(crate) fn claiming(mut self, atomic_batch: bool, ordered_durability: bool) -> Self {
        self.atomic = Some(atomic_batch);
        self.ordered = Some(ordered_durability);
        self
    }

    /// Takes the calls recorded so far, as `(operation, key or prefix)`.
    pub(crate) fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn record(&self, op: &'static str, key: impl ToString) {
        self.log.lock().unwrap().push((op, key.to_string()));
    }
}

#[async_trait::async_trait]
impl<S: StateStore> StateStore for Recording<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.record("get", key);
        if self.failing_get.lock().unwrap().as_ref() == Some(key) {
            return Err(StoreError::Backend {
                backend: "test",
                message: format!("cannot read {key}"),
            });
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.record("put", key);
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.record("delete", key);
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.record("list", prefix);
        self.inner.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let manifest = batch
            .ops()
            .iter()
            .any(|op| op.key().as_str().contains(":ckpt:manifest:"));
        self.record("write_batch", if manifest { "manifest" } else { "" });
        self.inner.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.record("flush", "");
        if self.stalled_flush.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        let caps = self.inner.capabilities();
        let ordered = self.ordered.unwrap_or(caps.ordered_durability);
        Capabilities::new(self.atomic.unwrap_or(caps.atomic_batch), caps.persistent)
            .with_ordered_durability(ordered)
    }
}

/// Polls `future` once and drops it: what a caller's timeout or shutdown does to a checkpoint
/// that is waiting on the store. Returns whether it had finished.
pub(crate) fn poll_once_then_drop<F: std::future::Future>(future: F) -> bool {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    future.as_mut().poll(&mut cx).is_ready()
}
