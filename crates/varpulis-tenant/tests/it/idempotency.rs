//! Retried requests: the same key and request apply once, across restarts too.

use varpulis_tenant::{IDEMPOTENCY_KEYS, Idempotency, QuotaTier, TenantError};

use super::{COUNT, clock, memory, open, second, txn};

fn key<'a>(k: &'a str, request: &str) -> Option<Idempotency<'a>> {
    Some(Idempotency::of_bytes(k, request.as_bytes()))
}

#[tokio::test]
async fn a_retry_applies_nothing_and_gets_the_original_answer_also_after_a_restart() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Pro))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
    let events = |from: i64| (from..from + 5).map(|i| txn(i, 10)).collect::<Vec<_>>();
    let first = r
        .process(&t.id, &p, events(0), key("b-1", "one"))
        .await
        .expect("first");
    assert!(!first.replayed);
    assert_eq!(first.outputs.len(), 1);
    let again = r
        .process(&t.id, &p, events(0), key("b-1", "one"))
        .await
        .expect("retry");
    assert!(again.replayed);
    assert_eq!(again.accepted, 5);
    assert_eq!(again.outputs, first.outputs);
    assert_eq!(
        r.metrics(&t.id, &p).expect("m").events_in,
        5,
        "applied once"
    );
    // The same key for another request is a conflict, not a retry.
    let err = r
        .process(&t.id, &p, events(5), key("b-1", "two"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, TenantError::IdempotencyConflict { .. }),
        "{err:?}"
    );
    // Remembered across a kill -9 (key only in the log) ...
    r.process(&t.id, &p, events(5), key("b-2", "two"))
        .await
        .expect("second");
    drop(r);
    let r = open(&store, &c).await;
    for (k, req) in [("b-1", "one"), ("b-2", "two")] {
        let again = r
            .process(&t.id, &p, events(0), key(k, req))
            .await
            .expect("retry");
        assert!(again.replayed, "{k}");
    }
    // ... and across a checkpoint that trimmed the log.
    c.advance(60 * second());
    r.checkpoint_due().await.expect("checkpoint");
    drop(r);
    let r = open(&store, &c).await;
    let again = r
        .process(&t.id, &p, events(0), key("b-2", "two"))
        .await
        .expect("retry");
    assert!(again.replayed);
    assert_eq!(again.outputs.len(), 1);
    assert_eq!(r.metrics(&t.id, &p).expect("m").events_in, 10);
}

#[tokio::test]
async fn keys_are_remembered_for_a_bounded_count() {
    let c = clock();
    let r = open(&memory(), &c).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Enterprise))
        .await
        .expect("tenant");
    let p = r
        .create_pipeline(&t.id, "p", "stream A = Txn")
        .await
        .expect("p")
        .id;
    for i in 0..=IDEMPOTENCY_KEYS {
        let k = format!("k{i}");
        r.process(&t.id, &p, vec![txn(1, 1)], key(&k, "x"))
            .await
            .expect("batch");
    }
    // The oldest key is forgotten: its retry is applied again; a recent one is not.
    let old = r
        .process(&t.id, &p, vec![txn(1, 1)], key("k0", "x"))
        .await
        .expect("old");
    assert!(!old.replayed);
    let recent = format!("k{IDEMPOTENCY_KEYS}");
    let new = r
        .process(&t.id, &p, vec![txn(1, 1)], key(&recent, "x"))
        .await
        .expect("new");
    assert!(new.replayed);
    let err = r
        .process(&t.id, &p, vec![txn(1, 1)], key("", "x"))
        .await
        .expect_err("empty");
    assert!(
        matches!(err, TenantError::InvalidIdempotencyKey { .. }),
        "{err:?}"
    );
}
