#!/usr/bin/env python3
"""A client of `varpulis server` written against docs/server.md, in Python (standard library
only), that runs the documented flows against the real binary.

Usage:
    cargo build -p varpulis-cli                      # add --features persistence for rocksdb
    python3 tests/server/client_flows.py --binary target/debug/varpulis [--store file|rocksdb]
                                         [--encrypt] [--only WORDS] [--keep-state] [--verbose]

It starts `varpulis server --port 0 --api-key <random> --state-dir <tempdir>` itself (with
`--store rocksdb` and `--encrypt` when asked; for --encrypt the child gets a random
VARPULIS_ENCRYPTION_KEY), waits for `listening on ADDR` on its stdout, and runs each flow in
turn, printing `ok - name` or `FAIL - name: why`; the last line is `N passed, N failed` and
the exit status is 1 if any flow failed. The flows near the end restart the server on the same
state directory (after `kill -9`, and after SIGTERM) and check that tenants, keys, quotas,
usage, pipelines and half-full windows came back. `--only WORDS` runs the flows whose name
contains WORDS (underscores or spaces). The server's stderr is printed when a flow fails
(always with --verbose).
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# Requests go to 127.0.0.1 only: never through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ---- programs (checked with `varpulis check`) ----

PASS = "stream Big = Txn .where(amount > 0)"
COUNT = "stream Totals = Txn .window(5) .aggregate(sum: sum(amount), n: count())"
SESSION = ("stream Sessions = Click .partition_by(user) .window(session: 10s) "
           ".aggregate(n: count(), sum: sum(amount))")
OTHER_PROGRAM = "stream U = Txn .partition_by(k) .window(5s) .aggregate(s: sum(amount))"
BROKEN = "stream X = Txn\n  .where(amount >)"  # error at 2:18


def streams(n):
    """A program of n pass-through streams."""
    return "".join(f"stream S{i} = Txn .where(amount > {i})\n" for i in range(n))


FREE = {"max_pipelines": 2, "max_events_per_second": 100, "max_streams_per_pipeline": 5}
DEFAULT = {"max_pipelines": 10, "max_events_per_second": 10_000, "max_streams_per_pipeline": 50}
PRO = {"max_pipelines": 20, "max_events_per_second": 50_000, "max_streams_per_pipeline": 100}
ENTERPRISE = {"max_pipelines": 1000, "max_events_per_second": 500_000,
              "max_streams_per_pipeline": 500}
LINE_COLUMN = re.compile(r"\d+:\d+")


def event(event_type, ts=None, **fields):
    e = {"event_type": event_type, "fields": fields}
    if ts is not None:
        e["timestamp"] = ts
    return e


def txn(ts, amount):
    return event("Txn", ts, amount=amount)


def click(ts, amount, user="ann"):
    return event("Click", ts, user=user, amount=amount)


def now_ms():
    return int(time.time() * 1000)


# ---- checks ----

class Failed(Exception):
    """A flow's check did not hold."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def show(reply):
    return f"{reply.status} {reply.text[:400]}"


def expect_status(reply, status, what):
    check(reply.status == status, f"{what}: expected {status}, got {show(reply)}")


def expect_error(reply, status, code, what):
    """`status` with the JSON error body {"error": "...", "code": code}."""
    expect_status(reply, status, what)
    body = reply.json
    check(isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"],
          f"{what}: no JSON {{\"error\", \"code\"}} body: {show(reply)}")
    check(body.get("code") == code, f"{what}: expected code {code!r}, got {show(reply)}")


def expect_output_event(ev, what):
    """The output shape, the same as a `.jsonl` input line."""
    check(isinstance(ev, dict) and set(ev) == {"event_type", "timestamp", "fields"},
          f"{what}: output event is not {{event_type, timestamp, fields}}: {ev!r}")
    check(isinstance(ev["event_type"], str) and isinstance(ev["timestamp"], int)
          and isinstance(ev["fields"], dict), f"{what}: output event field types: {ev!r}")


# ---- the HTTP client ----

class Reply(tuple):
    """(status, headers, json) as `Client.request` returns it; the raw body is `.text`."""

    def __new__(cls, status, headers, data, text):
        reply = super().__new__(cls, (status, headers, data))
        reply.text = text
        return reply

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    json = property(lambda self: self[2])


class Client:
    """The REST surface under /api/v1; a tenant key goes in x-api-key, the admin key in
    x-admin-key."""

    def __init__(self, base):
        self.base = base  # http://127.0.0.1:PORT/api/v1

    def request(self, method, path, body=None, key=None, admin=False, timeout=60):
        """`body`: a JSON value, or bytes/str sent as they are. Returns (status, headers,
        json) with json None when the body is not JSON."""
        headers = {}
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["x-admin-key" if admin else "x-api-key"] = key
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with OPENER.open(req, timeout=timeout) as resp:
                status, resp_headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, resp_headers, raw = err.code, err.headers, err.read()
        text = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(status, resp_headers, parsed, text)


class LogReader(threading.Thread):
    """Reads GET /pipelines/{id}/logs (server-sent events) in a thread: every `data:` line
    goes to `.data`. With `first_only` it stops after the first one."""

    def __init__(self, url, key, first_only=True, timeout=20):
        super().__init__(daemon=True)
        self.url, self.key, self.first_only, self.timeout = url, key, first_only, timeout
        self.connected = threading.Event()
        self.data = queue.Queue()
        self.status = None
        self.content_type = ""
        self.error = None

    def run(self):
        req = urllib.request.Request(self.url, headers={"x-api-key": self.key,
                                                        "Accept": "text/event-stream"})
        try:
            resp = OPENER.open(req, timeout=self.timeout)
        except Exception as err:  # noqa: BLE001 - reported by the flow
            self.error = err
            self.connected.set()
            return
        self.status = resp.status
        self.content_type = resp.headers.get("Content-Type", "")
        self.connected.set()
        try:
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    self.data.put(line[len("data:"):].strip())
                    if self.first_only:
                        break
        except Exception as err:  # noqa: BLE001 - a timeout or a closed connection
            self.error = err
        finally:
            resp.close()


# ---- the server process ----

class StartError(Exception):
    """The server exited, or printed no `listening on` line in time."""


