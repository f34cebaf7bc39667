//! The conformance suite every [`StateStore`] backend and wrapper runs (feature `testing`).
//!
//! Each behaviour of the contract is a plain `pub async fn` taking a [`Harness`], and
//! [`conformance_tests!`](crate::conformance_tests) expands to one named `#[test]` per case:
//!
//! ```ignore
//! mod file_store {
//!     varpulis_store::conformance_tests!(varpulis_store::testing::FileHarness::new());
//! }
//! ```
//!
//! A harness opens the store under test; calling [`Harness::open`] again reopens it over the same
//! data, which the reopen and model cases use for persistent stores.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::{FileStore, Key, KeyProblem, MemoryStore, StateStore, StoreError, WriteBatch};

/// Opens the store under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store type.
    type Store: StateStore + 'static;
    /// Opens the store; a second call reopens it over the same data.
    async fn open(&self) -> Self::Store;
    /// A directory that must hold everything the store writes, with the store's own root as its
    /// only entry. `None` for stores without a directory.
    fn sandbox(&self) -> Option<&Path> {
        None
    }
}

/// Harness for [`MemoryStore`]: every `open` returns a handle to the same map.
#[derive(Debug, Default)]
pub struct MemoryHarness(MemoryStore);

impl MemoryHarness {
    /// A harness over an empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    type Store = MemoryStore;
    async fn open(&self) -> MemoryStore {
        self.0.clone()
    }
}

/// Harness for [`FileStore`] in a fresh temporary directory (`<tmp>/store`, sandbox `<tmp>`).
#[derive(Debug)]
pub struct FileHarness {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl FileHarness {
    /// A harness over a new, empty directory.
    ///
    /// # Panics
    /// If no temporary directory can be created.
    #[must_use]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let root = dir.path().join("store");
        Self { dir, root }
    }

    /// The store's root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Default for FileHarness {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Harness for FileHarness {
    type Store = FileStore;
    async fn open(&self) -> FileStore {
        FileStore::open(&self.root).expect("open file store")
    }
    fn sandbox(&self) -> Option<&Path> {
        Some(self.dir.path())
    }
}

/// Runs a future on a fresh multi-threaded runtime (used by the generated tests).
///
/// # Panics
/// If the runtime cannot be built.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime")
        .block_on(future)
}

fn k(s: &str) -> Key {
    Key::new(s).expect("valid test key")
}

/// Strings that must never be accepted as keys.
pub const HOSTILE_KEYS: &[&str] = &[
    "",
    ".",
    "..",
    "../x",
    "a:..:b",
    "a:.",
    "a::b",
    ":a",
    "a:",
    "a/b",
    "/etc/passwd",
    "/",
    "a\\b",
    "..\\x",
    "C:\\x",
    "a\0b",
    "caf\u{e9}",
    "\u{202e}x",
    "a b",
    "a*b",
    "~",
    "x.val~",
];

async fn assert_empty<S: StateStore + ?Sized>(store: &S) {
    assert_eq!(store.list(&Key::root()).await.unwrap(), Vec::<Key>::new());
}

/// A put value is returned by get.
pub async fn put_then_get<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("a:b"), b"hello").await.unwrap();
    assert_eq!(
        s.get(&k("a:b")).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
}

/// A key never written reads as `None`, also below an existing key.
pub async fn get_missing_is_none<H: Harness>(h: &H) {
    let s = h.open().await;
    assert_eq!(s.get(&k("nope")).await.unwrap(), None);
    s.put(&k("a"), b"1").await.unwrap();
    assert_eq!(s.get(&k("a:b")).await.unwrap(), None);
    assert_eq!(s.get(&k("a:b:c")).await.unwrap(), None);
}

/// A second put replaces the first value entirely (longer then shorter).
pub async fn overwrite_replaces_value<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("k"), &[1; 1000]).await.unwrap();
    s.put(&k("k"), b"xy").await.unwrap();
    assert_eq!(s.get(&k("k")).await.unwrap().as_deref(), Some(&b"xy"[..]));
}

/// Delete removes the value and leaves siblings alone.
pub async fn delete_removes_value<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("a:1"), b"1").await.unwrap();
    s.put(&k("a:2"), b"2").await.unwrap();
    s.delete(&k("a:1")).await.unwrap();
    assert_eq!(s.get(&k("a:1")).await.unwrap(), None);
    assert_eq!(s.get(&k("a:2")).await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(s.list(&k("a")).await.unwrap(), vec![k("a:2")]);
}

