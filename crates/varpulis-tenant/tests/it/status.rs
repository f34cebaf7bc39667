//! The status page's view: each pipeline's status, counters and bounded checkpoint history,
//! recorded at each commit and seeded from the store after a restart.

use varpulis_engine::clock::Clock;
use varpulis_tenant::{CHECKPOINT_HISTORY, PipelineStatus, QuotaTier, TenantError, TenantId};

use super::{COUNT, clock, memory, open, second, txn};

#[tokio::test]
async fn status_shows_each_pipeline_with_its_counters_and_checkpoints() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r.create_tenant("acme", None).await.expect("tenant");
    let p = r
        .create_pipeline(&t.id, "totals", COUNT)
        .await
        .expect("p")
        .id;
    // Pipelines created in the same millisecond have no order of their own.
    c.advance(second());
    let idle = r
        .create_pipeline(&t.id, "idle", COUNT)
        .await
        .expect("idle")
        .id;
    r.process(&t.id, &p, (0..7).map(|i| txn(i, 1)).collect(), None)
        .await
        .expect("batch");

    let before = r.tenant_status(&t.id).expect("status");
    assert_eq!(before.name, "acme");
    let names: Vec<_> = before
        .pipelines
        .iter()
        .map(|p| p.info.name.as_str())
        .collect();
    assert_eq!(names, ["totals", "idle"], "oldest first");
    let totals = &before.pipelines[0];
    assert_eq!(totals.info.status, PipelineStatus::Running);
    assert_eq!(totals.metrics.events_in, 7);
    assert_eq!(totals.metrics.output_events, 1);
    assert!(totals.checkpoints.is_empty(), "no checkpoint yet");
    assert!(totals.last_checkpoint().is_none());

    let t0 = c.now_ms();
    r.checkpoint(&t.id, &p).await.expect("checkpoint");
    c.advance(5 * second());
    r.checkpoint(&t.id, &p).await.expect("checkpoint");
    let after = r.tenant_status(&t.id).expect("status");
    let totals = &after.pipelines[0];
    let history = &totals.checkpoints;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[0].id < history[1].id, "oldest first: {history:?}");
    assert_eq!(history[0].created_ms, t0);
    assert_eq!(history[1].created_ms, t0 + 5_000);
    assert!(history.iter().all(|s| s.bytes > 0 && s.duration.is_some()));
    assert_eq!(
        totals.last_checkpoint().map(|s| s.id),
        totals.metrics.last_checkpoint_id,
        "the newest sample is the pipeline's last checkpoint"
    );
    assert!(after.pipelines[1].checkpoints.is_empty(), "idle: {idle}");
}

#[tokio::test]
async fn history_keeps_only_the_newest_checkpoints() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r.create_tenant("t", None).await.expect("tenant");
    let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
    let extra = 8;
    for i in 0..CHECKPOINT_HISTORY + extra {
        r.process(&t.id, &p, vec![txn(i as i64, 1)], None)
            .await
            .expect("batch");
        r.checkpoint(&t.id, &p).await.expect("checkpoint");
    }
    let s = r.tenant_status(&t.id).expect("status");
    let history = &s.pipelines[0].checkpoints;
    assert_eq!(history.len(), CHECKPOINT_HISTORY);
    assert_eq!(
        history.last().map(|s| s.id),
        s.pipelines[0].metrics.last_checkpoint_id
    );
    assert!(history.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test]
async fn history_after_a_restart_holds_the_stored_checkpoints_without_durations() {
    let store = memory();
    let c = clock();
    let (tenant, p, before) = {
        let r = open(&store, &c).await;
        let (t, _) = r.create_tenant("t", None).await.expect("tenant");
        let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
        for i in 0..5 {
            r.process(&t.id, &p, vec![txn(i, 1)], None)
                .await
                .expect("batch");
            c.advance(second());
            r.checkpoint(&t.id, &p).await.expect("checkpoint");
        }
        let before = r.tenant_status(&t.id).expect("status").pipelines[0]
            .checkpoints
            .clone();
        (t.id, p, before)
    };
    // Dropped without shutdown: the store keeps the newest 3 (the default retention).
    let r = open(&store, &c).await;
    let s = r.tenant_status(&tenant).expect("status");
    let seeded = &s.pipelines[0].checkpoints;
    assert_eq!(seeded.len(), 3, "{seeded:?}");
    for (got, want) in seeded.iter().zip(&before[before.len() - 3..]) {
        assert_eq!((got.id, got.created_ms), (want.id, want.created_ms));
        assert_eq!(got.bytes, want.bytes, "the size as the commit reported it");
        assert_eq!(got.duration, None, "not timed by this process");
    }
    r.checkpoint(&tenant, &p).await.expect("checkpoint");
    let s = r.tenant_status(&tenant).expect("status");
    let history = &s.pipelines[0].checkpoints;
    assert_eq!(history.len(), 4);
    assert!(history[3].duration.is_some() && history[3].id > history[2].id);
}

#[tokio::test]
async fn the_operators_status_lists_every_tenant_with_its_pipelines() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (a, _) = r
        .create_tenant("a", Some(QuotaTier::Free))
        .await
        .expect("a");
    c.advance(second());
    let (b, _) = r.create_tenant("b", None).await.expect("b");
    r.create_pipeline(&a.id, "pa", COUNT).await.expect("pa");
    r.create_pipeline(&b.id, "pb1", COUNT).await.expect("pb1");
    c.advance(second());
    r.create_pipeline(&b.id, "pb2", COUNT).await.expect("pb2");
    let all = r.status();
    let shown: Vec<(&str, Vec<&str>)> = all
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.pipelines.iter().map(|p| p.info.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(shown, [("a", vec!["pa"]), ("b", vec!["pb1", "pb2"])]);
    let only_a = r.tenant_status(&a.id).expect("a");
    assert_eq!(only_a.pipelines.len(), 1, "a tenant sees only its own");
}

#[tokio::test]
async fn status_of_an_unknown_tenant_is_not_found() {
    let store = memory();
    let r = open(&store, &clock()).await;
    let unknown: TenantId = "0".repeat(32).parse().expect("an id");
    let err = r.tenant_status(&unknown);
    assert!(matches!(err, Err(TenantError::TenantNotFound)), "{err:?}");
}