class Server:
    """One `varpulis server` child process."""

    def __init__(self, binary, api_key, state_dir=None, store=None, encryption_key=None,
                 extra=()):
        self.cmd = [binary, "server", "--port", "0", "--api-key", api_key]
        if state_dir is not None:
            self.cmd += ["--state-dir", state_dir]
        if store == "rocksdb":
            self.cmd += ["--store", "rocksdb"]
        self.env = dict(os.environ)
        if encryption_key is not None:
            self.cmd.append("--encrypt")
            self.env["VARPULIS_ENCRYPTION_KEY"] = encryption_key
        self.cmd += list(extra)
        self.proc = None
        self.base = None
        self._stderr = []

    def start(self, timeout=60):
        """Starts the child and waits for `listening on ADDR` (at most `timeout` s)."""
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, text=True, encoding="utf-8",
                                     errors="replace")
        lines = queue.Queue()

        def read_stdout():
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        def read_stderr():
            for line in self.proc.stderr:
                self._stderr.append(line)

        threading.Thread(target=read_stdout, daemon=True).start()
        self._stderr_thread = threading.Thread(target=read_stderr, daemon=True)
        self._stderr_thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                if self.proc.poll() is None:
                    self.proc.kill()
                status = self.proc.wait()
                self._stderr_thread.join(5)
                raise StartError(f"`{' '.join(self.cmd)}` printed no `listening on` line "
                                 f"(exit status {status}); stderr:\n{self.stderr()}")
            match = re.match(r"^listening on (\S+)$", line)
            if match:
                self.base = f"http://{match.group(1)}/api/v1"
                return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL: no shutdown work at all."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._stderr_thread.join(5)

    def terminate(self, timeout=60):
        """SIGTERM; the exit status, or None if it did not exit within `timeout` s (it is
        then killed)."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        self._stderr_thread.join(5)
        return status

    def stderr(self):
        return "".join(self._stderr)


class Context:
    """What the flows share: the server, its flags, and every tenant created so far."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.admin_key = os.urandom(16).hex()
        self.encryption_key = os.urandom(32).hex() if args.encrypt else None
        self.server = None
        self.client = None
        self.recorded = False  # the stopped server's stderr is in stderr_logs
        self.stderr_logs = []  # (what, stderr) of every server that stopped
        self.keys = {}  # tenant id -> key, for every tenant that exists
        self.deleted_keys = []
        self.counter = 0

    def new_server(self, state_dir="same", extra=()):
        return Server(self.args.binary, self.admin_key,
                      state_dir=self.state_dir if state_dir == "same" else state_dir,
                      store=self.args.store if state_dir == "same" else None,
                      encryption_key=self.encryption_key if state_dir == "same" else None,
                      extra=extra)

    def start(self):
        self.server = self.new_server().start()
        self.client = Client(self.server.base)
        self.recorded = False
        self.wait_ready()

    def stopped(self, what):
        self.stderr_logs.append((what, self.server.stderr()))
        self.recorded = True

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            r = self.call("GET", "/ready")
            if r.status == 200:
                return
            check(time.monotonic() < deadline, f"/ready did not answer 200: {show(r)}")
            time.sleep(0.2)

    def call(self, method, path, body=None, key=None, admin=False):
        return self.client.request(method, path, body, key=key, admin=admin)

    def admin(self, method, path, body=None):
        return self.call(method, path, body, key=self.admin_key, admin=True)

    def tenant(self, name, tier=None):
        """Creates a tenant; returns (id, key)."""
        self.counter += 1
        name = f"{name}-{self.counter}"
        r = self.admin("POST", "/tenants", {"name": name, "quota_tier": tier})
        expect_status(r, 201, f"POST /tenants {name}")
        tid, key = r.json["id"], r.json["api_key"]
        self.keys[tid] = key
        return tid, key

    def pipeline(self, key, name, source):
        r = self.call("POST", "/pipelines", {"name": name, "source": source}, key)
        expect_status(r, 201, f"POST /pipelines {name}")
        check(r.json.get("status") == "running", f"new pipeline not running: {show(r)}")
        return r.json["id"]

    def send(self, key, pid, ev):
        """POST one event; its output events."""
        r = self.call("POST", f"/pipelines/{pid}/events", ev, key)
        expect_status(r, 200, f"POST /pipelines/{pid}/events {ev}")
        check(r.json.get("accepted") is True, f"accepted is not true: {show(r)}")
        return r.json["output_events"]

    def batch(self, key, pid, events):
        r = self.call("POST", f"/pipelines/{pid}/events-batch", {"events": events}, key)
        expect_status(r, 200, f"POST /pipelines/{pid}/events-batch")
        check(r.json.get("accepted") == len(events), f"accepted != {len(events)}: {show(r)}")
        return r.json["output_events"]

    def metrics(self, key, pid):
        r = self.call("GET", f"/pipelines/{pid}/metrics", key=key)
        expect_status(r, 200, f"GET /pipelines/{pid}/metrics")
        return r.json

    def usage(self, key):
        r = self.call("GET", "/usage", key=key)
        expect_status(r, 200, "GET /usage")
        return r.json

    def checkpoint(self, key, pid):
        r = self.call("POST", f"/pipelines/{pid}/checkpoint", key=key)
        expect_status(r, 200, f"POST /pipelines/{pid}/checkpoint")
        text = r.json.get("checkpoint")
        check(isinstance(text, str) and text, f"no checkpoint text: {show(r)}")
        return text

    def all_tenants(self):
        r = self.admin("GET", "/tenants?limit=1000")
        expect_status(r, 200, "GET /tenants")
        return r.json["tenants"]


# ---- the flows ----

def health_and_ready_answer_200_without_a_key(ctx):
    for path in ("/health", "/ready"):
        r = ctx.call("GET", path)
        expect_status(r, 200, f"GET {path} without a key")
    check(ctx.call("GET", "/ready").json.get("status") == "ready", "ready's status")


def the_api_key_is_the_admin_key_and_the_key_of_the_default_tenant(ctx):
    tenants = ctx.all_tenants()
    default = [t for t in tenants if t["name"] == "default"]
    check(len(default) == 1, f"no single tenant named default: {tenants}")
    check(default[0]["quota_tier"] == "enterprise", f"default tenant's tier: {default[0]}")
    for name, value in ENTERPRISE.items():
        check(default[0]["quota"][name] == value, f"default tenant's quota: {default[0]}")
    u = ctx.usage(ctx.admin_key)
    check(u.get("tenant_id") == default[0]["id"], f"/usage with the admin key: {u}")
    ctx.keys[default[0]["id"]] = ctx.admin_key
    expect_status(ctx.call("GET", "/pipelines", key=ctx.admin_key), 200,
                  "GET /pipelines with the --api-key key")