/// Deleting an absent key succeeds.
pub async fn delete_missing_is_ok<H: Harness>(h: &H) {
    let s = h.open().await;
    s.delete(&k("never:written")).await.unwrap();
    s.put(&k("x"), b"1").await.unwrap();
    s.delete(&k("x")).await.unwrap();
    s.delete(&k("x")).await.unwrap();
    assert_empty(&s).await;
}

/// An empty value is stored and is distinct from an absent one.
pub async fn empty_value_round_trips<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("empty"), b"").await.unwrap();
    assert_eq!(s.get(&k("empty")).await.unwrap(), Some(Vec::new()));
    assert_eq!(s.list(&Key::root()).await.unwrap(), vec![k("empty")]);
}

/// A 16 MiB value round-trips byte for byte.
pub async fn large_value_round_trips<H: Harness>(h: &H) {
    let s = h.open().await;
    let value: Vec<u8> = (0..16 * 1024 * 1024_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.put(&k("big"), &value).await.unwrap();
    let got = s.get(&k("big")).await.unwrap().unwrap();
    assert_eq!(got.len(), value.len());
    assert!(got == value, "16 MiB value differs after round trip");
}

/// Every byte value survives.
pub async fn binary_values_round_trip<H: Harness>(h: &H) {
    let s = h.open().await;
    let value: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
    s.put(&k("bin"), &value).await.unwrap();
    assert_eq!(s.get(&k("bin")).await.unwrap(), Some(value));
}

/// `list` returns every matching key, sorted by segments.
pub async fn list_is_sorted_and_complete<H: Harness>(h: &H) {
    let s = h.open().await;
    let keys = [
        "p:b", "p:a:z", "p:a", "p:a-c", "p:c:d:e", "q", "p0", "p:10", "p:9",
    ];
    for key in keys {
        s.put(&k(key), key.as_bytes()).await.unwrap();
    }
    let got = s.list(&k("p")).await.unwrap();
    let want: Vec<Key> = ["p:10", "p:9", "p:a", "p:a:z", "p:a-c", "p:b", "p:c:d:e"]
        .iter()
        .map(|x| k(x))
        .collect();
    assert_eq!(got, want);
}

/// A prefix matches whole segments: `a:b` does not match `a:bc`.
pub async fn list_matches_whole_segments<H: Harness>(h: &H) {
    let s = h.open().await;
    for key in ["a:b", "a:bc", "a:b:c", "a:b-", "ab"] {
        s.put(&k(key), b"v").await.unwrap();
    }
    assert_eq!(s.list(&k("a:b")).await.unwrap(), vec![k("a:b"), k("a:b:c")]);
    assert_eq!(s.list(&k("a:bc")).await.unwrap(), vec![k("a:bc")]);
    assert_eq!(s.list(&k("a:x")).await.unwrap(), Vec::<Key>::new());
}

/// The root prefix lists every key in the store.
pub async fn list_root_lists_everything<H: Harness>(h: &H) {
    let s = h.open().await;
    assert_empty(&s).await;
    for key in ["z", "a:b", "m:n:o"] {
        s.put(&k(key), b"v").await.unwrap();
    }
    assert_eq!(
        s.list(&Key::root()).await.unwrap(),
        vec![k("a:b"), k("m:n:o"), k("z")]
    );
}

/// Keys whose segments would collide as file and directory (`a:b` and `a:b:c`; `x` and
/// `x.val:y`) coexist, each with its own value.
pub async fn file_and_directory_keys_coexist<H: Harness>(h: &H) {
    let s = h.open().await;
    let keys = ["a:b:c", "a:b", "a", "x", "x.val:y", "x.val", "x.val.val"];
    for key in keys {
        s.put(&k(key), key.as_bytes()).await.unwrap();
    }
    for key in keys {
        assert_eq!(
            s.get(&k(key)).await.unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key}"
        );
    }
    let mut want: Vec<Key> = keys.iter().map(|x| k(x)).collect();
    want.sort();
    assert_eq!(s.list(&Key::root()).await.unwrap(), want);
    s.delete(&k("a:b")).await.unwrap();
    assert_eq!(
        s.get(&k("a:b:c")).await.unwrap().as_deref(),
        Some(&b"a:b:c"[..])
    );
}

