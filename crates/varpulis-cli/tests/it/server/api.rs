//! The REST surface: authorization matrix, bad input, logs.

use std::io::Read;

use serde_json::{Value as Json, json};

use super::{ADMIN, Auth, Flags, Reply, Server, events};

const FILTER: &str = "stream Big = Txn .where(amount > 10) .emit(amount: amount)";

/// Every tenant endpoint, with a body that would be valid, for pipeline `p`.
fn tenant_endpoints(p: &str) -> Vec<(&'static str, String, Option<Json>)> {
    let event = json!({"event_type": "Txn", "timestamp": 1, "fields": {"amount": 20}});
    vec![
        ("GET", format!("/pipelines/{p}"), None),
        ("DELETE", format!("/pipelines/{p}"), None),
        (
            "POST",
            format!("/pipelines/{p}/events"),
            Some(event.clone()),
        ),
        (
            "POST",
            format!("/pipelines/{p}/events-batch"),
            Some(json!({"events": [event]})),
        ),
        ("POST", format!("/pipelines/{p}/checkpoint"), None),
        (
            "POST",
            format!("/pipelines/{p}/restore"),
            Some(json!({"checkpoint": "00"})),
        ),
        (
            "POST",
            format!("/pipelines/{p}/reload"),
            Some(json!({"source": FILTER})),
        ),
        ("GET", format!("/pipelines/{p}/metrics"), None),
        ("GET", format!("/pipelines/{p}/logs"), None),
        ("GET", format!("/pipelines/{p}/outputs"), None),
    ]
}

fn collection_endpoints() -> Vec<(&'static str, String, Option<Json>)> {
    vec![
        ("GET", "/pipelines".to_owned(), None),
        (
            "POST",
            "/pipelines".to_owned(),
            Some(json!({"name": "x", "source": FILTER})),
        ),
        ("GET", "/usage".to_owned(), None),
    ]
}

fn admin_endpoints(t: &str) -> Vec<(&'static str, String, Option<Json>)> {
    vec![
        ("GET", "/tenants".to_owned(), None),
        ("POST", "/tenants".to_owned(), Some(json!({"name": "new"}))),
        ("GET", format!("/tenants/{t}"), None),
        ("DELETE", format!("/tenants/{t}"), None),
    ]
}

fn assert_error(r: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(r.json["code"], code, "{what}: {r:?}");
    assert!(
        r.json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {r:?}"
    );
}

#[test]
fn every_endpoint_refuses_a_missing_a_wrong_and_another_tenants_key() {
    let server = Server::start(&Flags::default());
    let (a_id, a_key) = server.tenant("a", None);
    let (_, b_key) = server.tenant("b", None);
    let p = server.pipeline(&a_key, "p", FILTER);
    for (method, path, body) in tenant_endpoints(&p)
        .into_iter()
        .chain(collection_endpoints())
    {
        let what = format!("{method} {path}");
        let r = server.call(method, &path, body.as_ref(), Auth::None);
        assert_error(&r, 401, "invalid_api_key", &format!("{what} without a key"));
        let r = server.call(method, &path, body.as_ref(), Auth::Key("vpk_wrong"));
        assert_error(
            &r,
            401,
            "invalid_api_key",
            &format!("{what} with a wrong key"),
        );
        // The admin key in the admin header is not a tenant key.
        let r = server.call(method, &path, body.as_ref(), Auth::Admin(ADMIN));
        assert_error(
            &r,
            401,
            "invalid_api_key",
            &format!("{what} with only the admin header"),
        );
    }
    for (method, path, body) in tenant_endpoints(&p) {
        let what = format!("{method} {path} with another tenant's key");
        let r = server.call(method, &path, body.as_ref(), Auth::Key(&b_key));
        assert_error(&r, 404, "pipeline_not_found", &what);
        assert!(
            !r.text.contains(FILTER) && !r.text.contains("\"p\""),
            "{what} leaks: {r:?}"
        );
    }
    // Nothing of the above changed a's pipeline.
    let r = server.call("GET", &format!("/pipelines/{p}"), None, Auth::Key(&a_key));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["source"], FILTER);
    let m = server.call(
        "GET",
        &format!("/pipelines/{p}/metrics"),
        None,
        Auth::Key(&a_key),
    );
    assert_eq!(m.json["events_in"], 0, "{m:?}");
    for (method, path, body) in admin_endpoints(&a_id) {
        let what = format!("{method} {path}");
        for auth in [
            Auth::None,
            Auth::Admin("wrong-admin-key"),
            Auth::Admin(&a_key),
            Auth::Key(&a_key),
        ] {
            let r = server.call(method, &path, body.as_ref(), auth);
            assert_error(
                &r,
                401,
                "invalid_admin_key",
                &format!("{what} with {auth:?}"),
            );
        }
    }
    // With the admin key, they work.
    let r = server.call("GET", &format!("/tenants/{a_id}"), None, Auth::Admin(ADMIN));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn keys_are_shown_once_and_never_listed() {
    let server = Server::start(&Flags::default());
    let (id, key) = server.tenant("a", Some("free"));
    assert!(key.len() >= 64, "{key}");
    let list = server.call("GET", "/tenants", None, Auth::Admin(ADMIN));
    let one = server.call("GET", &format!("/tenants/{id}"), None, Auth::Admin(ADMIN));
    for r in [&list, &one] {
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.text.contains(&key), "{r:?}");
        assert!(!r.text.contains(ADMIN), "{r:?}");
        assert!(!r.text.contains("api_key"), "{r:?}");
    }
    assert_eq!(one.json["quota"]["max_pipelines"], 2, "{one:?}");
    assert_eq!(one.json["quota"]["max_events_per_second"], 100, "{one:?}");
    assert_eq!(one.json["quota"]["max_streams_per_pipeline"], 5, "{one:?}");
}