def an_admin_creates_tenants_with_the_quota_of_their_tier(ctx):
    seen_ids, seen_keys = set(), set()
    for tier, quota in (("free", FREE), (None, DEFAULT), ("pro", PRO),
                        ("enterprise", ENTERPRISE)):
        r = ctx.admin("POST", "/tenants", {"name": f"tier-{tier}", "quota_tier": tier})
        expect_status(r, 201, f"POST /tenants tier {tier}")
        body = r.json
        check({"id", "name", "api_key", "quota"} <= set(body), f"create's fields: {body}")
        check(body["name"] == f"tier-{tier}", f"name: {body}")
        check(isinstance(body["api_key"], str) and len(body["api_key"]) >= 64,
              f"api_key is not 256 bits of text: {body['api_key']!r}")
        for name, value in quota.items():
            check(body["quota"].get(name) == value, f"tier {tier}: quota {name}: {body}")
        check(isinstance(body["quota"].get("max_state_bytes"), int)
              and body["quota"]["max_state_bytes"] > 0, f"max_state_bytes: {body}")
        seen_ids.add(body["id"])
        seen_keys.add(body["api_key"])
        ctx.keys[body["id"]] = body["api_key"]
    check(len(seen_ids) == 4 and len(seen_keys) == 4, "ids and keys are not all distinct")
    # Without quota_tier at all: the default tier too.
    r = ctx.admin("POST", "/tenants", {"name": "no-tier"})
    expect_status(r, 201, "POST /tenants without quota_tier")
    check(r.json["quota"]["max_pipelines"] == 10, f"no tier -> default quota: {show(r)}")
    ctx.keys[r.json["id"]] = r.json["api_key"]
    expect_error(ctx.admin("POST", "/tenants", {"name": "x", "quota_tier": "gold"}),
                 400, "invalid_request", "an unknown quota_tier")
    expect_error(ctx.admin("POST", "/tenants", {"quota_tier": "free"}),
                 400, "invalid_request", "a tenant without a name")


def tenants_are_listed_a_page_at_a_time_and_never_show_a_key(ctx):
    for i in range(3):
        ctx.tenant(f"page{i}")
    r = ctx.admin("GET", "/tenants")
    expect_status(r, 200, "GET /tenants")
    total = r.json["total"]
    check(total >= 4, f"total: {total}")
    check(r.json["pagination"] == {"total": total, "limit": 50, "offset": 0,
                                   "has_more": total > 50}, f"default page: {r.json}")
    ids, texts = [], [r.text]
    offset = 0
    while True:
        r = ctx.admin("GET", f"/tenants?limit=2&offset={offset}")
        expect_status(r, 200, f"GET /tenants?limit=2&offset={offset}")
        texts.append(r.text)
        page = r.json["tenants"]
        expected_len = min(2, total - offset)
        check(len(page) == expected_len, f"page at {offset}: {len(page)} tenants: {r.json}")
        check(r.json["pagination"] == {"total": total, "limit": 2, "offset": offset,
                                       "has_more": offset + len(page) < total},
              f"pagination at {offset}: {r.json['pagination']}")
        check(r.json["total"] == total, f"total moved: {r.json}")
        ids += [t["id"] for t in page]
        if not r.json["pagination"]["has_more"]:
            break
        offset += 2
    check(len(ids) == total == len(set(ids)), f"pages hold {len(ids)} ids, total {total}")
    r = ctx.admin("GET", f"/tenants?limit=10&offset={total + 5}")
    expect_status(r, 200, "a page past the end")
    check(r.json["tenants"] == [] and r.json["pagination"]["has_more"] is False,
          f"a page past the end: {r.json}")
    expect_status(ctx.admin("GET", "/tenants?limit=1000"), 200, "limit=1000")
    for bad in ("limit=0", "limit=1001", "limit=x", "offset=-1"):
        expect_error(ctx.admin("GET", f"/tenants?{bad}"), 400, "invalid_request", bad)
    for tid in ids[:3]:
        r = ctx.admin("GET", f"/tenants/{tid}")
        expect_status(r, 200, f"GET /tenants/{tid}")
        texts.append(r.text)
    for text in texts:
        check("api_key" not in text, f"a list or get shows api_key: {text[:300]}")
        for key in list(ctx.keys.values()) + [ctx.admin_key]:
            check(key not in text, "a list or get shows a tenant's key")


def a_tenant_is_read_and_deleted_by_id_and_its_key_stops_working(ctx):
    tid, key = ctx.tenant("doomed", "pro")
    pid = ctx.pipeline(key, "p", PASS)
    r = ctx.admin("GET", f"/tenants/{tid}")
    expect_status(r, 200, "GET /tenants/{id}")
    for field in ("id", "name", "quota", "quota_tier"):
        check(field in r.json, f"GET /tenants/{{id}} has no {field}: {r.json}")
    check(r.json["id"] == tid and r.json["quota_tier"] == "pro", f"{r.json}")
    expect_error(ctx.admin("GET", f"/tenants/{os.urandom(16).hex()}"), 404,
                 "tenant_not_found", "GET of an unknown tenant")
    expect_status(ctx.admin("DELETE", f"/tenants/{tid}"), 200, "DELETE /tenants/{id}")
    del ctx.keys[tid]
    ctx.deleted_keys.append(key)
    expect_error(ctx.admin("GET", f"/tenants/{tid}"), 404, "tenant_not_found",
                 "GET of a deleted tenant")
    expect_error(ctx.admin("DELETE", f"/tenants/{tid}"), 404, "tenant_not_found",
                 "DELETE of a deleted tenant")
    expect_error(ctx.call("GET", f"/pipelines/{pid}", key=key), 401, "invalid_api_key",
                 "the key of a deleted tenant")
    check(all(t["id"] != tid for t in ctx.all_tenants()), "a deleted tenant is listed")


def tenant_endpoints(pid, checkpoint="00"):
    """Every tenant endpoint, with a body that would be valid."""
    ev = txn(1000, 20)
    return [
        ("GET", "/pipelines", None),
        ("POST", "/pipelines", {"name": "x", "source": PASS}),
        ("GET", "/usage", None),
    ] + pipeline_endpoints(pid, checkpoint, ev)


def pipeline_endpoints(pid, checkpoint="00", ev=None):
    ev = ev or txn(1000, 20)
    return [
        ("GET", f"/pipelines/{pid}", None),
        ("DELETE", f"/pipelines/{pid}", None),
        ("POST", f"/pipelines/{pid}/events", ev),
        ("POST", f"/pipelines/{pid}/events-batch", {"events": [ev]}),
        ("POST", f"/pipelines/{pid}/checkpoint", None),
        ("POST", f"/pipelines/{pid}/restore", {"checkpoint": checkpoint}),
        ("POST", f"/pipelines/{pid}/reload", {"source": PASS}),
        ("GET", f"/pipelines/{pid}/metrics", None),
        ("GET", f"/pipelines/{pid}/logs", None),
    ]


def admin_endpoints(tid):
    return [
        ("GET", "/tenants", None),
        ("POST", "/tenants", {"name": "new"}),
        ("GET", f"/tenants/{tid}", None),
        ("DELETE", f"/tenants/{tid}", None),
    ]


