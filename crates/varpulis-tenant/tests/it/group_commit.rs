//! Group commit of the ingest log: concurrent requests share one durable write, each is judged
//! and answered on its own; and a power loss at any write loses no acknowledged batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use varpulis_core::Event;
use varpulis_store::faults::CrashStore;
use varpulis_store::{Capabilities, Key, MemoryStore, StateStore, StoreError, WriteBatch};
use varpulis_tenant::{Idempotency, PipelineId, QuotaTier, Registry, TenantError, TenantId};

use super::{COUNT, clock, open, txn};

/// A memory store whose ingest-log puts wait for a permit (so a test can hold the first
/// append while others queue) and can be made to fail.
struct Gate {
    inner: MemoryStore,
    permits: Semaphore,
    /// Ingest-log puts that reached the gate.
    log_puts: AtomicU64,
    /// Fail the log put with this number (counted from 1); 0: none.
    fail_put: AtomicU64,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            permits: Semaphore::new(0),
            log_puts: AtomicU64::new(0),
            fail_put: AtomicU64::new(0),
        })
    }
}

fn is_log(key: &Key) -> bool {
    key.as_str().starts_with("varpulis-server:log:")
}

#[async_trait]
impl StateStore for Gate {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        if is_log(key) {
            let n = self.log_puts.fetch_add(1, Ordering::SeqCst) + 1;
            self.permits.acquire().await.expect("open").forget();
            if self.fail_put.load(Ordering::SeqCst) == n {
                return Err(StoreError::Unavailable {
                    reason: format!("injected failure of log put {n}"),
                });
            }
        }
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// `COUNT` (a window of 5 events), and an hourly count that refuses unrepresentable times.
const TWO: &str = "stream Totals = Txn .window(5) .aggregate(sum: sum(amount), n: count())\nstream Hourly = Txn .window(1h) .aggregate(n: count())";

/// A registry over `gate` with one Pro tenant and a `TWO` pipeline.
async fn setup(gate: &Arc<Gate>) -> (Arc<Registry>, TenantId, PipelineId) {
    let store: Arc<dyn StateStore> = Arc::clone(gate) as Arc<dyn StateStore>;
    let r = open(&store, &clock()).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Pro))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", TWO).await.expect("p").id;
    (Arc::new(r), t.id, p)
}

fn five(from: i64) -> Vec<Event> {
    (from..from + 5).map(|i| txn(i, 1)).collect()
}

type Answer = tokio::task::JoinHandle<Result<varpulis_tenant::Batch, TenantError>>;

fn send(
    r: &Arc<Registry>,
    t: &TenantId,
    p: &PipelineId,
    events: Vec<Event>,
    key: Option<&str>,
) -> Answer {
    let (r, t, p) = (Arc::clone(r), t.clone(), p.clone());
    let key = key.map(str::to_owned);
    tokio::spawn(async move {
        let retry = key
            .as_deref()
            .map(|k| Idempotency::of_bytes(k, b"same request"));
        r.process(&t, &p, events, retry).await
    })
}

