//! Output events are numbered per pipeline and retained, across restarts, so a reader resumes.

use varpulis_core::Event;
use varpulis_tenant::{OUTPUT_RETENTION_EVENTS, QuotaTier};

use super::{clock, memory, open, second, txn};

const ALL: &str = "stream All = Txn .where(amount > 0)";

fn events(from: i64, n: i64) -> Vec<Event> {
    (from..from + n).map(|i| txn(i, i + 1)).collect()
}

#[tokio::test]
async fn outputs_keep_their_numbers_across_a_checkpoint_and_a_kill_9() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Pro))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", ALL).await.expect("p").id;
    r.process(&t.id, &p, events(0, 3), None)
        .await
        .expect("batch");
    c.advance(60 * second());
    r.checkpoint_due().await.expect("checkpoint");
    r.process(&t.id, &p, events(3, 2), None)
        .await
        .expect("batch");
    let before = r.outputs(&t.id, &p, 1, 100).await.expect("outputs");
    assert_eq!(
        before.outputs.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(before.next, 6);
    drop(r);
    let r = open(&store, &c).await;
    let after = r.outputs(&t.id, &p, 1, 100).await.expect("outputs");
    assert_eq!(
        after.outputs, before.outputs,
        "chunk before the checkpoint + replay after it"
    );
    // A subscription from seq 4 gets 4 and 5 from the retained outputs, then the live ones.
    let mut sub = r.subscribe(&t.id, &p, Some(4)).await.expect("subscribe");
    assert_eq!(
        sub.backlog.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [4, 5]
    );
    assert!(sub.gap.is_none());
    r.process(&t.id, &p, events(5, 1), None)
        .await
        .expect("batch");
    let (seq, e) = sub.live.recv().await.expect("live");
    assert_eq!(seq, 6);
    assert_eq!(e.timestamp_ms(), 5);
}

#[tokio::test]
async fn a_reader_behind_the_retention_is_told_where_it_can_resume() {
    let c = clock();
    let r = open(&memory(), &c).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Enterprise))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", ALL).await.expect("p").id;
    let n = i64::try_from(OUTPUT_RETENTION_EVENTS).expect("small") + 10;
    r.process(&t.id, &p, events(0, n), None)
        .await
        .expect("batch");
    let page = r.outputs(&t.id, &p, 1, 5).await.expect("outputs");
    assert!(page.gap);
    assert_eq!(page.first_available, 11);
    assert_eq!(page.outputs.first().map(|(s, _)| *s), Some(11));
    assert_eq!(page.next, 16);
    let sub = r.subscribe(&t.id, &p, Some(1)).await.expect("subscribe");
    let gap = sub.gap.expect("a gap");
    assert_eq!((gap.requested, gap.first_available), (1, 11));
    assert_eq!(sub.backlog.len(), OUTPUT_RETENTION_EVENTS);
}
