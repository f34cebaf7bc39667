//! The exported checkpoint text: it restores; anything else is refused and changes nothing.

use varpulis_core::Value;
use varpulis_tenant::TenantError;

use super::{clock, memory, open, txn};

#[tokio::test]
async fn a_checkpoint_text_restores_and_a_crafted_one_is_refused_without_harm() {
    let r = open(&memory(), &clock()).await;
    let (t, _) = r.create_tenant("t", None).await.expect("tenant");
    let p = r
        .create_pipeline(
            &t.id,
            "a",
            "stream C = Txn .window(3) .aggregate(n: count())",
        )
        .await
        .expect("pipeline")
        .id;
    let other = r
        .create_pipeline(
            &t.id,
            "b",
            "stream D = Txn .partition_by(k) .window(5s) .aggregate(s: sum(amount))",
        )
        .await
        .expect("pipeline")
        .id;
    r.process(&t.id, &other, vec![txn(1, 1).with_field("k", "x")], None)
        .await
        .expect("batch");
    r.process(&t.id, &p, vec![txn(1, 1), txn(2, 1)], None)
        .await
        .expect("batch");
    let text = r.checkpoint(&t.id, &p).await.expect("checkpoint");
    let foreign = r.checkpoint(&t.id, &other).await.expect("checkpoint");
    let mut flipped = text.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    for bad in [
        "",
        "not hex",
        "00",
        &text[..text.len() / 2],
        &flipped,
        &foreign,
    ] {
        let err = r.restore(&t.id, &p, bad).await.expect_err("refused");
        assert!(
            matches!(err, TenantError::InvalidCheckpoint { .. }),
            "{bad:.16}: {err:?}"
        );
    }
    // Unchanged: the third event closes the window of three.
    let out = r
        .process(&t.id, &p, vec![txn(3, 1)], None)
        .await
        .expect("batch");
    assert_eq!(out.outputs.len(), 1);
    // Back to two events in the window; one more closes it again.
    r.restore(&t.id, &p, &text).await.expect("restore");
    let out = r
        .process(&t.id, &p, vec![txn(4, 1)], None)
        .await
        .expect("batch");
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0].get("n"), Some(&Value::Int(3)));
}
