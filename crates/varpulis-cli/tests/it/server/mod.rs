//! `varpulis server`, the real binary on 127.0.0.1 with port 0, driven over HTTP.

mod api;
mod crash_loop;
mod quotas;
mod recovery;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value as Json, json};

/// The admin key the tests start servers with (also the `default` tenant's key).
pub(crate) const ADMIN: &str = "test-admin-key-0123456789abcdef";

/// A hex key for `--encrypt`.
pub(crate) const ENCRYPTION_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// How a server is started: store flags, extra flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) store: Option<&'static str>,
    pub(crate) encrypt: bool,
    pub(crate) extra: Vec<String>,
}

impl Flags {
    pub(crate) fn dir(dir: &Path) -> Self {
        Self {
            state_dir: Some(dir.to_path_buf()),
            ..Self::default()
        }
    }
}

/// A running server; killed (SIGKILL) when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) base: String,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `varpulis server --port 0 --api-key ADMIN` with `flags` and waits for its
    /// `listening on` line.
    pub(crate) fn start(flags: &Flags) -> Self {
        match Self::try_start(flags) {
            Ok(server) => server,
            Err(why) => panic!("the server did not start: {why}"),
        }
    }

    /// Like [`start`](Self::start), but returns the exit status and stderr of a server that
    /// did not start.
    pub(crate) fn try_start(flags: &Flags) -> Result<Self, String> {
        let mut cmd = crate::varpulis();
        cmd.args(["server", "--port", "0", "--api-key", ADMIN]);
        if let Some(dir) = &flags.state_dir {
            cmd.arg("--state-dir").arg(dir);
        }
        if let Some(store) = flags.store {
            cmd.args(["--store", store]);
        }
        if flags.encrypt {
            cmd.arg("--encrypt")
                .env("VARPULIS_ENCRYPTION_KEY", ENCRYPTION_KEY);
        }
        cmd.args(&flags.extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("varpulis starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        match line_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let addr = line
                    .strip_prefix("listening on ")
                    .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
                Ok(Self {
                    child: Some(child),
                    base: format!("http://{addr}/api/v1"),
                    stderr: err_rx,
                    stdout: line_rx,
                })
            }
            Err(_) => {
                let status = child.wait().ok();
                let stderr = err_rx
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_default();
                Err(format!("exit status {status:?}, stderr:\n{stderr}"))
            }
        }
    }

    /// The next line the server writes on stdout after `listening on`.
    pub(crate) fn next_stdout_line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(60))
            .expect("a line on stdout")
    }

    /// SIGKILL: no shutdown work at all.
    pub(crate) fn kill_9(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, then waits: the exit status and stderr.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let status = child.wait().expect("reaped");
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        (status, stderr)
    }

    /// A request; `key` goes in `x-api-key`, `admin` in `x-admin-key`.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
        auth: Auth<'_>,
    ) -> Reply {
        request(
            &format!("{}{path}", self.base),
            method,
            body.map(|b| b.to_string().into_bytes()),
            auth,
        )
    }

    /// A request with a raw body.
    pub(crate) fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        auth: Auth<'_>,
    ) -> Reply {
        request(&format!("{}{path}", self.base), method, Some(body), auth)
    }

    /// Creates a tenant (admin), returning its id and key.
    pub(crate) fn tenant(&self, name: &str, tier: Option<&str>) -> (String, String) {
        let r = self.call(
            "POST",
            "/tenants",
            Some(&json!({"name": name, "quota_tier": tier})),
            Auth::Admin(ADMIN),
        );
        assert_eq!(r.status, 201, "{r:?}");
        (
            r.json["id"].as_str().expect("id").to_owned(),
            r.json["api_key"].as_str().expect("api_key").to_owned(),
        )
    }

    /// Creates a pipeline for the tenant of `key`, returning its id.
    pub(crate) fn pipeline(&self, key: &str, name: &str, source: &str) -> String {
        let r = self.call(
            "POST",
            "/pipelines",
            Some(&json!({"name": name, "source": source})),
            Auth::Key(key),
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.json["status"], "running", "{r:?}");
        r.json["id"].as_str().expect("id").to_owned()
    }

    /// Sends a batch, asserting 200, returning the output events.
    pub(crate) fn batch(&self, key: &str, pipeline: &str, events: Json) -> Vec<Json> {
        let r = self.call(
            "POST",
            &format!("/pipelines/{pipeline}/events-batch"),
            Some(&json!({ "events": events })),
            Auth::Key(key),
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json["output_events"]
            .as_array()
            .expect("output_events")
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Which key a request carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    Key(&'a str),
    Admin(&'a str),
    /// A tenant key and an `Idempotency-Key`.
    Retry(&'a str, &'a str),
}

/// An answer: status, `Retry-After`, body as text and as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) json: Json,
    pub(crate) text: String,
    pub(crate) retry_after: Option<String>,
    /// `Idempotent-Replayed: true`: the original answer to a retried request.
    pub(crate) replayed: bool,
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn request(url: &str, method: &str, body: Option<Vec<u8>>, auth: Auth<'_>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(method, url);
    match auth {
        Auth::None => {}
        Auth::Retry(k, idem) => req = req.header("x-api-key", k).header("idempotency-key", idem),
        Auth::Key(k) => req = req.header("x-api-key", k),
        Auth::Admin(k) => req = req.header("x-admin-key", k),
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req.send().expect("the server answers");
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let replayed = header("idempotent-replayed").as_deref() == Some("true");
    let text = resp.text().expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Json::Null);
    Reply {
        status,
        json,
        text,
        retry_after,
        replayed,
    }
}

/// `n` events of type `ty` with `fields`, at event times `ts` (ms).
pub(crate) fn events(ty: &str, rows: &[(i64, Json)]) -> Json {
    Json::Array(
        rows.iter()
            .map(|(ts, fields)| json!({"event_type": ty, "timestamp": ts, "fields": fields}))
            .collect(),
    )
}