/// Value operations on the root key fail with `InvalidKey`.
pub async fn root_key_rejected_for_values<H: Harness>(h: &H) {
    let s = h.open().await;
    let root = Key::root();
    let is_invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey { .. }));
    assert!(matches!(
        s.get(&root).await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(is_invalid(s.put(&root, b"x").await));
    assert!(is_invalid(s.delete(&root).await));
    let mut batch = WriteBatch::new();
    batch.put(k("ok"), b"1".to_vec()).put(root, b"x".to_vec());
    assert!(is_invalid(s.write_batch(batch).await));
    if s.capabilities().atomic_batch {
        assert_eq!(s.get(&k("ok")).await.unwrap(), None);
    }
}

/// Traversal, separators, NUL, absolute paths, over-long and non-ASCII keys are rejected as
/// `InvalidKey` (before any I/O: no `Key` can be built from them), and nothing is written.
pub async fn rejects_hostile_keys<H: Harness>(h: &H) {
    let s = h.open().await;
    let long = "x".repeat(crate::MAX_SEGMENT_LEN + 1);
    let many = vec!["s"; crate::MAX_SEGMENTS + 1].join(":");
    for raw in HOSTILE_KEYS
        .iter()
        .copied()
        .chain([long.as_str(), many.as_str()])
    {
        match Key::new(raw) {
            Err(StoreError::InvalidKey { .. }) => {}
            other => panic!("{raw:?} was not rejected: {other:?}"),
        }
        let decoded: Result<Key, _> = postcard::from_bytes(&postcard::to_stdvec(raw).unwrap());
        assert!(
            raw.is_empty() || decoded.is_err(),
            "{raw:?} decoded as a key"
        );
    }
    assert_empty(&s).await;
    assert_sandbox_clean(h);
}

/// Unusual but valid keys (`...`, `.hidden`, `x.val:y`, 128-byte segments, 32 segments) stay
/// inside the store's directory.
pub async fn nothing_written_outside_root<H: Harness>(h: &H) {
    let s = h.open().await;
    let long_seg = "L".repeat(crate::MAX_SEGMENT_LEN);
    let deep = vec!["d"; crate::MAX_SEGMENTS].join(":");
    let keys = [
        "...".to_owned(),
        "..a".to_owned(),
        ".hidden".to_owned(),
        "a..b:...:c".to_owned(),
        "x.val:y".to_owned(),
        "-:_".to_owned(),
        long_seg.clone(),
        format!("{long_seg}:{long_seg}"),
        deep,
    ];
    for key in &keys {
        s.put(&k(key), key.as_bytes()).await.unwrap();
        assert_eq!(
            s.get(&k(key)).await.unwrap().as_deref(),
            Some(key.as_bytes())
        );
    }
    // The longest possible key either works or is refused cleanly by the backend.
    let longest = vec![long_seg.as_str(); crate::MAX_SEGMENTS].join(":");
    match s.put(&k(&longest), b"v").await {
        Ok(()) => assert_eq!(
            s.get(&k(&longest)).await.unwrap().as_deref(),
            Some(&b"v"[..])
        ),
        Err(StoreError::InvalidKey {
            problem: KeyProblem::TooLongForBackend,
            ..
        }) => {}
        Err(e) => panic!("longest key failed: {e}"),
    }
    assert_sandbox_clean(h);
}

fn assert_sandbox_clean<H: Harness>(h: &H) {
    if let Some(sandbox) = h.sandbox() {
        let entries: Vec<_> = std::fs::read_dir(sandbox)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            entries.len() <= 1,
            "store wrote outside its root: {entries:?}"
        );
    }
}

/// A batch applies its operations in order.
pub async fn batch_applies_in_order<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("b:old"), b"1").await.unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put(k("b:1"), b"first".to_vec())
        .put(k("b:1"), b"second".to_vec())
        .put(k("b:2"), b"gone".to_vec())
        .delete(k("b:2"))
        .delete(k("b:old"))
        .delete(k("b:never"));
    s.write_batch(batch).await.unwrap();
    assert_eq!(
        s.get(&k("b:1")).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(s.list(&k("b")).await.unwrap(), vec![k("b:1")]);
    s.write_batch(WriteBatch::new()).await.unwrap();
}