#[test]
fn tenants_are_listed_a_page_at_a_time() {
    let server = Server::start(&Flags::default());
    for i in 0..5 {
        server.tenant(&format!("t{i}"), None);
    }
    // The `default` tenant of --api-key is there too.
    let r = server.call("GET", "/tenants?limit=2&offset=1", None, Auth::Admin(ADMIN));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["tenants"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.json["total"], 6);
    assert_eq!(
        r.json["pagination"],
        json!({"total": 6, "limit": 2, "offset": 1, "has_more": true})
    );
    let r = server.call(
        "GET",
        "/tenants?limit=50&offset=4",
        None,
        Auth::Admin(ADMIN),
    );
    assert_eq!(r.json["pagination"]["has_more"], false, "{r:?}");
    assert_eq!(r.json["tenants"].as_array().map(Vec::len), Some(2));
    for bad in ["limit=0", "limit=1001", "limit=x", "offset=-1"] {
        let r = server.call("GET", &format!("/tenants?{bad}"), None, Auth::Admin(ADMIN));
        assert_error(&r, 400, "invalid_request", bad);
    }
}

#[test]
fn bad_requests_get_a_4xx_and_a_json_error_that_says_what_and_where() {
    let server = Server::start(&Flags {
        extra: vec!["--max-body-bytes".into(), "4096".into()],
        ..Flags::default()
    });
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    let events_path = format!("/pipelines/{p}/events");
    // Malformed JSON: the position.
    let r = server.call_raw(
        "POST",
        &events_path,
        b"{\"event_type\": \"Txn\",\n \"fields\": {".to_vec(),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_json", "malformed JSON");
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 2")),
        "{r:?}"
    );
    // Over the body limit.
    let big = json!({"event_type": "Txn", "fields": {"s": "x".repeat(8192)}});
    let r = server.call("POST", &events_path, Some(&big), Auth::Key(&key));
    assert_error(&r, 413, "payload_too_large", "a body over the limit");
    // An event of the wrong shape: the field named.
    let r = server.call(
        "POST",
        &events_path,
        Some(&json!({"event_type": 5})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_event", "a numeric event_type");
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("event_type")),
        "{r:?}"
    );
    let r = server.call(
        "POST",
        &events_path,
        Some(&json!({"event_type": "Txn", "timestamp": "yesterday"})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_event", "a bad timestamp");
    // A field given twice: refused, not one of the values silently kept.
    let r = server.call_raw(
        "POST",
        &events_path,
        br#"{"event_type": "Txn", "fields": {"amount": 1, "amount": 2}}"#.to_vec(),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_event", "a field given twice");
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"amount\" appears twice")),
        "{r:?}"
    );
    // VPL errors: the line:column diagnostics.
    let r = server.call(
        "POST",
        "/pipelines",
        Some(&json!({"name": "bad", "source": "stream X = Txn\n  .where(amount >)"})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "parse_error", "a VPL error");
    assert!(
        r.json["error"].as_str().is_some_and(|e| e.contains("2:")),
        "{r:?}"
    );
    // A missing field of a request body.
    let r = server.call(
        "POST",
        "/pipelines",
        Some(&json!({"name": "x"})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_request", "a pipeline without source");
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("source")),
        "{r:?}"
    );
    // Unknown paths and methods.
    let r = server.call("GET", "/nowhere", None, Auth::Key(&key));
    assert_error(&r, 404, "not_found", "an unknown path");
    let r = server.call("PUT", "/pipelines", None, Auth::Key(&key));
    assert_error(&r, 405, "method_not_allowed", "a wrong method");
    // An id that is not one.
    let r = server.call("GET", "/pipelines/..%2F..%2Fetc", None, Auth::Key(&key));
    assert_error(&r, 404, "pipeline_not_found", "a malformed id");
}

fn events_in(server: &Server, key: &str, p: &str) -> Json {
    let r = server.call(
        "GET",
        &format!("/pipelines/{p}/metrics"),
        None,
        Auth::Key(key),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.json["events_in"].clone()
}

#[test]
fn a_batch_with_a_bad_event_is_refused_whole_with_its_index() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    let mut batch = events(
        "Txn",
        &[(1, json!({"amount": 20})), (2, json!({"amount": 30}))],
    );
    batch
        .as_array_mut()
        .expect("array")
        .push(json!({"event_type": "Txn", "fields": [1]}));
    let r = server.call(
        "POST",
        &format!("/pipelines/{p}/events-batch"),
        Some(&json!({"events": batch})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "invalid_event", "a batch with a bad third event");
    assert_eq!(r.json["index"], 2, "{r:?}");
    assert_eq!(
        events_in(&server, &key, &p),
        0,
        "nothing of the batch was applied"
    );
    let out = server.batch(
        &key,
        &p,
        events(
            "Txn",
            &[(1, json!({"amount": 20})), (2, json!({"amount": 5}))],
        ),
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["fields"]["amount"], 20);
    assert_eq!(out[0]["event_type"], "Big");
    assert_eq!(events_in(&server, &key, &p), 2);
}

#[test]
fn a_checkpoint_restores_and_a_crafted_restore_body_is_refused_without_harm() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(
        &key,
        "p",
        "stream T = Txn .window(3) .aggregate(n: count())",
    );
    server.batch(&key, &p, events("Txn", &[(1, json!({})), (2, json!({}))]));
    let r = server.call(
        "POST",
        &format!("/pipelines/{p}/checkpoint"),
        None,
        Auth::Key(&key),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let checkpoint = r.json["checkpoint"]
        .as_str()
        .expect("checkpoint")
        .to_owned();
    // One more event: the window closes.
    assert_eq!(
        server
            .batch(&key, &p, events("Txn", &[(3, json!({}))]))
            .len(),
        1
    );
    let restore = format!("/pipelines/{p}/restore");
    let mut flipped = checkpoint.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    for bad in [
        "",
        "zz",
        "00",
        &checkpoint[..checkpoint.len() / 2],
        &flipped,
    ] {
        let r = server.call(
            "POST",
            &restore,
            Some(&json!({ "checkpoint": bad })),
            Auth::Key(&key),
        );
        assert_error(
            &r,
            400,
            "invalid_checkpoint",
            &format!("restore of {bad:.20}"),
        );
    }
    // A checkpoint of another program is refused too.
    let q = server.pipeline(
        &key,
        "q",
        "stream U = Txn .partition_by(k) .window(5s) .aggregate(s: sum(amount))",
    );
    server.batch(
        &key,
        &q,
        events("Txn", &[(1, json!({"k": "a", "amount": 1}))]),
    );
    let other = server.call(
        "POST",
        &format!("/pipelines/{q}/checkpoint"),
        None,
        Auth::Key(&key),
    );
    let r = server.call(
        "POST",
        &restore,
        Some(&json!({"checkpoint": other.json["checkpoint"]})),
        Auth::Key(&key),
    );
    assert_error(
        &r,
        400,
        "invalid_checkpoint",
        "restore of another program's checkpoint",
    );
    // The pipeline still works from where it was, and the good checkpoint restores.
    assert!(
        server
            .batch(&key, &p, events("Txn", &[(4, json!({}))]))
            .is_empty()
    );
    let r = server.call(
        "POST",
        &restore,
        Some(&json!({ "checkpoint": checkpoint })),
        Auth::Key(&key),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        server
            .batch(&key, &p, events("Txn", &[(5, json!({}))]))
            .len(),
        1,
        "2 restored + 1"
    );
}

#[test]
fn reload_swaps_the_program_and_a_broken_source_keeps_the_old_one() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    let reload = format!("/pipelines/{p}/reload");
    let r = server.call(
        "POST",
        &reload,
        Some(&json!({"source": "stream X = Txn .where(amount >"})),
        Auth::Key(&key),
    );
    assert_error(&r, 400, "parse_error", "a broken reload");
    assert_eq!(
        server
            .batch(&key, &p, events("Txn", &[(1, json!({"amount": 20}))]))
            .len(),
        1
    );
    let r = server.call(
        "POST",
        &reload,
        Some(&json!({"source": "stream Small = Txn .where(amount < 10)"})),
        Auth::Key(&key),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json, json!({"reloaded": true}));
    let out = server.batch(
        &key,
        &p,
        events(
            "Txn",
            &[(2, json!({"amount": 20})), (3, json!({"amount": 5}))],
        ),
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["event_type"], "Small");
}

#[test]
fn metrics_are_per_pipeline_and_usage_per_tenant() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    let q = server.pipeline(&key, "q", FILTER);
    server.batch(
        &key,
        &p,
        events(
            "Txn",
            &[(1, json!({"amount": 20})), (2, json!({"amount": 30}))],
        ),
    );
    server.batch(&key, &q, events("Txn", &[(1, json!({"amount": 1}))]));
    assert_eq!(events_in(&server, &key, &p), 2);
    assert_eq!(events_in(&server, &key, &q), 1);
    let u = server.call("GET", "/usage", None, Auth::Key(&key)).json;
    assert_eq!(u["events_in"], 3, "{u}");
    assert_eq!(u["output_events"], 2, "{u}");
    assert_eq!(u["active_pipelines"], 2, "{u}");
}