/// Lets the spawned tasks of a current-thread runtime run until they wait.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn requests_queued_behind_an_append_share_the_next_one_and_each_gets_its_own_answer() {
    let gate = Gate::new();
    let (r, t, p) = setup(&gate).await;
    let first = send(&r, &t, &p, five(0), None);
    settle().await;
    assert_eq!(
        gate.log_puts.load(Ordering::SeqCst),
        1,
        "the first append waits"
    );
    // Nine requests arrive while the first append is in flight: they queue.
    let queued: Vec<Answer> = (1..10)
        .map(|i| send(&r, &t, &p, five(i * 5), None))
        .collect();
    settle().await;
    assert_eq!(
        gate.log_puts.load(Ordering::SeqCst),
        1,
        "nobody else writes yet"
    );
    gate.permits.add_permits(100);
    let first = first.await.expect("joined").expect("accepted");
    assert_eq!(first.accepted, 5);
    assert_eq!(first.outputs.len(), 1, "one window of 5");
    for (i, answer) in queued.into_iter().enumerate() {
        let batch = answer.await.expect("joined").expect("accepted");
        assert_eq!(batch.accepted, 5, "request {i}");
        assert_eq!(batch.outputs.len(), 1, "request {i}: its own window");
        assert!(!batch.replayed);
    }
    assert_eq!(
        gate.log_puts.load(Ordering::SeqCst),
        2,
        "nine queued requests, one append"
    );
    assert_eq!(r.metrics(&t, &p).expect("m").events_in, 50);
    assert_eq!(r.metrics(&t, &p).expect("m").output_events, 10);
    let exposition = r.prometheus();
    let sum = exposition
        .lines()
        .find(|l| l.starts_with("varpulis_ingest_group_requests_sum{"))
        .unwrap_or_else(|| panic!("no group size sum in the metrics:\n{exposition}"));
    assert!(
        sum.ends_with("} 10.0"),
        "the group sizes (1 + 9) sum to 10: {sum}"
    );
}

#[tokio::test]
async fn each_request_of_a_group_is_judged_alone_and_a_retry_within_the_group_applies_once() {
    let gate = Gate::new();
    let (r, t, p) = setup(&gate).await;
    let holder = send(&r, &t, &p, five(0), None);
    settle().await;
    let keyed = send(&r, &t, &p, five(5), Some("k-1"));
    let bad = send(&r, &t, &p, vec![txn(10, 1), txn(i64::MAX - 1, 1)], None);
    let retry = send(&r, &t, &p, five(5), Some("k-1"));
    let empty = send(&r, &t, &p, Vec::new(), None);
    let conflict = {
        let (r, t, p) = (Arc::clone(&r), t.clone(), p.clone());
        tokio::spawn(async move {
            let retry = Some(Idempotency::of_bytes("k-1", b"another request"));
            r.process(&t, &p, five(5), retry).await
        })
    };
    settle().await;
    gate.permits.add_permits(100);
    holder.await.expect("joined").expect("accepted");
    let keyed = keyed.await.expect("joined").expect("accepted");
    assert!(!keyed.replayed);
    assert_eq!(keyed.outputs.len(), 1);
    let bad = bad
        .await
        .expect("joined")
        .expect_err("an unrepresentable time");
    assert!(
        matches!(bad, TenantError::InvalidEvent { index: 1, .. }),
        "{bad:?}"
    );
    let retry = retry.await.expect("joined").expect("the original answer");
    assert!(retry.replayed, "a retry of a batch of the same group");
    assert_eq!(retry.outputs, keyed.outputs);
    assert_eq!(empty.await.expect("joined").expect("empty").accepted, 0);
    let conflict = conflict.await.expect("joined").expect_err("conflict");
    assert!(
        matches!(conflict, TenantError::IdempotencyConflict { .. }),
        "{conflict:?}"
    );
    assert_eq!(gate.log_puts.load(Ordering::SeqCst), 2);
    assert_eq!(
        r.metrics(&t, &p).expect("m").events_in,
        10,
        "the holder's 5 and k-1's 5, once"
    );
}

#[tokio::test]
async fn a_failed_append_refuses_every_request_of_its_group_and_applies_none() {
    let gate = Gate::new();
    gate.fail_put.store(2, Ordering::SeqCst);
    let (r, t, p) = setup(&gate).await;
    let holder = send(&r, &t, &p, five(0), None);
    settle().await;
    let queued: Vec<Answer> = (1..4)
        .map(|i| send(&r, &t, &p, five(i * 5), None))
        .collect();
    settle().await;
    gate.permits.add_permits(100);
    holder.await.expect("joined").expect("accepted");
    for answer in queued {
        let e = answer.await.expect("joined").expect_err("refused");
        assert!(
            matches!(&e, TenantError::LogAppend { message } if message.contains("injected failure of log put 2")),
            "{e:?}"
        );
    }
    assert_eq!(
        r.metrics(&t, &p).expect("m").events_in,
        5,
        "none of the group applied"
    );
    // The next request takes the failed entry's seq and goes through.
    let after = send(&r, &t, &p, five(100), None)
        .await
        .expect("joined")
        .expect("accepted");
    assert_eq!(after.accepted, 5);
    assert_eq!(r.metrics(&t, &p).expect("m").events_in, 10);
}