/// Where the store claims atomic batches, a concurrent reader never sees part of a batch.
pub async fn batch_is_atomic<H: Harness>(h: &H) {
    let s = Arc::new(h.open().await);
    if !s.capabilities().atomic_batch {
        return;
    }
    let (ka, kb) = (k("atomic:a"), k("atomic:b"));
    let mut init = WriteBatch::new();
    init.put(ka.clone(), 0_u32.to_le_bytes().to_vec())
        .put(kb.clone(), 0_u32.to_le_bytes().to_vec());
    s.write_batch(init).await.unwrap();
    let writer = {
        let (s, ka, kb) = (Arc::clone(&s), ka.clone(), kb.clone());
        tokio::spawn(async move {
            for i in 1..=300_u32 {
                let mut b = WriteBatch::new();
                b.put(ka.clone(), i.to_le_bytes().to_vec())
                    .put(kb.clone(), i.to_le_bytes().to_vec());
                s.write_batch(b).await.unwrap();
            }
        })
    };
    // Read b before a: a batch seen in b is complete in a too, so a >= b always holds.
    let mut checks = 0;
    while !writer.is_finished() || checks < 10 {
        let b = s.get(&kb).await.unwrap().unwrap();
        let a = s.get(&ka).await.unwrap().unwrap();
        let (a, b) = (
            u32::from_le_bytes(a.try_into().unwrap()),
            u32::from_le_bytes(b.try_into().unwrap()),
        );
        assert!(a >= b, "saw part of a batch: a={a} b={b}");
        checks += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let a = s.get(&ka).await.unwrap();
    assert_eq!(a, s.get(&kb).await.unwrap());
}

/// Flush succeeds and keeps every value.
pub async fn flush_keeps_values<H: Harness>(h: &H) {
    let s = h.open().await;
    s.put(&k("f"), b"1").await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.get(&k("f")).await.unwrap().as_deref(), Some(&b"1"[..]));
}

