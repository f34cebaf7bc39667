//! A registry dropped without shutdown (a kill -9: every acknowledged write is in the store)
//! or shut down, then opened again on the same store.

use std::sync::Arc;

use varpulis_core::Value;
use varpulis_store::{FileStore, StateStore};
use varpulis_tenant::{PipelineStatus, QuotaTier, Registry};

use super::{COUNT, SESSION, click, clock, field, memory, open, second, txn};

struct Flow {
    acme: varpulis_tenant::TenantId,
    key: String,
    count: varpulis_tenant::PipelineId,
    session: varpulis_tenant::PipelineId,
}

async fn first_half(r: &Registry) -> Flow {
    let (acme, key) = r
        .create_tenant("acme", Some(QuotaTier::Pro))
        .await
        .expect("tenant");
    let count = r
        .create_pipeline(&acme.id, "totals", COUNT)
        .await
        .expect("count")
        .id;
    let session = r
        .create_pipeline(&acme.id, "sessions", SESSION)
        .await
        .expect("session")
        .id;
    let out = r
        .process(&acme.id, &count, vec![txn(1_000, 10), txn(2_000, 20)], None)
        .await
        .expect("batch");
    assert!(out.outputs.is_empty());
    let out = r
        .process(
            &acme.id,
            &session,
            vec![click(1_000, 100), click(2_000, 100)],
            None,
        )
        .await
        .expect("batch");
    assert!(out.outputs.is_empty());
    Flow {
        acme: acme.id,
        key: key.expose().to_owned(),
        count,
        session,
    }
}

async fn middle(r: &Registry, f: &Flow) {
    r.process(&f.acme, &f.count, vec![txn(3_000, 30)], None)
        .await
        .expect("batch");
}

async fn second_half(
    r: &Registry,
    f: &Flow,
) -> (Vec<varpulis_core::Event>, Vec<varpulis_core::Event>) {
    let count = r
        .process(
            &f.acme,
            &f.count,
            vec![txn(4_000, 40), txn(5_000, 50)],
            None,
        )
        .await
        .expect("batch");
    let session = r
        .process(
            &f.acme,
            &f.session,
            vec![click(3_000, 100), click(60_000, 1)],
            None,
        )
        .await
        .expect("batch");
    (count.outputs, session.outputs)
}

async fn uninterrupted() -> (Vec<varpulis_core::Event>, Vec<varpulis_core::Event>) {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let f = first_half(&r).await;
    middle(&r, &f).await;
    second_half(&r, &f).await
}

/// Runs the flow with a stop between the halves; `checkpoint_first` takes a periodic
/// checkpoint before the last event of the first half (so the restart restores it and
/// replays the log after it).
async fn with_restart(store: Arc<dyn StateStore>, graceful: bool, checkpoint_first: bool) {
    let c = clock();
    let r = open(&store, &c).await;
    let f = first_half(&r).await;
    if checkpoint_first {
        c.advance(60 * second());
        r.checkpoint_due().await.expect("checkpoints");
        assert!(r.metrics(&f.acme, &f.count).expect("metrics").checkpoints >= 1);
    }
    middle(&r, &f).await;
    let usage = r.usage(&f.acme).expect("usage");
    if graceful {
        r.shutdown().await.expect("shutdown");
    }
    drop(r);
    let r = open(&store, &c).await;
    assert!(r.ready());
    assert_eq!(
        r.authenticate(&f.key),
        Some(f.acme.clone()),
        "the key still works"
    );
    let info = r.tenant(&f.acme).expect("tenant");
    assert_eq!(info.name, "acme");
    assert_eq!(info.tier, Some(QuotaTier::Pro));
    // State bytes are approximate (capacities differ after a restore): counters are exact.
    let counters = |u: varpulis_tenant::Usage| (u.events_in, u.output_events, u.active_pipelines);
    assert_eq!(counters(info.usage), counters(usage), "usage is back");
    assert!(info.usage.state_bytes > 0);
    assert_eq!(usage.events_in, 5);
    let pipelines = r.list_pipelines(&f.acme).expect("pipelines");
    assert_eq!(pipelines.len(), 2);
    assert!(
        pipelines
            .iter()
            .all(|p| p.status == PipelineStatus::Running)
    );
    let (count, session) = second_half(&r, &f).await;
    assert_eq!(count.len(), 1);
    assert_eq!(field(&count[0], "n"), Value::Int(5));
    assert_eq!(field(&count[0], "sum").as_f64(), Some(150.0));
    assert_eq!(session.len(), 1);
    assert_eq!(field(&session[0], "n"), Value::Int(3));
    assert_eq!(field(&session[0], "sum").as_f64(), Some(300.0));
    assert_eq!((count, session), uninterrupted().await);
}

#[tokio::test]
async fn a_registry_dropped_without_shutdown_loses_nothing_acknowledged() {
    with_restart(memory(), false, false).await;
}

#[tokio::test]
async fn a_restart_restores_the_checkpoint_and_replays_the_log_after_it() {
    with_restart(memory(), false, true).await;
}

#[tokio::test]
async fn a_graceful_shutdown_checkpoints_and_the_restart_continues() {
    with_restart(memory(), true, true).await;
}

#[tokio::test]
async fn the_file_store_keeps_everything_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn StateStore> = Arc::new(FileStore::open(dir.path()).expect("file store"));
    with_restart(store, false, true).await;
}