/// What a client of [`power_loss_at_every_write_loses_no_acknowledged_batch`] has seen.
#[derive(Default)]
struct Run {
    acknowledged: Vec<usize>,
}

const BATCHES: usize = 12;

fn batch_events(i: usize) -> Vec<Event> {
    let from = i64::try_from(i * 3).expect("small");
    (from..from + 3).map(|ts| txn(ts, ts)).collect()
}

/// Sends the batches in order with keys, checkpointing after every fourth; stops at the first
/// error (the crash).
async fn client(r: &Registry, t: &TenantId, p: &PipelineId, from: usize, run: &mut Run) -> bool {
    for i in from..BATCHES {
        let key = format!("batch-{i}");
        let retry = Some(Idempotency::of_bytes(&key, key.as_bytes()));
        if r.process(t, p, batch_events(i), retry).await.is_err() {
            return false;
        }
        run.acknowledged.push(i);
        if i % 4 == 3 && r.checkpoint(t, p).await.is_err() {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn power_loss_at_every_write_loses_no_acknowledged_batch() {
    // The outputs of an uninterrupted run.
    let reference = {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let r = open(&store, &clock()).await;
        let (t, _) = r.create_tenant("t", Some(QuotaTier::Pro)).await.expect("t");
        let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
        assert!(client(&r, &t.id, &p, 0, &mut Run::default()).await);
        r.outputs(&t.id, &p, 1, 1000)
            .await
            .expect("outputs")
            .outputs
    };
    let mut rng = StdRng::seed_from_u64(14);
    let mut crash_at = 0;
    loop {
        let crash = CrashStore::new(MemoryStore::new());
        let store: Arc<dyn StateStore> = Arc::new(crash.clone());
        let c = clock();
        let r = open(&store, &c).await;
        let (t, _) = r.create_tenant("t", Some(QuotaTier::Pro)).await.expect("t");
        let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
        crash.crash_after(crash_at);
        let mut run = Run::default();
        let finished = client(&r, &t.id, &p, 0, &mut run).await;
        drop(r);
        if finished && !crash.crashed() {
            assert!(
                crash_at > 20,
                "the loop covered every write ({crash_at} operations)"
            );
            break;
        }
        // Every unflushed write is lost, or (second round) a seeded half of them.
        let all = crash_at % 2 == 0;
        crash
            .power_loss(|_| all || rng.gen_bool(0.5))
            .await
            .expect("reverted");
        let r = open(&store, &c).await;
        let m = r.metrics(&t.id, &p).expect("the pipeline survived");
        let acked: u64 = run
            .acknowledged
            .iter()
            .map(|i| batch_events(*i).len() as u64)
            .sum();
        assert!(
            m.events_in >= acked,
            "crash after {crash_at} operations: {} events applied after recovery, {acked} acknowledged",
            m.events_in
        );
        // The client retries what was not acknowledged: exactly the reference's outputs.
        let next = run.acknowledged.last().map_or(0, |i| i + 1);
        assert!(client(&r, &t.id, &p, next, &mut Run::default()).await);
        let outputs = r
            .outputs(&t.id, &p, 1, 1000)
            .await
            .expect("outputs")
            .outputs;
        assert_eq!(outputs, reference, "crash after {crash_at} operations");
        crash_at += 1;
    }
}
