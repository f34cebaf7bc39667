//! The metrics exposition parses, and each metric moves when its event happens.

use std::collections::BTreeMap;

use varpulis_store::Key;
use varpulis_tenant::{QuotaTier, TenantError};

use super::{COUNT, clock, memory, open, second, txn};

/// `name{labels}` -> value, for every sample line; panics on a line that is not one.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        out.insert(name.to_owned(), value);
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    out
}

fn sum(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn each_metric_moves_when_its_event_happens() {
    let store = memory();
    let c = clock();
    let r = open(&store, &c).await;
    let (t, _) = r
        .create_tenant("t", Some(QuotaTier::Free))
        .await
        .expect("tenant");
    let p = r.create_pipeline(&t.id, "p", COUNT).await.expect("p").id;
    let late = r
        .create_pipeline(
            &t.id,
            "late",
            "stream W = Txn .window(1s) .aggregate(n: count())",
        )
        .await
        .expect("late")
        .id;
    let before = samples(&r.prometheus());
    r.process(&t.id, &p, (0..5).map(|i| txn(i, 1)).collect(), None)
        .await
        .expect("batch");
    r.process(&t.id, &late, vec![txn(10_000, 1), txn(1, 1)], None)
        .await
        .expect("late batch");
    let err = r
        .process(&t.id, &p, (0..200).map(|i| txn(i, 1)).collect(), None)
        .await;
    assert!(
        matches!(err, Err(TenantError::RateLimited { .. })),
        "{err:?}"
    );
    c.advance(60 * second());
    r.checkpoint(&t.id, &p).await.expect("checkpoint");
    let after = samples(&r.prometheus());
    let moved = |prefix: &str| sum(&after, prefix) - sum(&before, prefix);
    assert_eq!(moved("varpulis_events_in_total"), 7.0);
    assert_eq!(moved("varpulis_output_events_total"), 1.0);
    assert_eq!(moved("varpulis_late_events_dropped_total"), 1.0);
    assert_eq!(moved("varpulis_rejected_requests_total{"), 1.0);
    assert!(
        after.keys().any(|k| k.contains("reason=\"rate_limited\"")),
        "{after:?}"
    );
    assert_eq!(moved("varpulis_checkpoint_duration_seconds_count"), 1.0);
    assert!(moved("varpulis_checkpoint_bytes") > 0.0);
    assert!(moved("varpulis_ingest_log_bytes_total") > 0.0);
    assert_eq!(moved("varpulis_ingest_append_duration_seconds_count"), 2.0);
    assert_eq!(sum(&after, "varpulis_active_pipelines"), 2.0);
    // A fallback after a damaged checkpoint, at the next start.
    r.process(&t.id, &p, vec![txn(9, 1)], None)
        .await
        .expect("batch");
    r.checkpoint(&t.id, &p).await.expect("second checkpoint");
    drop(r);
    let prefix = Key::new(format!("varpulis-server:cp:{}:{p}", t.id)).expect("key");
    let newest = store
        .list(&prefix)
        .await
        .expect("list")
        .into_iter()
        .filter(|k| k.to_string().contains("manifest"))
        .max_by_key(ToString::to_string)
        .expect("a manifest");
    let mut blob = store.get(&newest).await.expect("get").expect("present");
    blob[0] ^= 0xff;
    store.put(&newest, &blob).await.expect("put");
    let r = open(&store, &c).await;
    let restarted = samples(&r.prometheus());
    assert_eq!(sum(&restarted, "varpulis_checkpoint_fallbacks_total"), 1.0);
}
