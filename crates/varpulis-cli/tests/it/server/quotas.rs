//! Quotas: pipelines, streams per pipeline and events per second, on create, reload and
//! restart. (State bytes, and quotas restored over the limit, are exercised with a manual
//! clock and small quotas in `varpulis-tenant`'s tests.)

use serde_json::json;

use super::{Auth, Flags, Server, events};

const ONE: &str = "stream A = Txn .where(amount > 0)";

fn streams(n: usize) -> String {
    (0..n)
        .map(|i| format!("stream S{i} = Txn .where(amount > {i})\n"))
        .collect()
}

#[test]
fn a_free_tenant_gets_two_pipelines_also_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = Flags::dir(&dir.path().join("state"));
    let server = Server::start(&flags);
    let (_, key) = server.tenant("free", Some("free"));
    server.pipeline(&key, "one", ONE);
    server.pipeline(&key, "two", ONE);
    let third = json!({"name": "three", "source": ONE});
    let r = server.call("POST", "/pipelines", Some(&third), Auth::Key(&key));
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json["code"], "quota_exceeded", "{r:?}");
    server.kill_9();
    let server = Server::start(&flags);
    let r = server.call("POST", "/pipelines", Some(&third), Auth::Key(&key));
    assert_eq!(r.status, 429, "after a restart: {r:?}");
    assert_eq!(r.json["code"], "quota_exceeded", "{r:?}");
    // Deleting one frees its place.
    let list = server.call("GET", "/pipelines", None, Auth::Key(&key)).json;
    let id = list["pipelines"][0]["id"].as_str().expect("id").to_owned();
    let r = server.call("DELETE", &format!("/pipelines/{id}"), None, Auth::Key(&key));
    assert_eq!(r.status, 200, "{r:?}");
    server.pipeline(&key, "three", ONE);
}

#[test]
fn a_free_tenant_gets_five_streams_per_pipeline_on_create_and_on_reload() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("free", Some("free"));
    let r = server.call(
        "POST",
        "/pipelines",
        Some(&json!({"name": "six", "source": streams(6)})),
        Auth::Key(&key),
    );
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json["code"], "quota_exceeded", "{r:?}");
    let p = server.pipeline(&key, "five", &streams(5));
    let r = server.call(
        "POST",
        &format!("/pipelines/{p}/reload"),
        Some(&json!({"source": streams(6)})),
        Auth::Key(&key),
    );
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json["code"], "quota_exceeded", "{r:?}");
    // The five-stream program still runs.
    let r = server.call("GET", &format!("/pipelines/{p}"), None, Auth::Key(&key));
    assert_eq!(r.json["source"], streams(5));
}

#[test]
fn a_free_tenant_flooding_past_100_events_a_second_is_told_when_to_retry() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("free", Some("free"));
    let (_, other) = server.tenant("other", None);
    let p = server.pipeline(&key, "p", ONE);
    let q = server.pipeline(&other, "q", ONE);
    let batch = events(
        "Txn",
        &(0..100)
            .map(|i| (i, json!({"amount": 1})))
            .collect::<Vec<_>>(),
    );
    let body = json!({ "events": batch });
    let path = format!("/pipelines/{p}/events-batch");
    // A full bucket takes one second's worth; the next batches come faster than it refills
    // (each request takes milliseconds), so one of them is refused.
    let replies: Vec<_> = (0..5)
        .map(|_| server.call("POST", &path, Some(&body), Auth::Key(&key)))
        .collect();
    assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
    let refused = replies
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no batch refused: {replies:?}"));
    assert_eq!(refused.json["code"], "rate_limited", "{refused:?}");
    let retry: u64 = refused
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {refused:?}"));
    assert!(retry >= 1, "{refused:?}");
    // A refused batch is not applied: the events counted are those of accepted batches.
    let accepted = replies.iter().filter(|r| r.status == 200).count() as u64;
    let m = server.call(
        "GET",
        &format!("/pipelines/{p}/metrics"),
        None,
        Auth::Key(&key),
    );
    assert_eq!(m.json["events_in"], accepted * 100, "{m:?}");
    // Another tenant is not limited by this one's flood.
    let r = server.call(
        "POST",
        &format!("/pipelines/{q}/events-batch"),
        Some(&body),
        Auth::Key(&other),
    );
    assert_eq!(r.status, 200, "{r:?}");
}