#[tokio::test]
async fn the_log_is_trimmed_up_to_the_checkpoint_before_the_newest() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let f = first_half(&r).await;
    let logs = || async {
        let root = varpulis_store::Key::new("varpulis-server:log").expect("key");
        store.list(&root).await.expect("list").len()
    };
    assert_eq!(logs().await, 2, "one entry per acknowledged batch");
    r.shutdown().await.expect("first checkpoints");
    assert_eq!(
        logs().await,
        2,
        "kept: the newest checkpoint could be damaged"
    );
    middle(&r, &f).await;
    r.shutdown().await.expect("second checkpoints");
    // The count pipeline keeps only its batch after its first checkpoint; the session
    // pipeline took nothing since, so it was not checkpointed again and keeps its entry.
    assert_eq!(logs().await, 2, "what came after the first checkpoints");
}

#[tokio::test]
async fn the_log_is_kept_behind_the_oldest_retained_checkpoint_so_two_damaged_ones_lose_nothing() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r
        .create_tenant("t", Some(varpulis_tenant::QuotaTier::Pro))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
    let logs = || async {
        let root = varpulis_store::Key::new("varpulis-server:log").expect("key");
        store.list(&root).await.expect("list").len()
    };
    // Five batches, a checkpoint after each; three checkpoints are retained (the default).
    for (k, expected) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)] {
        r.process(&t.id, &p, vec![txn(k, k)], None)
            .await
            .expect("batch");
        r.checkpoint(&t.id, &p).await.expect("checkpoint");
        assert_eq!(logs().await, expected, "log entries after checkpoint {k}");
    }
    drop(r);
    // Damage the two newest manifests: recovery falls back to the third, the oldest retained,
    // and replays the two entries after it.
    let prefix = varpulis_store::Key::new(format!("varpulis-server:cp:{}:{p}", t.id)).expect("key");
    let mut manifests: Vec<_> = store
        .list(&prefix)
        .await
        .expect("list")
        .into_iter()
        .filter(|k| k.to_string().contains("manifest"))
        .collect();
    manifests.sort_by_key(ToString::to_string);
    assert_eq!(manifests.len(), 3, "{manifests:?}");
    for key in &manifests[1..] {
        let mut blob = store.get(key).await.expect("get").expect("present");
        let last = blob.len() - 1;
        blob[last] ^= 0xff;
        store.put(key, &blob).await.expect("put");
    }
    let r = open(&store, &c).await;
    assert_eq!(
        r.metrics(&t.id, &p).expect("m").events_in,
        5,
        "nothing lost"
    );
    let out = r
        .process(&t.id, &p, (6..=10).map(|k| txn(k, k)).collect(), None)
        .await
        .expect("batch");
    // Events 1-5 filled the first window (emitted before the crash); 6-10 fill the second
    // exactly: had the fallback lost or repeated an event, it would be off.
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(field(&out.outputs[0], "sum"), Value::Int(40));
    assert_eq!(field(&out.outputs[0], "n"), Value::Int(5));
}

#[tokio::test]
async fn a_damaged_newest_checkpoint_falls_back_and_replays_every_acknowledged_batch() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let f = first_half(&r).await;
    r.shutdown().await.expect("first checkpoints");
    middle(&r, &f).await;
    r.shutdown().await.expect("second checkpoints");
    drop(r);
    // Damage the newest manifest of the count pipeline.
    let prefix = varpulis_store::Key::new(format!("varpulis-server:cp:{}:{}", f.acme, f.count))
        .expect("key");
    let keys = store.list(&prefix).await.expect("list");
    let newest = keys
        .iter()
        .filter(|k| k.to_string().contains("manifest"))
        .max_by_key(|k| k.to_string())
        .expect("a manifest")
        .clone();
    let mut blob = store.get(&newest).await.expect("get").expect("present");
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    store.put(&newest, &blob).await.expect("put");
    let r = open(&store, &c).await;
    assert_eq!(r.metrics(&f.acme, &f.count).expect("m").events_in, 3);
    let (count, session) = second_half(&r, &f).await;
    assert_eq!((count, session), uninterrupted().await);
}

#[tokio::test]
async fn the_data_an_interrupted_deletion_left_is_swept_at_the_next_start() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let f = first_half(&r).await;
    r.shutdown().await.expect("checkpoints");
    drop(r);
    let keys_of = |p: String| {
        let store = Arc::clone(&store);
        async move {
            let root = varpulis_store::Key::new("varpulis-server").expect("key");
            store
                .list(&root)
                .await
                .expect("list")
                .into_iter()
                .filter(|k| k.to_string().contains(&p))
                .count()
        }
    };
    let count_keys = keys_of(f.count.to_string()).await;
    let session_keys = keys_of(f.session.to_string()).await;
    assert!(
        count_keys > 3 && session_keys > 3,
        "{count_keys} {session_keys}"
    );
    // A deletion interrupted right after its first write: the record is gone, the data not.
    let record =
        varpulis_store::Key::new(format!("varpulis-server:pipeline:{}:{}", f.acme, f.count))
            .expect("key");
    store.delete(&record).await.expect("delete");
    let r = open(&store, &c).await;
    assert_eq!(
        keys_of(f.count.to_string()).await,
        0,
        "the orphan's log, outputs and checkpoints"
    );
    assert_eq!(
        keys_of(f.session.to_string()).await,
        session_keys,
        "the other pipeline's kept"
    );
    assert_eq!(r.list_pipelines(&f.acme).expect("list").len(), 1);
}