def every_endpoint_answers_401_without_a_key_or_with_a_wrong_key(ctx):
    tid, key = ctx.tenant("auth-a")
    pid = ctx.pipeline(key, "secret-pipeline", PASS)
    wrong = "vpk_" + os.urandom(32).hex()
    for method, path, body in tenant_endpoints(pid):
        what = f"{method} {path}"
        expect_error(ctx.call(method, path, body), 401, "invalid_api_key", f"{what}, no key")
        expect_error(ctx.call(method, path, body, key=wrong), 401, "invalid_api_key",
                     f"{what}, a wrong key")
        expect_error(ctx.call(method, path, body, key=ctx.admin_key, admin=True), 401,
                     "invalid_api_key", f"{what}, only the admin header")
    for method, path, body in admin_endpoints(tid):
        what = f"{method} {path}"
        expect_error(ctx.call(method, path, body), 401, "invalid_admin_key", f"{what}, no key")
        expect_error(ctx.call(method, path, body, key=wrong, admin=True), 401,
                     "invalid_admin_key", f"{what}, a wrong admin key")
    # Nothing of the above touched the pipeline.
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    expect_status(r, 200, "the pipeline after the 401s")
    check(ctx.metrics(key, pid)["events_in"] == 0, "a refused request sent an event")


def another_tenants_pipeline_is_404_and_shows_nothing_of_it(ctx):
    _, a_key = ctx.tenant("owner")
    _, b_key = ctx.tenant("intruder")
    name, source = "owners-private-pipeline", "stream Owned = Txn .where(amount > 12345)"
    pid = ctx.pipeline(a_key, name, source)
    ctx.send(a_key, pid, txn(1000, 20000))
    checkpoint = ctx.checkpoint(a_key, pid)
    before = ctx.metrics(a_key, pid)
    nowhere = os.urandom(16).hex()
    for (method, path, body), (_, path2, body2) in zip(
            pipeline_endpoints(pid, checkpoint), pipeline_endpoints(nowhere, checkpoint)):
        what = f"{method} {path} with another tenant's key"
        r = ctx.call(method, path, body, key=b_key)
        expect_error(r, 404, "pipeline_not_found", what)
        check(name not in r.text and "12345" not in r.text and "Owned" not in r.text,
              f"{what} leaks the pipeline: {r.text[:300]}")
        r2 = ctx.call(method, path2, body2, key=b_key)
        check((r2.status, (r2.json or {}).get("code")) == (r.status, r.json.get("code")),
              f"{what}: {show(r)}, but an unknown id gives {show(r2)}")
    listed = ctx.call("GET", "/pipelines", key=b_key)
    expect_status(listed, 200, "the intruder's list")
    check(pid not in listed.text and name not in listed.text, "another tenant's list shows it")
    r = ctx.call("GET", f"/pipelines/{pid}", key=a_key)
    expect_status(r, 200, "the owner's pipeline after the 404s")
    check(r.json["source"] == source, f"the intruder changed the source: {r.json}")
    after = ctx.metrics(a_key, pid)
    check(after["events_in"] == before["events_in"],
          f"the intruder's events reached it: {before} -> {after}")


def admin_endpoints_refuse_a_tenant_key(ctx):
    tid, key = ctx.tenant("not-an-admin")
    for method, path, body in admin_endpoints(tid):
        for admin in (True, False):
            header = "x-admin-key" if admin else "x-api-key"
            expect_error(ctx.call(method, path, body, key=key, admin=admin), 401,
                         "invalid_admin_key", f"{method} {path} with a tenant key in {header}")
    expect_status(ctx.admin("GET", f"/tenants/{tid}"), 200, "the tenant still exists")


def pipelines_are_created_listed_read_and_deleted(ctx):
    _, key = ctx.tenant("pipelines")
    r = ctx.call("POST", "/pipelines", {"name": "orders", "source": PASS}, key)
    expect_status(r, 201, "POST /pipelines")
    check(set(r.json) >= {"id", "name", "status"} and r.json["name"] == "orders"
          and r.json["status"] == "running", f"create's answer: {r.json}")
    pid = r.json["id"]
    other = ctx.pipeline(key, "other", COUNT)
    r = ctx.call("GET", "/pipelines", key=key)
    expect_status(r, 200, "GET /pipelines")
    listed = {p["id"]: p for p in r.json["pipelines"]}
    check(set(listed) == {pid, other}, f"list: {r.json}")
    for p in listed.values():
        check({"id", "name", "status", "source", "uptime_secs"} <= set(p), f"PipelineInfo: {p}")
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    expect_status(r, 200, "GET /pipelines/{id}")
    info = r.json
    check(info["id"] == pid and info["name"] == "orders" and info["status"] == "running"
          and info["source"] == PASS, f"PipelineInfo: {info}")
    check(isinstance(info["uptime_secs"], int) and info["uptime_secs"] >= 0, f"uptime: {info}")
    expect_status(ctx.call("DELETE", f"/pipelines/{pid}", key=key), 200, "DELETE")
    expect_error(ctx.call("GET", f"/pipelines/{pid}", key=key), 404, "pipeline_not_found",
                 "GET of a deleted pipeline")
    expect_error(ctx.call("DELETE", f"/pipelines/{pid}", key=key), 404, "pipeline_not_found",
                 "DELETE of a deleted pipeline")
    expect_error(ctx.call("POST", f"/pipelines/{pid}/events", txn(1, 1), key), 404,
                 "pipeline_not_found", "an event to a deleted pipeline")
    r = ctx.call("GET", "/pipelines", key=key)
    check([p["id"] for p in r.json["pipelines"]] == [other], f"list after delete: {r.json}")


def a_vpl_error_is_400_parse_error_with_line_and_column(ctx):
    _, key = ctx.tenant("vpl")
    r = ctx.call("POST", "/pipelines", {"name": "bad", "source": BROKEN}, key)
    expect_error(r, 400, "parse_error", "a VPL error")
    check(LINE_COLUMN.search(r.json["error"]) and "2:" in r.json["error"],
          f"no line:column (2:18) in {r.json['error']!r}")
    r = ctx.call("GET", "/pipelines", key=key)
    check(r.json["pipelines"] == [], f"a pipeline that does not compile was created: {r.json}")


