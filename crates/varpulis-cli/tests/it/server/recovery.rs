//! The seed's recovery flow: tenants, keys, quotas, usage, pipelines and half-full windows
//! survive a kill -9 (and a graceful stop), and the next events complete the windows exactly
//! as in a run that never stopped.

use serde_json::{Value as Json, json};

use super::{ADMIN, Auth, Flags, Server, events};

const COUNT: &str = "stream Totals = Txn .window(5) .aggregate(sum: sum(amount), n: count())";
const SESSION: &str = "stream Sessions = Click .partition_by(user) .window(session: 10s) \
                       .aggregate(n: count(), sum: sum(amount))";

fn txns(rows: &[(i64, i64)]) -> Json {
    events(
        "Txn",
        &rows
            .iter()
            .map(|&(ts, amount)| (ts, json!({ "amount": amount })))
            .collect::<Vec<_>>(),
    )
}

fn clicks(rows: &[(i64, i64)]) -> Json {
    events(
        "Click",
        &rows
            .iter()
            .map(|&(ts, amount)| (ts, json!({ "user": "ann", "amount": amount })))
            .collect::<Vec<_>>(),
    )
}

/// What the flow sets up before the stop.
struct Before {
    acme: (String, String),
    globex: (String, String),
    count: String,
    session: String,
    tenants: Json,
}

fn first_half(server: &Server) -> Before {
    let acme = server.tenant("acme", Some("pro"));
    let globex = server.tenant("globex", Some("free"));
    let count = server.pipeline(&acme.1, "totals", COUNT);
    let session = server.pipeline(&acme.1, "sessions", SESSION);
    let other = server.pipeline(&globex.1, "totals", COUNT);
    assert!(
        server
            .batch(
                &acme.1,
                &count,
                txns(&[(1_000, 10), (2_000, 20), (3_000, 30)])
            )
            .is_empty()
    );
    assert!(
        server
            .batch(&acme.1, &session, clicks(&[(1_000, 100), (2_000, 100)]))
            .is_empty()
    );
    assert!(
        server
            .batch(&globex.1, &other, txns(&[(1_000, 1)]))
            .is_empty()
    );
    let tenants = server
        .call("GET", "/tenants", None, Auth::Admin(ADMIN))
        .json;
    Before {
        acme,
        globex,
        count,
        session,
        tenants,
    }
}

/// The rest of the events; returns (count outputs, session outputs).
fn second_half(server: &Server, b: &Before) -> (Vec<Json>, Vec<Json>) {
    let count = server.batch(&b.acme.1, &b.count, txns(&[(4_000, 40), (5_000, 50)]));
    let session = server.batch(&b.acme.1, &b.session, clicks(&[(3_000, 100), (60_000, 1)]));
    (count, session)
}

fn assert_windows_completed(count: &[Json], session: &[Json]) {
    assert_eq!(count.len(), 1, "{count:?}");
    assert_eq!(count[0]["fields"]["sum"].as_f64(), Some(150.0), "{count:?}");
    assert_eq!(count[0]["fields"]["n"], 5, "{count:?}");
    assert_eq!(session.len(), 1, "{session:?}");
    assert_eq!(session[0]["fields"]["n"], 3, "{session:?}");
    assert_eq!(
        session[0]["fields"]["sum"].as_f64(),
        Some(300.0),
        "{session:?}"
    );
}

/// Outputs of the flow on a server that never stops.
fn uninterrupted() -> (Vec<Json>, Vec<Json>) {
    let server = Server::start(&Flags::default());
    let b = first_half(&server);
    second_half(&server, &b)
}

fn tenants_without_usage(list: &Json) -> Json {
    let mut list = list["tenants"].clone();
    for t in list.as_array_mut().expect("tenants") {
        t.as_object_mut().expect("tenant").remove("usage");
    }
    list
}

