//! Fault-injection wrappers for recovery tests (feature `testing`).
//!
//! - [`FailingStore`] fails chosen operations: the Nth one only, or the Nth and every later one,
//!   either before the operation reaches the inner store or after it was applied (an
//!   "ambiguous" failure, like a timeout after the write landed).
//! - [`CrashStore`] models a crash: after a chosen number of operations the "process" is dead
//!   and nothing more reaches the inner store; [`CrashStore::power_loss`] additionally reverts
//!   writes that were not flushed, modelling the contract (`put` survives a process crash,
//!   only flushed data survives power loss).
//!
//! Operations are counted from zero, one per trait method call except `capabilities`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{BatchOp, Capabilities, Key, StateStore, StoreError, WriteBatch};

/// When an injected failure strikes relative to the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// The operation fails without reaching the inner store.
    #[default]
    Before,
    /// The operation is applied to the inner store, then reported as failed.
    After,
}

/// Which operations a [`FailingStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailPlan {
    /// Nothing fails.
    #[default]
    Never,
    /// Only operation `n` (counted from zero) fails.
    Nth(u64),
    /// Operation `n` and every later one fail.
    From(u64),
    /// Every operation of this name fails: `get`, `put`, `delete`, `list`, `write_batch` or
    /// `flush`.
    Every(&'static str),
}

impl FailPlan {
    fn fails(self, op: u64, what: &str) -> bool {
        match self {
            Self::Never => false,
            Self::Nth(n) => op == n,
            Self::From(n) => op >= n,
            Self::Every(name) => name == what,
        }
    }
}

fn injected(op: u64, what: &str) -> StoreError {
    StoreError::Unavailable {
        reason: format!("injected failure of operation {op} ({what})"),
    }
}

/// A store that fails operations according to a [`FailPlan`].
#[derive(Debug)]
pub struct FailingStore<S> {
    inner: S,
    ops: AtomicU64,
    plan: Mutex<(FailPlan, FailMode)>,
}