/// A persistent store returns every value after being dropped and opened again.
pub async fn reopen_keeps_data<H: Harness>(h: &H) {
    let s = h.open().await;
    if !s.capabilities().persistent {
        return;
    }
    s.put(&k("r:1"), b"one").await.unwrap();
    s.put(&k("r:2"), b"two").await.unwrap();
    s.put(&k("r:3"), b"three").await.unwrap();
    s.delete(&k("r:3")).await.unwrap();
    s.flush().await.unwrap();
    drop(s);
    let s = h.open().await;
    assert_eq!(
        s.get(&k("r:1")).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(s.list(&k("r")).await.unwrap(), vec![k("r:1"), k("r:2")]);
}

/// Many tasks at once: distinct keys all land; writers racing on one key leave one complete value.
pub async fn concurrent_tasks<H: Harness>(h: &H) {
    let s = Arc::new(h.open().await);
    let mut tasks = Vec::new();
    for t in 0..16_u8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..20_u8 {
                s.put(&k(&format!("c:{t}:{i}")), &[t, i]).await.unwrap();
                s.put(&k("c-shared"), &vec![t; 4096 + usize::from(t)])
                    .await
                    .unwrap();
                let _ = s.list(&k("c")).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(s.list(&k("c")).await.unwrap().len(), 16 * 20);
    for t in 0..16_u8 {
        for i in 0..20_u8 {
            assert_eq!(
                s.get(&k(&format!("c:{t}:{i}"))).await.unwrap(),
                Some(vec![t, i])
            );
        }
    }
    let shared = s.get(&k("c-shared")).await.unwrap().unwrap();
    let t = shared[0];
    assert_eq!(shared.len(), 4096 + usize::from(t));
    assert!(
        shared.iter().all(|&b| b == t),
        "value under c-shared is a mix of writers"
    );
}

/// One step of the model test.
#[derive(Debug, Clone)]
pub enum Op {
    /// put(key, value)
    Put(String, Vec<u8>),
    /// delete(key)
    Delete(String),
    /// get(key) compared with the model
    Get(String),
    /// list(prefix) compared with the model
    List(String),
    /// write_batch of puts (`Some`) and deletes (`None`)
    Batch(Vec<(String, Option<Vec<u8>>)>),
    /// drop and reopen the store (persistent stores only)
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec!["a", "b", "ab", "x.val", "x", "0"]);
    prop::collection::vec(seg, 1..=3).prop_map(|v| v.join(":"))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let value = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        4 => (key_strategy(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key_strategy().prop_map(Op::Delete),
        2 => key_strategy().prop_map(Op::Get),
        2 => key_strategy().prop_map(Op::List),
        1 => prop::collection::vec((key_strategy(), prop::option::of(value)), 0..6).prop_map(Op::Batch),
        1 => Just(Op::Reopen),
    ]
}

/// Applies `ops` to a fresh store and to a `BTreeMap`, comparing every read and the final state.
pub async fn check_against_model<H: Harness>(h: &H, ops: &[Op]) -> Result<(), String> {
    let mut store = h.open().await;
    let mut model: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| Err(format!("step {step} {op:?}: {what}"));
        match op {
            Op::Put(key, v) => {
                store.put(&k(key), v).await.map_err(|e| e.to_string())?;
                model.insert(k(key), v.clone());
            }
            Op::Delete(key) => {
                store.delete(&k(key)).await.map_err(|e| e.to_string())?;
                model.remove(&k(key));
            }
            Op::Get(key) => {
                let got = store.get(&k(key)).await.map_err(|e| e.to_string())?;
                if got.as_ref() != model.get(&k(key)) {
                    return fail(format!("got {got:?}, model {:?}", model.get(&k(key))));
                }
            }
            Op::List(prefix) => {
                let got = store.list(&k(prefix)).await.map_err(|e| e.to_string())?;
                let want: Vec<Key> = model
                    .keys()
                    .filter(|x| x.starts_with(&k(prefix)))
                    .cloned()
                    .collect();
                if got != want {
                    return fail(format!("got {got:?}, model {want:?}"));
                }
            }
            Op::Batch(entries) => {
                let mut batch = WriteBatch::new();
                for (key, v) in entries {
                    match v {
                        Some(v) => {
                            batch.put(k(key), v.clone());
                            model.insert(k(key), v.clone());
                        }
                        None => {
                            batch.delete(k(key));
                            model.remove(&k(key));
                        }
                    }
                }
                store.write_batch(batch).await.map_err(|e| e.to_string())?;
            }
            Op::Reopen => {
                if store.capabilities().persistent {
                    drop(store);
                    store = h.open().await;
                }
            }
        }
    }
    let all = store.list(&Key::root()).await.map_err(|e| e.to_string())?;
    let want: Vec<Key> = model.keys().cloned().collect();
    if all != want {
        return Err(format!("final keys {all:?}, model {want:?}"));
    }
    for (key, v) in &model {
        if store.get(key).await.map_err(|e| e.to_string())?.as_ref() != Some(v) {
            return Err(format!("final value of {key} differs"));
        }
    }
    Ok(())
}

/// Runs the model test for `cases` random sequences, each on a fresh harness from `make`.
///
/// # Panics
/// With the shrunk failing sequence if the store disagrees with the model.
pub fn model_matches_btreemap<H: Harness, F: Fn() -> H>(make: F, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..40), |ops| {
        let h = make();
        runtime
            .block_on(check_against_model(&h, &ops))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("store disagrees with the BTreeMap model: {e}");
    }
}

/// Expands to one named `#[test]` per conformance case, each on a fresh harness from `$make`.
///
/// `$make` is an expression evaluated once per test (and once per model case). An optional
/// second argument sets the number of model-test cases (default 64).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, 64);
    };
    ($make:expr, $cases:expr) => {
        $crate::conformance_tests!(@cases $make;
            put_then_get, get_missing_is_none, overwrite_replaces_value, delete_removes_value,
            delete_missing_is_ok, empty_value_round_trips, large_value_round_trips,
            binary_values_round_trip, list_is_sorted_and_complete, list_matches_whole_segments,
            list_root_lists_everything, file_and_directory_keys_coexist,
            root_key_rejected_for_values, rejects_hostile_keys, nothing_written_outside_root,
            batch_applies_in_order, batch_is_atomic, flush_keeps_values, reopen_keeps_data,
            concurrent_tasks);
        #[test]
        fn model_matches_btreemap() {
            $crate::testing::model_matches_btreemap(|| $make, $cases);
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let harness = $make;
                $crate::testing::block_on($crate::testing::$case(&harness));
            }
        )*
    };
}