fn stop_and_restart(flags: &Flags, stop: impl FnOnce(Server)) {
    let server = Server::start(flags);
    let b = first_half(&server);
    stop(server);
    let server = Server::start(flags);
    // Tenants with their ids, names and quotas.
    let tenants = server
        .call("GET", "/tenants", None, Auth::Admin(ADMIN))
        .json;
    assert_eq!(
        tenants_without_usage(&tenants),
        tenants_without_usage(&b.tenants)
    );
    // Keys still authenticate, and still name the same tenant.
    let r = server.call("GET", "/pipelines", None, Auth::Key(&b.acme.1));
    assert_eq!(r.status, 200, "{r:?}");
    let mut names: Vec<&str> = r.json["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| {
            assert_eq!(p["status"], "running", "{p}");
            p["name"].as_str().expect("name")
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["sessions", "totals"]);
    let r = server.call("GET", "/pipelines", None, Auth::Key(&b.globex.1));
    assert_eq!(r.json["total"], 1, "{r:?}");
    // Usage: every acknowledged event is counted.
    let usage = server
        .call("GET", "/usage", None, Auth::Key(&b.acme.1))
        .json;
    assert_eq!(usage["events_in"], 5, "{usage}");
    assert_eq!(usage["active_pipelines"], 2, "{usage}");
    assert_eq!(usage["quota"]["max_pipelines"], 20, "{usage}");
    let (count, session) = second_half(&server, &b);
    assert_windows_completed(&count, &session);
    assert_eq!((count, session), uninterrupted());
    let _ = b.globex.0;
}

fn kill_9(flags: &Flags) {
    stop_and_restart(flags, Server::kill_9);
}

#[test]
fn a_kill_9_loses_no_tenant_pipeline_usage_or_window_on_the_file_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_9(&Flags::dir(&dir.path().join("state")));
}

#[test]
fn a_kill_9_loses_nothing_on_the_encrypted_file_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_9(&Flags {
        encrypt: true,
        ..Flags::dir(&dir.path().join("state"))
    });
}

#[cfg(feature = "persistence")]
#[test]
fn a_kill_9_loses_nothing_on_rocksdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_9(&Flags {
        store: Some("rocksdb"),
        ..Flags::dir(&dir.path().join("state"))
    });
}

#[test]
fn a_sigterm_stops_with_status_0_after_checkpointing_and_the_restart_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    stop_and_restart(&Flags::dir(&dir.path().join("state")), |server| {
        let (status, stderr) = server.terminate();
        assert!(status.success(), "{status:?}\n{stderr}");
    });
}

#[test]
fn a_second_server_on_the_same_state_dir_fails_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = Flags::dir(&dir.path().join("state"));
    let _first = Server::start(&flags);
    let Err(why) = Server::try_start(&flags) else {
        panic!("a second server started on the same state directory");
    };
    assert!(why.contains("in use") || why.contains("lock"), "{why}");
}

#[test]
fn a_retried_batch_is_applied_once_even_across_a_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = Flags::dir(&dir.path().join("state"));
    let server = Server::start(&flags);
    let (_, key) = server.tenant("acme", None);
    let p = server.pipeline(&key, "totals", COUNT);
    let path = format!("/pipelines/{p}/events-batch");
    let first = json!({ "events": txns(&[(1_000, 10), (2_000, 20), (3_000, 30)]) });
    let r = server.call("POST", &path, Some(&first), Auth::Retry(&key, "batch-1"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.replayed);
    // The answer was lost; the client retries after a crash.
    server.kill_9();
    let server = Server::start(&flags);
    let r = server.call("POST", &path, Some(&first), Auth::Retry(&key, "batch-1"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.replayed, "{r:?}");
    assert_eq!(r.json["accepted"], 3);
    // The same key with another batch is refused.
    let other = json!({ "events": txns(&[(4_000, 40)]) });
    let r = server.call("POST", &path, Some(&other), Auth::Retry(&key, "batch-1"));
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.json["code"], "idempotency_key_reused");
    // `batch_id` in the body works as the header does.
    let second = json!({ "batch_id": "batch-2", "events": txns(&[(4_000, 40), (5_000, 50)]) });
    let r = server.call("POST", &path, Some(&second), Auth::Key(&key));
    assert_eq!(r.status, 200, "{r:?}");
    let r2 = server.call("POST", &path, Some(&second), Auth::Key(&key));
    assert!(r2.replayed, "{r2:?}");
    assert_eq!(r2.json["output_events"], r.json["output_events"]);
    assert_eq!(
        r.json["output_events"][0]["fields"]["sum"].as_f64(),
        Some(150.0),
        "{r:?}"
    );
    assert_eq!(
        r.json["output_events"][0]["fields"]["sum"].as_f64(),
        Some(150.0),
        "{r:?}"
    );
    let m = server.call(
        "GET",
        &format!("/pipelines/{p}/metrics"),
        None,
        Auth::Key(&key),
    );
    assert_eq!(m.json["events_in"], 5, "each batch once: {m:?}");
}

