//! Quotas and refusals: pipelines, streams, events per second, state bytes; batches all or
//! nothing; pipelines that no longer compile or are over quota at a restart.

use std::time::Duration;

use serde::Serialize;
use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_core::Event;
use varpulis_store::Key;
use varpulis_tenant::{PipelineStatus, QuotaTier, TenantError};

use super::{clock, memory, open, second, txn};

const ONE: &str = "stream A = Txn .where(amount > 0)";

#[tokio::test]
async fn a_free_tenant_is_refused_a_third_pipeline_and_a_sixth_stream() {
    let r = open(&memory(), &clock()).await;
    let (t, _) = r
        .create_tenant("free", Some(QuotaTier::Free))
        .await
        .expect("tenant");
    r.create_pipeline(&t.id, "a", ONE).await.expect("first");
    let six: String = (0..6).map(|i| format!("stream S{i} = Txn\n")).collect();
    let err = r
        .create_pipeline(&t.id, "b", &six)
        .await
        .expect_err("six streams");
    assert!(
        matches!(
            err,
            TenantError::QuotaExceeded {
                what: "streams",
                limit: 5,
                ..
            }
        ),
        "{err:?}"
    );
    let b = r.create_pipeline(&t.id, "b", ONE).await.expect("second").id;
    let err = r.create_pipeline(&t.id, "c", ONE).await.expect_err("third");
    assert!(
        matches!(
            err,
            TenantError::QuotaExceeded {
                what: "pipelines",
                limit: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = r
        .reload(&t.id, &b, &six)
        .await
        .expect_err("reload to six streams");
    assert!(
        matches!(
            err,
            TenantError::QuotaExceeded {
                what: "streams",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(r.pipeline(&t.id, &b).expect("b").source, ONE);
}

#[tokio::test]
async fn events_over_the_rate_are_refused_until_the_bucket_refills() {
    let c = clock();
    let r = open(&memory(), &c).await;
    let (t, _) = r
        .create_tenant("free", Some(QuotaTier::Free))
        .await
        .expect("tenant");
    let p = r
        .create_pipeline(&t.id, "a", ONE)
        .await
        .expect("pipeline")
        .id;
    let batch = |n: i64| (0..n).map(|i| txn(i, 1)).collect::<Vec<_>>();
    r.process(&t.id, &p, batch(100), None)
        .await
        .expect("a second's worth");
    let err = r
        .process(&t.id, &p, batch(1), None)
        .await
        .expect_err("over the rate");
    assert!(
        matches!(err, TenantError::RateLimited { retry_after_ms: 10 }),
        "{err:?}"
    );
    c.advance(Duration::from_millis(10));
    r.process(&t.id, &p, batch(1), None)
        .await
        .expect("refilled");
    assert_eq!(
        r.metrics(&t.id, &p).expect("metrics").events_in,
        101,
        "the refused batch is not counted"
    );
}

#[tokio::test]
async fn a_batch_with_an_event_the_engine_refuses_changes_nothing() {
    let r = open(&memory(), &clock()).await;
    let (t, _) = r.create_tenant("t", None).await.expect("tenant");
    let p = r
        .create_pipeline(
            &t.id,
            "a",
            "stream H = Txn .window(1h) .aggregate(n: count())",
        )
        .await
        .expect("pipeline")
        .id;
    let bad = vec![txn(1_000, 1), txn(2_000, 1), txn(i64::MAX - 1, 1)];
    let err = r
        .process(&t.id, &p, bad, None)
        .await
        .expect_err("an unrepresentable time");
    assert!(
        matches!(err, TenantError::InvalidEvent { index: 2, .. }),
        "{err:?}"
    );
    assert_eq!(r.metrics(&t.id, &p).expect("metrics").events_in, 0);
    // The window holds nothing of the refused batch: an hour of events counts only these.
    r.process(&t.id, &p, vec![txn(3_000, 1)], None)
        .await
        .expect("batch");
    let out = r
        .process(&t.id, &p, vec![txn(3_600_000, 1)], None)
        .await
        .expect("closing batch");
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0].get("n"), Some(&varpulis_core::Value::Int(1)));
}

/// Events whose partition keys are `len` bytes long, so state grows fast.
fn wide(from: usize, n: usize, len: usize) -> Vec<Event> {
    (from..from + n)
        .map(|i| {
            let i = i64::try_from(i).expect("small");
            Event::new("Txn", i)
                .with_field("k", format!("{i:0len$}"))
                .with_field("amount", 1)
        })
        .collect()
}

#[tokio::test]
async fn state_over_the_quota_refuses_further_events_and_the_pipeline_at_a_restart() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r
        .create_tenant("free", Some(QuotaTier::Free))
        .await
        .expect("tenant");
    let p = r
        .create_pipeline(
            &t.id,
            "wide",
            "stream W = Txn .partition_by(k) .window(1h) .aggregate(n: count())",
        )
        .await
        .expect("pipeline")
        .id;
    let quota = t.quota.max_state_bytes;
    let mut sent = 0;
    let refused = loop {
        c.advance(second());
        match r.process(&t.id, &p, wide(sent, 100, 4096), None).await {
            Ok(_) => sent += 100,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the state never reached the quota");
    };
    assert!(
        matches!(
            refused,
            TenantError::QuotaExceeded {
                what: "state_bytes",
                ..
            }
        ),
        "{refused:?}"
    );
    let used = r.usage(&t.id).expect("usage").state_bytes;
    assert!(used > quota, "{used} <= {quota}");
    r.shutdown().await.expect("shutdown");
    drop(r);
    let r = open(&store, &c).await;
    let info = r.pipeline(&t.id, &p).expect("pipeline");
    assert_eq!(info.status, PipelineStatus::Error);
    assert!(
        info.error
            .as_deref()
            .is_some_and(|e| e.contains("over quota")),
        "{info:?}"
    );
    let err = r
        .process(&t.id, &p, wide(0, 1, 1), None)
        .await
        .expect_err("not running");
    assert!(matches!(err, TenantError::NotRunning { .. }), "{err:?}");
}

/// The bytes of a pipeline record (format version 1), as `docs/design/state-format.md`
/// describes them: written here by hand to put a source that no longer compiles in place.
#[derive(Serialize)]
struct PipelineRecordV1<'a> {
    version: u32,
    id: &'a str,
    tenant: &'a str,
    name: &'a str,
    source: &'a str,
    created_ms: i64,
}

#[tokio::test]
async fn a_pipeline_that_no_longer_compiles_comes_back_in_error_with_its_source() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r.create_tenant("t", None).await.expect("tenant");
    let p = r.create_pipeline(&t.id, "a", ONE).await.expect("pipeline");
    r.process(&t.id, &p.id, vec![txn(1, 5)], None)
        .await
        .expect("batch");
    drop(r);
    let broken = "stream A = Txn .where(amount >)";
    let rec = PipelineRecordV1 {
        version: 1,
        id: p.id.as_str(),
        tenant: t.id.as_str(),
        name: "a",
        source: broken,
        created_ms: p.created_ms,
    };
    let key = Key::new(format!("varpulis-server:pipeline:{}:{}", t.id, p.id)).expect("key");
    assert!(
        store.get(&key).await.expect("get").is_some(),
        "the layout is as documented"
    );
    store
        .put(
            &key,
            &codec::encode(BlobKind::Pipeline, &rec).expect("encode"),
        )
        .await
        .expect("put");
    let r = open(&store, &c).await;
    let info = r.pipeline(&t.id, &p.id).expect("still there");
    assert_eq!(info.status, PipelineStatus::Error);
    assert_eq!(info.source, broken);
    assert!(
        info.error.as_deref().is_some_and(|e| e.contains("1:")),
        "{info:?}"
    );
    let err = r
        .process(&t.id, &p.id, vec![txn(2, 5)], None)
        .await
        .expect_err("not running");
    assert!(matches!(err, TenantError::NotRunning { .. }), "{err:?}");
    // Its acknowledged batch is still in the log, and a reload to a good source runs again.
    r.reload(&t.id, &p.id, ONE).await.expect("reload");
    assert_eq!(
        r.pipeline(&t.id, &p.id).expect("p").status,
        PipelineStatus::Running
    );
    assert_eq!(
        r.metrics(&t.id, &p.id).expect("m").events_in,
        1,
        "its logged batch is back"
    );
    let out = r
        .process(&t.id, &p.id, vec![txn(3, 5)], None)
        .await
        .expect("runs");
    assert_eq!(out.outputs.len(), 1);
}

#[tokio::test]
async fn a_restore_that_would_take_the_tenant_over_its_state_quota_is_refused() {
    let c = clock();
    let r = open(&memory(), &c).await;
    let (t, _) = r
        .create_tenant("free", Some(QuotaTier::Free))
        .await
        .expect("tenant");
    let program = "stream W = Txn .partition_by(k) .window(1h) .aggregate(n: count())";
    let p = r.create_pipeline(&t.id, "p", program).await.expect("p").id;
    let q = r.create_pipeline(&t.id, "q", program).await.expect("q").id;
    let half = t.quota.max_state_bytes / 2;
    let mut sent = 0;
    while r.usage(&t.id).expect("usage").state_bytes <= half {
        c.advance(second());
        r.process(&t.id, &p, wide(sent, 100, 4096), None)
            .await
            .expect("batch");
        sent += 100;
    }
    let text = r.checkpoint(&t.id, &p).await.expect("checkpoint");
    let empty = r.metrics(&t.id, &q).expect("q").state_bytes;
    let err = r.restore(&t.id, &q, &text).await.expect_err("over quota");
    assert!(
        matches!(
            err,
            TenantError::QuotaExceeded {
                what: "state_bytes",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        r.metrics(&t.id, &q).expect("q").state_bytes,
        empty,
        "nothing restored"
    );
    // The same state fits once p is gone.
    r.delete_pipeline(&t.id, &p).await.expect("delete");
    r.restore(&t.id, &q, &text).await.expect("restore");
}