impl<S: StateStore> FailingStore<S> {
    /// Wraps `inner`; nothing fails until [`set_plan`](Self::set_plan).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ops: AtomicU64::new(0),
            plan: Mutex::new((FailPlan::Never, FailMode::Before)),
        }
    }

    /// Sets which operations fail and how, and restarts the operation count at zero.
    pub fn set_plan(&self, plan: FailPlan, mode: FailMode) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = (plan, mode);
        self.ops.store(0, Ordering::SeqCst);
    }

    /// Operations seen since the last [`set_plan`](Self::set_plan) (or creation).
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    async fn run<T, F>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send,
    {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let (plan, mode) = *self.plan.lock().unwrap_or_else(|p| p.into_inner());
        if !plan.fails(n, what) {
            return op.await;
        }
        match mode {
            FailMode::Before => Err(injected(n, what)),
            FailMode::After => {
                op.await?;
                Err(injected(n, what))
            }
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: StateStore> StateStore for FailingStore<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("get", self.inner.get(key)).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.run("put", self.inner.put(key, value)).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.run("delete", self.inner.delete(key)).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.run("list", self.inner.list(prefix)).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.run("write_batch", self.inner.write_batch(batch)).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.run("flush", self.inner.flush()).await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[derive(Debug, Default)]
struct CrashState {
    /// Operations allowed before the crash (`None`: never crash).
    crash_after: Option<u64>,
    ops: u64,
    /// Keys written since the last flush, with their value as of that flush and every write
    /// since (see [`Unflushed`]).
    unflushed: BTreeMap<Key, Unflushed>,
    /// Writes seen, to number them.
    writes: u64,
}

/// One key's history since the last flush.
#[derive(Debug)]
struct Unflushed {
    /// Its value as of the last flush (`None`: absent).
    flushed: Option<Vec<u8>>,
    /// The writes since, in order: the write's number (a `put`, `delete` or `write_batch`) and
    /// the value it left (`None`: deleted).
    writes: Vec<(u64, Option<Vec<u8>>)>,
}

/// A store that "crashes" after a number of operations (see the module docs).
///
/// After the crash every operation fails with [`StoreError::Unavailable`] and reaches nothing;
/// reopen the inner store (or call [`restart`](Self::restart)) to model the next process.
/// Clones share the crash state and the inner store.
#[derive(Debug, Clone)]
pub struct CrashStore<S> {
    inner: Arc<S>,
    state: Arc<Mutex<CrashState>>,
}

impl<S: StateStore> CrashStore<S> {
    /// Wraps `inner`; it does not crash until [`crash_after`](Self::crash_after).
    pub fn new(inner: S) -> Self {
        Self {
            inner: Arc::new(inner),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, CrashState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets `n` more operations through, then crashes (operation `n` and later ones fail).
    pub fn crash_after(&self, n: u64) {
        let mut state = self.state();
        state.crash_after = Some(n);
        state.ops = 0;
    }

    /// Whether the crash point was reached.
    pub fn crashed(&self) -> bool {
        let state = self.state();
        state.crash_after.is_some_and(|n| state.ops >= n)
    }

    /// Operations seen since the last [`crash_after`](Self::crash_after) (failed ones included).
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// A new process starts over the same data: no crash pending, operations count from zero.
    /// Unflushed writes stay as they are (a process crash keeps them).
    pub fn restart(&self) {
        let mut state = self.state();
        state.crash_after = None;
        state.ops = 0;
    }

    /// Power loss: loses every write not followed by a flush for which `lost(key)` is true (all
    /// of them with `|_| true`), then restarts. A key ends with the value of its last write that
    /// was not lost, or its flushed value. Returns the keys whose value changed.
    ///
    /// Over a store whose batches are atomic ([`Capabilities::atomic_batch`]) a batch is lost
    /// or kept whole: `lost` is asked once per batch, for its first key (in key order). Other
    /// writes are lost independently of each other and of their order (a store's
    /// `ordered_durability` is not modelled; this wrapper reports none).
    ///
    /// # Errors
    /// The inner store's errors while reverting.
    pub async fn power_loss(
        &self,
        mut lost: impl FnMut(&Key) -> bool,
    ) -> Result<Vec<Key>, StoreError> {
        let unflushed = std::mem::take(&mut self.state().unflushed);
        let atomic = self.inner.capabilities().atomic_batch;
        // For atomic stores: whether each write is lost, decided at its first key.
        let mut verdicts: BTreeMap<u64, bool> = BTreeMap::new();
        let mut reverted = Vec::new();
        for (key, history) in unflushed {
            let Some((_, current)) = history.writes.last() else {
                continue;
            };
            let current = current.clone();
            let mut survivor = history.flushed;
            for (write, value) in history.writes {
                let is_lost = if atomic {
                    *verdicts.entry(write).or_insert_with(|| lost(&key))
                } else {
                    lost(&key)
                };
                if !is_lost {
                    survivor = value;
                }
            }
            if survivor == current {
                continue;
            }
            match survivor {
                Some(value) => self.inner.put(&key, &value).await?,
                None => self.inner.delete(&key).await?,
            }
            reverted.push(key);
        }
        self.inner.flush().await?;
        self.restart();
        Ok(reverted)
    }

    /// The wrapped store (bypasses crash and durability tracking).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Counts an operation; `Err` if the process is dead.
    fn admit(&self, what: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let n = state.ops;
        state.ops += 1;
        match state.crash_after {
            Some(limit) if n >= limit => Err(StoreError::Unavailable {
                reason: format!("simulated crash before operation {n} ({what})"),
            }),
            _ => Ok(()),
        }
    }

    /// Numbers a new write (a put, delete or batch).
    fn next_write(&self) -> u64 {
        let mut state = self.state();
        state.writes += 1;
        state.writes
    }

    /// Before a write to `key`: remembers its flushed value if this is its first write since
    /// the last flush.
    async fn track(&self, key: &Key) -> Result<(), StoreError> {
        if self.state().unflushed.contains_key(key) {
            return Ok(());
        }
        let flushed = self.inner.get(key).await?;
        self.state()
            .unflushed
            .entry(key.clone())
            .or_insert(Unflushed {
                flushed,
                writes: Vec::new(),
            });
        Ok(())
    }

    /// After a successful write: records the value it left under `key`.
    fn record(&self, key: &Key, write: u64, value: Option<Vec<u8>>) {
        if let Some(history) = self.state().unflushed.get_mut(key) {
            history.writes.push((write, value));
        }
    }

    /// After a failed write (which may have applied, as a timeout after the write landed):
    /// records the value `key` holds now, if the write changed it.
    async fn record_outcome(&self, key: &Key, write: u64) {
        let Ok(now) = self.inner.get(key).await else {
            return;
        };
        let mut state = self.state();
        if let Some(history) = state.unflushed.get_mut(key) {
            let before = history
                .writes
                .last()
                .map_or(&history.flushed, |(_, value)| value);
            if *before != now {
                history.writes.push((write, now));
            }
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: StateStore> StateStore for CrashStore<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.admit("get")?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.admit("put")?;
        key.require_value_key()?;
        self.track(key).await?;
        let result = self.inner.put(key, value).await;
        let write = self.next_write();
        match result {
            Ok(()) => self.record(key, write, Some(value.to_vec())),
            Err(_) => self.record_outcome(key, write).await,
        }
        result
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.admit("delete")?;
        key.require_value_key()?;
        self.track(key).await?;
        let result = self.inner.delete(key).await;
        let write = self.next_write();
        match result {
            Ok(()) => self.record(key, write, None),
            Err(_) => self.record_outcome(key, write).await,
        }
        result
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.admit("list")?;
        self.inner.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.admit("write_batch")?;
        batch.validate()?;
        for op in batch.ops() {
            self.track(op.key()).await?;
        }
        let applied: Vec<(Key, Option<Vec<u8>>)> = batch
            .ops()
            .iter()
            .map(|op| match op {
                BatchOp::Put(k, v) => (k.clone(), Some(v.clone())),
                BatchOp::Delete(k) => (k.clone(), None),
            })
            .collect();
        let result = self.inner.write_batch(batch).await;
        let write = self.next_write();
        for (key, value) in applied {
            match result {
                Ok(()) => self.record(&key, write, value),
                Err(_) => self.record_outcome(&key, write).await,
            }
        }
        result
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.admit("flush")?;
        self.inner.flush().await?;
        self.state().unflushed.clear();
        Ok(())
    }
    fn capabilities(&self) -> Capabilities {
        // A simulated power loss may revert any unflushed write, whatever the inner store's
        // log would have kept.
        self.inner.capabilities().with_ordered_durability(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn key(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    fn batch(puts: &[(&str, &[u8])]) -> WriteBatch {
        let mut b = WriteBatch::new();
        for (k, v) in puts {
            b.put(key(k), v.to_vec());
        }
        b
    }

    async fn value(store: &CrashStore<MemoryStore>, k: &str) -> Option<Vec<u8>> {
        store.inner().get(&key(k)).await.unwrap()
    }

    #[tokio::test]
    async fn power_loss_loses_an_atomic_batch_whole_and_keeps_the_last_surviving_write() {
        let store = CrashStore::new(MemoryStore::new());
        store.put(&key("k"), b"0").await.unwrap();
        store.flush().await.unwrap();
        store
            .write_batch(batch(&[("k", b"1"), ("x", b"1")]))
            .await
            .unwrap();
        store
            .write_batch(batch(&[("k", b"2"), ("y", b"2")]))
            .await
            .unwrap();
        // Asked once per batch: keep the first, lose the second.
        let mut answers = [false, true].into_iter();
        let reverted = store.power_loss(|_| answers.next().unwrap()).await.unwrap();
        assert_eq!(answers.next(), None, "one question per batch");
        assert_eq!(value(&store, "k").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(value(&store, "x").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(value(&store, "y").await, None);
        assert_eq!(reverted, vec![key("k"), key("y")]);
    }

    #[tokio::test]
    async fn power_loss_also_loses_a_write_that_landed_but_reported_failure() {
        let failing = FailingStore::new(MemoryStore::new());
        let store = CrashStore::new(failing);
        store.put(&key("k"), b"0").await.unwrap();
        store.flush().await.unwrap();
        store
            .inner()
            .set_plan(FailPlan::Every("put"), FailMode::After);
        assert!(store.put(&key("k"), b"1").await.is_err());
        store.inner().set_plan(FailPlan::Never, FailMode::Before);
        assert_eq!(
            store.inner().get(&key("k")).await.unwrap().as_deref(),
            Some(&b"1"[..]),
            "the write landed"
        );
        let reverted = store.power_loss(|_| true).await.unwrap();
        assert_eq!(reverted, vec![key("k")]);
        assert_eq!(
            store.inner().get(&key("k")).await.unwrap().as_deref(),
            Some(&b"0"[..])
        );
    }

    #[tokio::test]
    async fn power_loss_of_everything_returns_to_the_flushed_state() {
        let store = CrashStore::new(MemoryStore::new());
        store.put(&key("k"), b"0").await.unwrap();
        store.flush().await.unwrap();
        store.put(&key("k"), b"1").await.unwrap();
        store.delete(&key("k")).await.unwrap();
        store.put(&key("n"), b"new").await.unwrap();
        store.power_loss(|_| true).await.unwrap();
        assert_eq!(value(&store, "k").await.as_deref(), Some(&b"0"[..]));
        assert_eq!(value(&store, "n").await, None);
    }
}