/// Reads `n` output messages (`id:` and `data:`) from a `logs` stream.
fn read_outputs(
    server: &Server,
    key: &str,
    pipeline: &str,
    last_id: Option<u64>,
    n: usize,
) -> Vec<(u64, Json)> {
    use std::io::Read;
    let mut req = reqwest::blocking::Client::new()
        .get(format!("{}/pipelines/{pipeline}/logs?from=1", server.base))
        .header("x-api-key", key);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id.to_string());
    }
    let mut resp = req.send().expect("logs");
    assert_eq!(resp.status().as_u16(), 200);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    while out.len() < n {
        let k = resp.read(&mut buf).expect("read");
        assert!(k > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..k]));
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            let id = message.lines().find_map(|l| l.strip_prefix("id:"));
            let data = message.lines().find_map(|l| l.strip_prefix("data:"));
            if let (Some(id), Some(data)) = (id, data) {
                let id = id.trim().parse().expect("numeric id");
                out.push((id, serde_json::from_str(data.trim()).expect("JSON")));
            }
        }
    }
    out
}

#[test]
fn a_logs_reader_resuming_by_last_event_id_across_a_kill_9_sees_every_output_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = Flags::dir(&dir.path().join("state"));
    let server = Server::start(&flags);
    let (_, key) = server.tenant("acme", None);
    let p = server.pipeline(&key, "all", "stream All = Txn .where(amount > 0)");
    server.batch(&key, &p, txns(&[(1, 1), (2, 2), (3, 3)]));
    let first = read_outputs(&server, &key, &p, None, 3);
    assert_eq!(
        first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    server.kill_9();
    let server = Server::start(&flags);
    server.batch(&key, &p, txns(&[(4, 4), (5, 5)]));
    let rest = read_outputs(&server, &key, &p, Some(3), 2);
    assert_eq!(rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [4, 5]);
    let times: Vec<i64> = first
        .iter()
        .chain(&rest)
        .map(|(_, e)| e["timestamp"].as_i64().expect("timestamp"))
        .collect();
    assert_eq!(times, [1, 2, 3, 4, 5], "every output once, in order");
    let page = server.call(
        "GET",
        &format!("/pipelines/{p}/outputs?from=2&limit=3"),
        None,
        Auth::Key(&key),
    );
    assert_eq!(page.status, 200, "{page:?}");
    let seqs: Vec<u64> = page.json["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| o["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(page.json["next"], 5);
    assert_eq!(page.json["outputs"][0]["event"]["fields"]["amount"], 2);
}

#[test]
fn a_pattern_pipelines_open_runs_and_a_joins_buffers_survive_a_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = Flags::dir(&dir.path().join("state"));
    let server = Server::start(&flags);
    let (_, key) = server.tenant("acme", Some("pro"));
    let fraud = server.pipeline(
        &key,
        "fraud",
        "stream F = Login as l -> Txn where amount > 100 as t .within(1m) .partition_by(user) \
         .emit(user: l.user, amount: t.amount)",
    );
    let paid = server.pipeline(
        &key,
        "paid",
        "stream P = join(Order, Pay) .on(Order.id == Pay.id) .window(1m) \
         .emit(id: Order.id, paid: Pay.paid)",
    );
    let login = events("Login", &[(1_000, json!({"user": "ann"}))]);
    assert!(server.batch(&key, &fraud, login).is_empty());
    let order = events("Order", &[(1_000, json!({"id": "o1"}))]);
    assert!(server.batch(&key, &paid, order).is_empty());
    // The run waiting for a transaction and the buffered order are only in the ingest log and
    // the last checkpoint when the server dies.
    server.kill_9();
    let server = Server::start(&flags);
    let txn = events(
        "Txn",
        &[
            (2_000, json!({"user": "ann", "amount": 500})),
            (3_000, json!({"user": "bob", "amount": 1})),
        ],
    );
    let out = server.batch(&key, &fraud, txn);
    assert_eq!(
        out.len(),
        1,
        "the run opened before the crash completes: {out:?}"
    );
    assert_eq!(out[0]["fields"]["user"], "ann", "{out:?}");
    assert_eq!(out[0]["fields"]["amount"], 500, "{out:?}");
    let pay = events(
        "Pay",
        &[
            (2_000, json!({"id": "o1", "paid": 9})),
            (3_000, json!({"id": "zz", "paid": 1})),
        ],
    );
    let out = server.batch(&key, &paid, pay);
    assert_eq!(
        out.len(),
        1,
        "the order buffered before the crash joins: {out:?}"
    );
    assert_eq!(out[0]["fields"]["id"], "o1", "{out:?}");
}