def an_event_takes_its_time_from_timestamp_or_else_the_receive_time(ctx):
    _, key = ctx.tenant("events")
    pid = ctx.pipeline(key, "p", PASS)
    r = ctx.call("POST", f"/pipelines/{pid}/events", txn(5000, 7), key)
    expect_status(r, 200, "an event with a timestamp in ms")
    check(r.json == {"accepted": True, "output_events": [
        {"event_type": "Big", "timestamp": 5000, "fields": {"amount": 7}}]},
        f"the answer: {r.json}")
    for stamp, ms in (("1970-01-01T00:00:06Z", 6000),
                      ("2020-01-01T00:00:00.250Z", 1_577_836_800_250),
                      ("2020-01-01T01:00:00.250+01:00", 1_577_836_800_250)):
        out = ctx.send(key, pid, txn(stamp, 7))
        check(len(out) == 1, f"{stamp}: outputs {out}")
        expect_output_event(out[0], stamp)
        check(out[0]["timestamp"] == ms, f"{stamp} is {ms} ms, the output says {out[0]}")
    before = now_ms()
    out = ctx.send(key, pid, event("Txn", amount=8))
    after = now_ms()
    check(len(out) == 1 and before - 2000 <= out[0]["timestamp"] <= after + 2000,
          f"an event without timestamp got {out} (receive time {before}..{after})")
    check(ctx.send(key, pid, event("Other", 9000, amount=1)) == [],
          "an event no stream reads has outputs")
    path = f"/pipelines/{pid}/events"
    for bad, what in (({"event_type": "Txn", "timestamp": 1, "amount": 1}, "a top-level field"),
                      ({"event_type": "Txn", "timestamp": "yesterday"}, "a bad timestamp"),
                      ({"event_type": "Txn", "timestamp": 1.5}, "a fractional timestamp"),
                      ({"event_type": 5}, "a numeric event_type"),
                      ({"fields": {"amount": 1}}, "no event_type"),
                      ([txn(1, 1)], "an array")):
        expect_error(ctx.call("POST", path, bad, key), 400, "invalid_event", what)
    check(ctx.metrics(key, pid)["events_in"] == 6, "refused events were counted")


def a_batch_is_accepted_whole_and_says_how_long_it_took(ctx):
    _, key = ctx.tenant("batch")
    pid = ctx.pipeline(key, "p", PASS)
    r = ctx.call("POST", f"/pipelines/{pid}/events-batch",
                 {"events": [txn(1000, 5), txn(2000, 0), txn(3000, 7)]}, key)
    expect_status(r, 200, "a batch of 3")
    check(set(r.json) == {"accepted", "output_events", "processing_time_us"},
          f"batch answer fields: {r.json}")
    check(r.json["accepted"] == 3, f"accepted: {r.json}")
    check(isinstance(r.json["processing_time_us"], int) and r.json["processing_time_us"] >= 0,
          f"processing_time_us: {r.json}")
    out = r.json["output_events"]
    for ev in out:
        expect_output_event(ev, "batch output")
    check([(e["timestamp"], e["fields"]["amount"]) for e in out] == [(1000, 5), (3000, 7)],
          f"batch outputs: {out}")
    out = ctx.batch(key, pid, [event("Txn", amount=1), event("Txn", amount=2)])
    check(len(out) == 2 and out[0]["timestamp"] == out[1]["timestamp"],
          f"events of one batch without timestamp share its receive time: {out}")
    check(ctx.metrics(key, pid)["events_in"] == 5, "events_in after two batches")


def a_batch_with_a_bad_third_event_is_refused_whole_with_its_index(ctx):
    _, key = ctx.tenant("bad-batch")
    pid = ctx.pipeline(key, "p", COUNT)
    ctx.batch(key, pid, [txn(1000, 10)])
    before = ctx.metrics(key, pid)["events_in"]
    path = f"/pipelines/{pid}/events-batch"
    for bad in ({"event_type": "Txn", "fields": [1]},
                {"event_type": "Txn", "timestamp": 3000, "amount": 30},
                {"fields": {"amount": 30}}):
        r = ctx.call("POST", path, {"events": [txn(2000, 20), txn(3000, 30), bad]}, key)
        expect_error(r, 400, "invalid_event", f"a batch whose third event is {bad}")
        check(r.json.get("index") == 2, f"index of the bad event: {show(r)}")
        after = ctx.metrics(key, pid)["events_in"]
        check(after == before, f"a refused batch moved events_in {before} -> {after}")
    # Nothing was applied: the count window still holds one event, so four more close it.
    out = ctx.batch(key, pid, [txn(2000, 20), txn(3000, 30), txn(4000, 40), txn(5000, 50)])
    check(len(out) == 1 and out[0]["fields"] == {"sum": 150, "n": 5},
          f"the window after refused batches: {out}")


def malformed_json_is_400_invalid_json_naming_the_position(ctx):
    _, key = ctx.tenant("json")
    pid = ctx.pipeline(key, "p", PASS)
    r = ctx.call("POST", f"/pipelines/{pid}/events", b'{"event_type": "Txn",\n "fields": {',
                 key)
    expect_error(r, 400, "invalid_json", "a truncated body")
    check("line 2" in r.json["error"] and "column" in r.json["error"],
          f"the position is not named: {r.json['error']!r}")
    expect_error(ctx.call("POST", f"/pipelines/{pid}/events-batch", b"not json", key),
                 400, "invalid_json", "not JSON at all")
    expect_error(ctx.call("POST", "/tenants", b"{'name': 1}", ctx.admin_key, admin=True),
                 400, "invalid_json", "malformed JSON to the admin API")
    r = ctx.call("POST", "/pipelines", {"name": "x"}, key)
    expect_error(r, 400, "invalid_request", "a pipeline without source")
    check("source" in r.json["error"], f"the missing field is not named: {r.json['error']!r}")
    expect_error(ctx.call("POST", "/pipelines", {"name": "x", "source": PASS, "extra": 1}, key),
                 400, "invalid_request", "an unknown field in a request body")
    expect_error(ctx.call("GET", "/nowhere", key=key), 404, "not_found", "an unknown path")
    expect_error(ctx.call("PUT", "/pipelines", key=key), 405, "method_not_allowed",
                 "a wrong method")


def a_body_over_max_body_bytes_is_413_payload_too_large(ctx):
    # A second server, in memory, with a 4 KiB limit (the main one keeps the 16 MiB default).
    small = ctx.new_server(state_dir=None, extra=["--max-body-bytes", "4096"]).start()
    try:
        client = Client(small.base)
        key = ctx.admin_key  # the default tenant's key
        r = client.request("POST", "/pipelines", {"name": "p", "source": PASS}, key=key)
        expect_status(r, 201, "POST /pipelines on the small server")
        pid = r.json["id"]
        path = f"/pipelines/{pid}/events"
        r = client.request("POST", path, event("Txn", 1, amount=1, s="x" * 3000), key=key)
        expect_status(r, 200, "a 3 KB event under a 4 KiB limit")
        r = client.request("POST", path, event("Txn", 2, amount=1, s="x" * 8192), key=key)
        expect_error(r, 413, "payload_too_large", "an 8 KB event over a 4 KiB limit")
        r = client.request("POST", f"/pipelines/{pid}/events-batch",
                           {"events": [event("Txn", 3, amount=1, s="y" * 1000)] * 8}, key=key)
        expect_error(r, 413, "payload_too_large", "an 8 KB batch over a 4 KiB limit")
        r = client.request("GET", f"/pipelines/{pid}/metrics", key=key)
        check(r.json["events_in"] == 1, f"a refused body was applied: {show(r)}")
    finally:
        small.kill9()
        ctx.stderr_logs.append(("the memory server", small.stderr()))
    check("warning" in small.stderr() and "memory" in small.stderr(),
          f"a server without --state-dir does not warn: {small.stderr()!r}")