#[test]
fn health_and_ready_need_no_key() {
    let server = Server::start(&Flags::default());
    let r = server.call("GET", "/health", None, Auth::None);
    assert_eq!(r.status, 200, "{r:?}");
    let r = server.call("GET", "/ready", None, Auth::None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["status"], "ready");
}

#[test]
fn the_logs_stream_carries_each_output_event() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    let url = format!("{}/pipelines/{p}/logs", server.base);
    let mut resp = reqwest::blocking::Client::new()
        .get(url)
        .header("x-api-key", &key)
        .send()
        .expect("logs");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    server.batch(&key, &p, events("Txn", &[(7, json!({"amount": 20}))]));
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !seen.contains("\n\n") {
        let n = resp.read(&mut buf).expect("read");
        assert!(n > 0, "stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let data = seen
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or_else(|| panic!("no data line in {seen:?}"));
    let event: Json = serde_json::from_str(data.trim()).expect("JSON data");
    assert_eq!(
        event,
        json!({"event_type": "Big", "timestamp": 7, "data": {"amount": 20}})
    );
}

#[test]
fn prometheus_metrics_need_the_admin_key_and_count_each_pipeline() {
    let server = Server::start(&Flags::default());
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    server.batch(
        &key,
        &p,
        events(
            "Txn",
            &[(1, json!({"amount": 20})), (2, json!({"amount": 30}))],
        ),
    );
    let metrics = server.base.replace("/api/v1", "/metrics");
    let get = |auth: Option<(&str, &str)>| {
        let mut req = reqwest::blocking::Client::new().get(&metrics);
        if let Some((h, v)) = auth {
            req = req.header(h, v);
        }
        let resp = req.send().expect("metrics");
        (resp.status().as_u16(), resp.text().expect("text"))
    };
    assert_eq!(get(None).0, 401);
    assert_eq!(get(Some(("x-api-key", &key))).0, 401);
    let (status, text) = get(Some(("x-admin-key", ADMIN)));
    assert_eq!(status, 200, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("varpulis_events_in_total{") && l.contains(&p))
        .unwrap_or_else(|| panic!("no events_in of {p}: {text}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(
        text.contains("# TYPE varpulis_checkpoint_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn metrics_bind_serves_metrics_without_a_key_and_nothing_else() {
    let server = Server::start(&Flags {
        extra: vec!["--metrics-bind".into(), "127.0.0.1:0".into()],
        ..Flags::default()
    });
    let line = server.next_stdout_line();
    let addr = line
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let (_, key) = server.tenant("a", None);
    let p = server.pipeline(&key, "p", FILTER);
    server.batch(&key, &p, events("Txn", &[(1, json!({"amount": 20}))]));
    let get = |path: &str| {
        let resp = reqwest::blocking::get(format!("http://{addr}{path}")).expect("answers");
        (resp.status().as_u16(), resp.text().expect("text"))
    };
    let (status, text) = get("/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("varpulis_events_in_total{") && l.contains(&p)),
        "{text}"
    );
    assert_eq!(
        get("/api/v1/tenants").0,
        404,
        "only metrics on this address"
    );
}

#[test]
fn the_status_page_is_served_and_its_data_needs_a_key() {
    let server = Server::start(&Flags::default());
    let root = server.base.trim_end_matches("/api/v1");
    let page = reqwest::blocking::get(format!("{root}/ui")).expect("GET /ui");
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"), "{page:?}");
    assert!(
        header("content-security-policy").contains("default-src 'none'"),
        "{page:?}"
    );
    let html = page.text().expect("a body");
    assert!(html.contains("/api/v1/status"), "the page polls the status");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external asset"
    );

    let (a_id, a_key) = server.tenant("acme", None);
    let (b_id, b_key) = server.tenant("other", None);
    let p = server.pipeline(&a_key, "totals <b>&", FILTER);
    server.batch(
        &a_key,
        &p,
        events(
            "Txn",
            &[(1, json!({"amount": 20})), (2, json!({"amount": 5}))],
        ),
    );
    let r = server.call(
        "POST",
        &format!("/pipelines/{p}/checkpoint"),
        None,
        Auth::Key(&a_key),
    );
    assert_eq!(r.status, 200, "{r:?}");

    for (what, auth) in [
        ("no key", Auth::None),
        ("a wrong tenant key", Auth::Key("vpk_wrong")),
    ] {
        let r = server.call("GET", "/status", None, auth);
        assert_error(&r, 401, "invalid_api_key", what);
    }
    let r = server.call(
        "GET",
        "/status",
        None,
        Auth::Admin("wrong-admin-key-0123456789"),
    );
    assert_error(&r, 401, "invalid_admin_key", "a wrong admin key");
    // A tenant key in the admin header is not the admin key.
    let r = server.call("GET", "/status", None, Auth::Admin(&a_key));
    assert_error(&r, 401, "invalid_admin_key", "a tenant key as admin key");

    let r = server.call("GET", "/status", None, Auth::Key(&a_key));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["scope"], "tenant");
    let tenants = r.json["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 1, "a tenant sees only itself: {r:?}");
    assert_eq!(tenants[0]["id"], a_id.as_str());
    let shown = &tenants[0]["pipelines"][0];
    assert_eq!(shown["id"], p.as_str());
    assert_eq!(shown["name"], "totals <b>&");
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["events_in"], 2);
    assert_eq!(shown["output_events"], 1);
    assert_eq!(shown["late_events_dropped"], 0);
    let last = &shown["last_checkpoint"];
    assert!(last["id"].as_u64().is_some(), "{r:?}");
    assert!(last["bytes"].as_u64().is_some_and(|b| b > 0), "{r:?}");
    assert!(last["duration_ms"].as_f64().is_some(), "{r:?}");
    assert_eq!(shown["checkpoints"].as_array().map(Vec::len), Some(1));
    assert!(r.json["now_ms"].as_i64().is_some());

    let r = server.call("GET", "/status", None, Auth::Key(&b_key));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["tenants"][0]["id"], b_id.as_str());
    assert_eq!(r.json["tenants"][0]["pipelines"], json!([]));
    assert!(
        !r.text.contains(&p),
        "another tenant's pipeline leaks: {r:?}"
    );

    let r = server.call("GET", "/status", None, Auth::Admin(ADMIN));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["scope"], "admin");
    let tenants = r.json["tenants"].as_array().expect("tenants");
    // Oldest first; acme and other may share a millisecond, so only default is surely first.
    let mut names: Vec<&str> = tenants.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.first(), Some(&"default"), "{r:?}");
    names.sort_unstable();
    assert_eq!(names, ["acme", "default", "other"], "{r:?}");
    let acme = tenants
        .iter()
        .find(|t| t["id"] == a_id.as_str())
        .expect("acme is listed");
    assert_eq!(acme["pipelines"][0]["id"], p.as_str());
}