def a_checkpoint_restores_and_a_bad_one_changes_nothing(ctx):
    _, key = ctx.tenant("checkpoint")
    pid = ctx.pipeline(key, "p", COUNT)
    ctx.batch(key, pid, [txn(1000, 10), txn(2000, 20)])
    r = ctx.call("POST", f"/pipelines/{pid}/checkpoint", key=key)
    expect_status(r, 200, "POST checkpoint")
    saved = r.json.get("checkpoint")
    check(isinstance(saved, str) and saved, f"checkpoint answer: {show(r)}")
    check(ctx.batch(key, pid, [txn(3000, 30), txn(4000, 40)]) == [], "window closed early")
    qid = ctx.pipeline(key, "q", OTHER_PROGRAM)
    ctx.send(key, qid, event("Txn", 1000, k="a", amount=1))
    other = ctx.checkpoint(key, qid)
    last = "1" if saved[-1] == "0" else "0"
    middle = len(saved) // 2
    flipped_middle = saved[:middle] + ("1" if saved[middle] == "0" else "0") + saved[middle + 1:]
    path = f"/pipelines/{pid}/restore"
    for bad, what in (("", "an empty text"), ("zz", "not hex"), ("garbage!", "garbage"),
                      ("00", "two bytes"), (saved[:len(saved) // 2], "a truncated text"),
                      (saved[:-1] + last, "its last digit changed"),
                      (flipped_middle, "a digit in the middle changed"),
                      (other, "another program's checkpoint")):
        expect_error(ctx.call("POST", path, {"checkpoint": bad}, key), 400,
                     "invalid_checkpoint", f"restore of {what}")
    expect_error(ctx.call("POST", path, {"checkpoint": 5}, key), 400, "invalid_request",
                 "a checkpoint that is not a string")
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    check(r.json.get("status") == "running", f"after bad restores: {r.json}")
    # The bad restores changed nothing: the window holds 4 events, the fifth closes it.
    out = ctx.send(key, pid, txn(5000, 50))
    check(len(out) == 1 and out[0]["fields"] == {"sum": 150, "n": 5},
          f"the window after bad restores: {out}")
    r = ctx.call("POST", path, {"checkpoint": saved}, key)
    expect_status(r, 200, "restore of the saved checkpoint")
    # Back to 10 and 20: three more events close the window again.
    check(ctx.batch(key, pid, [txn(3000, 30), txn(4000, 40)]) == [], "restored window closed")
    out = ctx.send(key, pid, txn(5000, 50))
    check(len(out) == 1 and out[0]["fields"] == {"sum": 150, "n": 5},
          f"the window after the restore: {out}")


def reload_swaps_the_program_and_a_broken_source_keeps_the_old_one(ctx):
    _, key = ctx.tenant("reload")
    old = "stream Big = Txn .where(amount > 100)"
    new = "stream Big = Txn .where(amount > 10)"
    pid = ctx.pipeline(key, "p", old)
    check(ctx.send(key, pid, txn(1000, 50)) == [], "the old program let 50 through")
    path = f"/pipelines/{pid}/reload"
    r = ctx.call("POST", path, {"source": new}, key)
    expect_status(r, 200, "reload")
    check(r.json == {"reloaded": True}, f"reload's answer: {r.json}")
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    check(r.json["source"] == new and r.json["status"] == "running", f"after reload: {r.json}")
    check(len(ctx.send(key, pid, txn(2000, 50))) == 1, "the new program does not run")
    r = ctx.call("POST", path, {"source": BROKEN}, key)
    expect_error(r, 400, "parse_error", "a broken reload")
    check(LINE_COLUMN.search(r.json["error"]), f"no line:column: {r.json['error']!r}")
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    check(r.json["source"] == new and r.json["status"] == "running",
          f"after a broken reload: {r.json}")
    check(len(ctx.send(key, pid, txn(3000, 50))) == 1, "the old program stopped running")


def metrics_are_per_pipeline_and_usage_totals_the_tenant(ctx):
    tid, key = ctx.tenant("metrics")
    p = ctx.pipeline(key, "p", PASS)
    q = ctx.pipeline(key, "q", PASS)
    ctx.batch(key, p, [txn(1000, 20), txn(2000, 30), txn(3000, 0)])
    ctx.batch(key, q, [txn(1000, 1)])
    mp, mq = ctx.metrics(key, p), ctx.metrics(key, q)
    for m in (mp, mq):
        for field in ("events_in", "output_events", "state_bytes", "late_events_dropped",
                      "watermark_ms", "checkpoints", "last_checkpoint_id"):
            check(field in m, f"metrics have no {field}: {m}")
    check(mp["pipeline_id"] == p and mq["pipeline_id"] == q, f"pipeline_id: {mp} {mq}")
    check((mp["events_in"], mp["output_events"]) == (3, 2), f"p's metrics: {mp}")
    check((mq["events_in"], mq["output_events"]) == (1, 1), f"q's metrics: {mq}")
    u = ctx.usage(key)
    check(u.get("tenant_id") == tid, f"usage tenant_id: {u}")
    check((u["events_in"], u["output_events"], u["active_pipelines"]) == (4, 3, 2),
          f"usage totals: {u}")
    check(isinstance(u.get("state_bytes"), int), f"usage state_bytes: {u}")
    check(u["quota"]["max_pipelines"] == 10, f"usage quota: {u}")


def a_free_tenant_gets_two_pipelines_of_five_streams(ctx):
    _, key = ctx.tenant("free-pipelines", "free")
    ctx.pipeline(key, "one", PASS)
    ctx.pipeline(key, "two", PASS)
    r = ctx.call("POST", "/pipelines", {"name": "three", "source": PASS}, key)
    expect_error(r, 429, "quota_exceeded", "a free tenant's third pipeline")
    check(len(ctx.call("GET", "/pipelines", key=key).json["pipelines"]) == 2,
          "the refused third pipeline was created")
    _, key = ctx.tenant("free-streams", "free")
    expect_error(ctx.call("POST", "/pipelines", {"name": "six", "source": streams(6)}, key),
                 429, "quota_exceeded", "six streams on the free tier")
    pid = ctx.pipeline(key, "five", streams(5))
    expect_error(ctx.call("POST", f"/pipelines/{pid}/reload", {"source": streams(6)}, key),
                 429, "quota_exceeded", "a reload to six streams on the free tier")
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    check(r.json["source"] == streams(5), f"the refused reload changed the source: {r.json}")


def a_free_tenant_flooding_past_100_events_a_second_gets_429_with_retry_after(ctx):
    _, key = ctx.tenant("flood", "free")
    _, quiet_key = ctx.tenant("quiet")
    pid = ctx.pipeline(key, "p", PASS)
    quiet = ctx.pipeline(quiet_key, "q", PASS)
    body = {"events": [txn(i, 1) for i in range(50)]}
    path = f"/pipelines/{pid}/events-batch"
    accepted, refused = 0, None
    started = time.monotonic()
    for i in range(40):  # 2,000 events, sent as fast as the server answers
        r = ctx.call("POST", path, body, key)
        if r.status == 200:
            accepted += 50
            continue
        refused = r
        break
    elapsed = time.monotonic() - started
    check(refused is not None, f"{accepted} events in {elapsed:.2f} s and no 429")
    check(accepted >= 50, "the first batch of a full bucket was refused")
    expect_error(refused, 429, "rate_limited", "a flood")
    retry = refused.headers.get("Retry-After")
    check(retry is not None and retry.isdigit() and int(retry) >= 1,
          f"Retry-After is not a number of seconds: {retry!r}")
    got = ctx.metrics(key, pid)["events_in"]
    check(got == accepted, f"events_in {got}, accepted {accepted}: a refused batch was applied")
    r = ctx.call("POST", f"/pipelines/{quiet}/events-batch", body, quiet_key)
    expect_status(r, 200, "another tenant during the flood")


def the_logs_stream_carries_each_output_event(ctx):
    _, key = ctx.tenant("logs")
    pid = ctx.pipeline(key, "p", PASS)
    reader = LogReader(f"{ctx.client.base}/pipelines/{pid}/logs", key)
    reader.start()
    reader.connected.wait(2)  # the headers may come only with the first event
    line = None
    deadline = time.monotonic() + 15
    while line is None and time.monotonic() < deadline:
        ctx.send(key, pid, txn(7000, 20))
        try:
            line = reader.data.get(timeout=0.5)
        except queue.Empty:
            pass
    check(reader.error is None or line is not None, f"the logs stream failed: {reader.error!r}")
    check(line is not None, "no data: line within 15 s")
    check(reader.status == 200 and reader.content_type.startswith("text/event-stream"),
          f"logs answer: {reader.status} {reader.content_type!r}")
    data = json.loads(line)
    check(data == {"event_type": "Big", "timestamp": 7000, "data": {"amount": 20}},
          f"a data: line is not {{event_type, timestamp, data}}: {data}")
    reader.join(5)


def a_second_server_on_the_same_state_dir_fails_at_start(ctx):
    second = ctx.new_server()
    try:
        second.start(timeout=60)
    except StartError as err:
        ctx.stderr_logs.append(("the second server", second.stderr()))
        check(second.proc.returncode != 0, f"exit status 0: {err}")
        check("in use" in second.stderr(), f"no clear message: {second.stderr()!r}")
        return
    second.kill9()
    raise Failed("a second server started on the same state directory")


# ---- recovery ----

def start_recovery(ctx, name):
    """A tenant with a count and a session pipeline, both half full. Returns what the second
    half needs."""
    tid, key = ctx.tenant(name, "pro")
    count = ctx.pipeline(key, "totals", COUNT)
    session = ctx.pipeline(key, "sessions", SESSION)
    check(ctx.batch(key, count, [txn(1000, 10), txn(2000, 20)]) == [], "count window early")
    ctx.checkpoint(key, count)  # restart = this checkpoint + the ingest log after it
    check(ctx.send(key, count, txn(3000, 30)) == [], "count window closed early")
    check(ctx.send(key, session, click(1000, 100)) == [], "session closed early")
    ctx.checkpoint(key, session)
    check(ctx.send(key, session, click(2000, 100)) == [], "session closed early")
    return {"tid": tid, "key": key, "count": count, "session": session}


def finish_recovery(ctx, r):
    """The rest of the events; the outputs of both pipelines."""
    key = r["key"]
    count = ctx.send(key, r["count"], txn(4000, 40)) + ctx.send(key, r["count"], txn(5000, 50))
    session = ctx.send(key, r["session"], click(3000, 100))
    session += ctx.send(key, r["session"], click(60_000, 1))
    return count, session


def expect_windows_completed(count, session, reference):
    check(len(count) == 1 and count[0]["fields"] == {"sum": 150, "n": 5}
          and count[0]["timestamp"] == 5000, f"count window: {count}, expected sum 150 / n 5")
    check(len(session) == 1 and session[0]["fields"] == {"user": "ann", "n": 3, "sum": 300}
          and session[0]["timestamp"] == 13000,
          f"session window: {session}, expected n 3 / sum 300")
    check((count, session) == reference, f"outputs differ from an uninterrupted run: "
                                         f"{(count, session)} != {reference}")


def uninterrupted_reference(ctx):
    r = start_recovery(ctx, "uninterrupted")
    return finish_recovery(ctx, r)


def pipelines_of(ctx, key):
    r = ctx.call("GET", "/pipelines", key=key)
    expect_status(r, 200, "GET /pipelines")
    return sorted(({k: v for k, v in p.items() if k != "uptime_secs"}
                   for p in r.json["pipelines"]), key=lambda p: p["id"])


def snapshot(ctx, recovery):
    tenants = sorted(({k: v for k, v in t.items() if k != "usage"} for t in ctx.all_tenants()),
                     key=lambda t: t["id"])
    pipelines = {tid: pipelines_of(ctx, key) for tid, key in ctx.keys.items()}
    usage = {tid: ctx.usage(key) for tid, key in ctx.keys.items()}
    metrics = {pid: ctx.metrics(recovery["key"], pid)["events_in"]
               for pid in (recovery["count"], recovery["session"])}
    return tenants, pipelines, usage, metrics


def expect_everything_back(ctx, before, recovery, how):
    tenants, pipelines, usage, metrics = before
    now = snapshot(ctx, recovery)
    check(now[0] == tenants, f"after {how}, tenants (ids, names, tiers, quotas) differ:\n"
                             f"{json.dumps(tenants)}\n{json.dumps(now[0])}")
    for tid in ctx.keys:
        check(now[1][tid] == pipelines[tid], f"after {how}, tenant {tid}'s pipelines differ: "
                                             f"{pipelines[tid]} -> {now[1][tid]}")
    for key in ctx.deleted_keys:
        expect_error(ctx.call("GET", "/pipelines", key=key), 401, "invalid_api_key",
                     f"after {how}, a deleted tenant's key")
    tid = recovery["tid"]
    for field in ("events_in", "output_events", "active_pipelines"):
        check(now[2][tid][field] == usage[tid][field],
              f"after {how}, usage {field}: {usage[tid]} -> {now[2][tid]}")
    check(now[2][tid]["quota"] == usage[tid]["quota"], f"after {how}, quota: {now[2][tid]}")
    check(now[3] == metrics, f"after {how}, events_in per pipeline: {metrics} -> {now[3]}")
    for other, u in usage.items():
        if other != tid and (u["events_in"], u["output_events"]) != (
                now[2][other]["events_in"], now[2][other]["output_events"]):
            print(f"# note: after {how}, tenant {other}'s usage went from "
                  f"{u['events_in']}/{u['output_events']} to "
                  f"{now[2][other]['events_in']}/{now[2][other]['output_events']} "
                  f"(events_in/output_events)")


def a_kill_9_loses_no_tenant_key_quota_usage_pipeline_or_window(ctx):
    reference = uninterrupted_reference(ctx)
    recovery = start_recovery(ctx, "recovery-kill")
    before = snapshot(ctx, recovery)
    ctx.server.kill9()
    ctx.stopped("the server killed with SIGKILL")
    ctx.start()
    expect_everything_back(ctx, before, recovery, "kill -9")
    count, session = finish_recovery(ctx, recovery)
    expect_windows_completed(count, session, reference)


def a_sigterm_exits_0_and_the_restart_continues_every_window(ctx):
    reference = uninterrupted_reference(ctx)
    recovery = start_recovery(ctx, "recovery-term")
    before = snapshot(ctx, recovery)
    status = ctx.server.terminate(timeout=60)
    ctx.stopped("the server stopped with SIGTERM")
    check(status == 0, f"exit status after SIGTERM: {status} (None: still running after 60 s)"
                       f"; stderr:\n{ctx.server.stderr()}")
    ctx.start()
    expect_everything_back(ctx, before, recovery, "SIGTERM")
    count, session = finish_recovery(ctx, recovery)
    expect_windows_completed(count, session, reference)


def a_sigterm_with_an_open_logs_stream_still_exits_0(ctx):
    _, key = ctx.tenant("logs-at-stop")
    pid = ctx.pipeline(key, "p", PASS)
    reader = LogReader(f"{ctx.client.base}/pipelines/{pid}/logs", key, first_only=False,
                       timeout=120)
    reader.start()
    reader.connected.wait(2)
    ctx.send(key, pid, txn(1000, 20))
    check(reader.data.get(timeout=10) is not None, "no data: line")
    started = time.monotonic()
    status = ctx.server.terminate(timeout=30)
    ctx.stopped("the server stopped with SIGTERM while a logs stream was open")
    check(status == 0, f"with a logs stream open, SIGTERM gave exit status {status} "
                       f"(None: still running after 30 s) after "
                       f"{time.monotonic() - started:.1f} s")
    ctx.start()
    r = ctx.call("GET", f"/pipelines/{pid}", key=key)
    expect_status(r, 200, "the pipeline after the restart")


def the_server_never_panicked(ctx):
    logs = ctx.stderr_logs + [("the running server", ctx.server.stderr())]
    for what, text in logs:
        check("panicked" not in text, f"{what} panicked:\n{text[-2000:]}")


FLOWS = [
    health_and_ready_answer_200_without_a_key,
    the_api_key_is_the_admin_key_and_the_key_of_the_default_tenant,
    an_admin_creates_tenants_with_the_quota_of_their_tier,
    tenants_are_listed_a_page_at_a_time_and_never_show_a_key,
    a_tenant_is_read_and_deleted_by_id_and_its_key_stops_working,
    every_endpoint_answers_401_without_a_key_or_with_a_wrong_key,
    another_tenants_pipeline_is_404_and_shows_nothing_of_it,
    admin_endpoints_refuse_a_tenant_key,
    pipelines_are_created_listed_read_and_deleted,
    a_vpl_error_is_400_parse_error_with_line_and_column,
    an_event_takes_its_time_from_timestamp_or_else_the_receive_time,
    a_batch_is_accepted_whole_and_says_how_long_it_took,
    a_batch_with_a_bad_third_event_is_refused_whole_with_its_index,
    malformed_json_is_400_invalid_json_naming_the_position,
    a_body_over_max_body_bytes_is_413_payload_too_large,
    a_checkpoint_restores_and_a_bad_one_changes_nothing,
    reload_swaps_the_program_and_a_broken_source_keeps_the_old_one,
    metrics_are_per_pipeline_and_usage_totals_the_tenant,
    a_free_tenant_gets_two_pipelines_of_five_streams,
    a_free_tenant_flooding_past_100_events_a_second_gets_429_with_retry_after,
    the_logs_stream_carries_each_output_event,
    a_second_server_on_the_same_state_dir_fails_at_start,
    a_kill_9_loses_no_tenant_key_quota_usage_pipeline_or_window,
    a_sigterm_exits_0_and_the_restart_continues_every_window,
    a_sigterm_with_an_open_logs_stream_still_exits_0,
    the_server_never_panicked,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the varpulis binary")
    parser.add_argument("--store", choices=["file", "rocksdb"], default="file")
    parser.add_argument("--encrypt", action="store_true",
                        help="--encrypt, with a random VARPULIS_ENCRYPTION_KEY")
    parser.add_argument("--only", help="run only the flows whose name contains this")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the temporary state directory (its path is printed)")
    parser.add_argument("--verbose", action="store_true", help="print the server's stderr")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} is not an executable: build it with cargo build -p varpulis-cli")
    workdir = tempfile.mkdtemp(prefix="varpulis-client-")
    ctx = Context(args, workdir)
    passed = failed = 0
    try:
        try:
            ctx.start()
        except (StartError, Failed) as err:
            print(f"FAIL - the server starts: {err}")
            print("0 passed, 1 failed")
            return 1
        only = args.only.replace(" ", "_") if args.only else None
        for flow in FLOWS:
            if only and only not in flow.__name__:
                continue
            name = flow.__name__.replace("_", " ")
            try:
                flow(ctx)
                print(f"ok - {name}", flush=True)
                passed += 1
            except Failed as err:
                print(f"FAIL - {name}: {err}", flush=True)
                failed += 1
            except Exception as err:  # noqa: BLE001 - any error fails this flow only
                print(f"FAIL - {name}: {type(err).__name__}: {err}", flush=True)
                failed += 1
            if not ctx.server.running():
                if not ctx.recorded:
                    print(f"# the server stopped (exit status {ctx.server.proc.returncode})"
                          f"; stderr:\n{ctx.server.stderr()}", flush=True)
                    ctx.stopped("a server that stopped by itself")
                try:
                    ctx.start()
                except (StartError, Failed) as err:
                    print(f"FAIL - the server starts again: {err}")
                    failed += 1
                    break
    finally:
        if ctx.server is not None and ctx.server.running():
            ctx.server.kill9()
        if ctx.server is not None and not ctx.recorded:
            ctx.stopped("the last server")
        if failed or args.verbose:
            for what, text in ctx.stderr_logs:
                if text.strip():
                    print(f"# stderr of {what}:\n{text.rstrip()}")
        if args.keep_state:
            print(f"# state kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
