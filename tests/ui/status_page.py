#!/usr/bin/env python3
"""The status page (`GET /ui` of `varpulis server`) in a real browser: headless Chromium driven
through the DevTools protocol over a pipe, in Python (standard library only).

Usage:
    cargo build -p varpulis-cli
    python3 tests/ui/status_page.py --binary target/debug/varpulis [--chromium PATH]
                                    [--skip-if-missing] [--verbose]

It starts `varpulis server --port 0 --api-key <random> --state-dir <tempdir>`, creates a tenant
and a pipeline (whose name holds HTML, to check it is shown as text) over HTTP, sends events
and takes a checkpoint, then starts `chromium --headless=new --remote-debugging-pipe` (its
fds 3 and 4 carry the protocol: JSON messages, each ended by a NUL byte), opens /ui, types the
tenant key into the page's form and checks, from the DOM: the pipeline's name and counters,
that a new checkpoint shows up without a reload (the page polls), and the admin view of every
tenant. It saves a screenshot to $CARGO_TARGET_DIR/ui/status.png (target/ui/status.png
without the variable), and prints `ok - name` or `FAIL - name: why` per check, then
`N passed, N failed`; the exit status is 1 if any failed.

Without Chromium (not on PATH and no --chromium) it fails loudly, unless --skip-if-missing is
given (then it says so and exits 0).
"""

import argparse
import base64
import fcntl
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# Requests go to 127.0.0.1 only: never through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# A partitioned window: the more accounts, the larger the state, so the chart has a shape.
PROGRAM = ("stream Totals = Txn .partition_by(account) .window(1h) "
           ".aggregate(sum: sum(amount), n: count())")
# Shown as text by the page, never as markup.
PIPELINE_NAME = "totals <b>bold</b> & co"


class Failed(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failed(message)


# ---- the server ----

class Server:
    """One `varpulis server` child process."""

    def __init__(self, binary, api_key, state_dir):
        self.cmd = [binary, "server", "--port", "0", "--api-key", api_key,
                    "--state-dir", state_dir]
        self.proc = None
        self.root = None  # http://127.0.0.1:PORT
        self._stderr = []

    def start(self, timeout=60):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", errors="replace")
        lines = queue.Queue()

        def read_stdout():
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        def read_stderr():
            for line in self.proc.stderr:
                self._stderr.append(line)

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.stop()
                raise Failed(f"`{' '.join(self.cmd)}` printed no `listening on` line; "
                             f"stderr:\n{self.stderr()}")
            match = re.match(r"^listening on (\S+)$", line)
            if match:
                self.root = f"http://{match.group(1)}"
                return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stderr(self):
        return "".join(self._stderr)

    def call(self, method, path, body=None, key=None, admin=False):
        """A request under /api/v1; (status, json)."""
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["x-admin-key" if admin else "x-api-key"] = key
        req = urllib.request.Request(f"{self.root}/api/v1{path}", data=data, method=method,
                                     headers=headers)
        try:
            with OPENER.open(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def ok(self, method, path, body=None, key=None, admin=False, status=200):
        got, data = self.call(method, path, body, key, admin)
        check(got == status, f"{method} {path}: expected {status}, got {got}: {data}")
        return data


# ---- the browser ----

class Browser:
    """Headless Chromium over --remote-debugging-pipe: we write commands to its fd 3 and read
    answers and events from its fd 4, JSON messages each ended by a NUL byte."""

    def __init__(self, chromium, profile_dir, verbose=False):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Above 4, so moving them onto 3 and 4 in the child cannot clobber one another.
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def onto_3_and_4():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
               "--hide-scrollbars", "--remote-debugging-pipe",
               f"--user-data-dir={profile_dir}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=None if verbose else subprocess.DEVNULL,
                                     stderr=None if verbose else subprocess.DEVNULL,
                                     pass_fds=(3, 4), preexec_fn=onto_3_and_4)
        os.close(high_r)
        os.close(high_w)
        self._next_id = 0
        self._answers = {}
        self._cond = threading.Condition()
        self.events = queue.Queue()
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def send(self, method, params=None, session=True, timeout=30):
        """One command; its `result`, or Failed with the protocol's error."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next_id not in self._answers:
                left = deadline - time.monotonic()
                check(left > 0 and not self._closed,
                      f"{method}: no answer from chromium"
                      f"{' (it exited)' if self._closed else ''}")
                self._cond.wait(left)
            answer = self._answers.pop(self._next_id)
        check("error" not in answer, f"{method}: {answer.get('error')}")
        return answer.get("result", {})

    def open_page(self, width=1360, height=720):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url, timeout=30):
        answer = self.send("Page.navigate", {"url": url})
        check("errorText" not in answer, f"navigate {url}: {answer.get('errorText')}")
        self.wait_for("document.readyState === 'complete'", timeout, f"{url} loads")

    def eval(self, expression):
        """The value of a JavaScript expression (JSON-serializable), or Failed."""
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        check("exceptionDetails" not in result,
              f"{expression!r} threw: {result.get('exceptionDetails')}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout, what):
        """Polls `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.eval(expression)
            if last:
                return last
            time.sleep(0.1)
        raise Failed(f"{what}: still {last!r} after {timeout} s")

    def screenshot(self, path):
        # The whole page, not only the viewport.
        height = int(self.eval("document.documentElement.scrollHeight"))
        if height > 720:
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": 1360, "height": height, "deviceScaleFactor": 1,
                       "mobile": False})
        # Two animation frames: what the DOM holds now is painted.
        self.eval("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Failed:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)


# ---- the flows ----

def js(value):
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


def row(pid, cls):
    """The text of cell `cls` in the row of pipeline `pid`, or null."""
    return (f"((document.querySelector('tr[data-pipeline-id={js(pid)}] .{cls}') || {{}})"
            ".textContent || null)")


def send_accounts(server, key, pid, n, ts):
    events = [{"event_type": "Txn", "timestamp": ts + i,
               "fields": {"account": f"acct-{i}", "amount": 10 + i}} for i in range(n)]
    server.ok("POST", f"/pipelines/{pid}/events-batch", {"events": events}, key)


def checkpoint(server, key, pid):
    server.ok("POST", f"/pipelines/{pid}/checkpoint", key=key)
    return server.ok("GET", f"/pipelines/{pid}/metrics", key=key)["last_checkpoint_id"]


def log_in(browser, key, role):
    browser.eval(f"""(() => {{
        document.getElementById('key').value = {js(key)};
        document.getElementById('role').value = {js(role)};
        document.getElementById('login').requestSubmit();
        return true;
    }})()""")


def run(args, chromium, workdir, results):
    admin = "ui-" + secrets.token_hex(16)
    server = Server(args.binary, admin, os.path.join(workdir, "state")).start()
    browser = None

    def step(name, fn):
        try:
            fn()
            print(f"ok - {name}", flush=True)
            results["passed"] += 1
        except Failed as err:
            print(f"FAIL - {name}: {err}", flush=True)
            results["failed"] += 1
            raise

    try:
        tenant = server.ok("POST", "/tenants", {"name": "acme", "quota_tier": "pro"}, admin,
                           admin=True, status=201)
        key = tenant["api_key"]
        pid = server.ok("POST", "/pipelines", {"name": PIPELINE_NAME, "source": PROGRAM}, key,
                        status=201)["id"]
        # A few rounds of events and checkpoints, the state growing, for the chart.
        for n in (2, 4, 6, 9):
            send_accounts(server, key, pid, n, 1_000)
        first = checkpoint(server, key, pid)
        for n in (12, 16, 20):
            send_accounts(server, key, pid, n, 2_000)
            first = checkpoint(server, key, pid)

        browser = Browser(chromium, os.path.join(workdir, "chromium"), args.verbose)
        browser.open_page()
        ui = f"{server.root}/ui"

        def page_without_a_key_shows_no_data():
            browser.navigate(ui)
            check(browser.eval("document.title") == "Varpulis status", "the page's title")
            check(browser.eval("document.getElementById('tenants').children.length") == 0,
                  "data shown before a key was given")
            check(browser.eval("document.body.innerText.includes('acme')") is False,
                  "the tenant's name is on the page without a key")

        def a_wrong_key_is_refused_on_the_page():
            log_in(browser, "vpk_wrong", "tenant")
            text = browser.wait_for("document.getElementById('error').textContent", 10,
                                    "an error for a wrong key")
            check("invalid API key" in text, f"error shown: {text!r}")
            check(browser.eval("!document.getElementById('login').hidden"),
                  "the form is shown again")

        def the_tenant_key_shows_its_pipeline_as_text():
            log_in(browser, key, "tenant")
            browser.wait_for("document.body.dataset.loaded === 'true'", 10, "the page loads")
            name = browser.wait_for(row(pid, "name"), 10, "the pipeline's row")
            check(name == PIPELINE_NAME, f"name shown: {name!r}")
            check(browser.eval("document.querySelector('#tenants b') === null"),
                  "the pipeline's name was parsed as HTML")
            check(browser.eval(row(pid, "status")) == "running", "status")
            check(browser.eval(row(pid, "events-in")) == str(2 + 4 + 6 + 9 + 12 + 16 + 20),
                  f"events in: {browser.eval(row(pid, 'events-in'))!r}")
            shown = browser.eval(row(pid, "cp-id"))
            check(shown == f"#{first}", f"last checkpoint shown {shown!r}, expected #{first}")
            bars = browser.eval(f"document.querySelectorAll("
                                f"'tr[data-pipeline-id={js(pid)}] svg rect').length")
            check(bars == 4, f"{bars} bars in the chart, expected 4 checkpoints")
            check(browser.eval(row(pid, "cp-bytes")).endswith(("B", "KiB", "MiB")),
                  "size shown")

        def a_new_checkpoint_shows_up_without_a_reload():
            browser.eval("window.__not_reloaded = true")
            send_accounts(server, key, pid, 30, 3_000)
            # Two hours later: every window closes (outputs, a smaller state), and an event
            # of the first hour after that is late.
            send_accounts(server, key, pid, 1, 2 * 3_600_000)
            send_accounts(server, key, pid, 1, 1_000)
            latest = checkpoint(server, key, pid)
            check(latest > first, f"checkpoint ids {first} then {latest}")
            browser.wait_for(f"{row(pid, 'cp-id')} === {js('#' + str(latest))}", 15,
                             f"checkpoint #{latest} shown")
            check(browser.eval("window.__not_reloaded === true"), "the page was reloaded")
            m = server.ok("GET", f"/pipelines/{pid}/metrics", key=key)
            for cls, field in (("events-in", "events_in"), ("events-out", "output_events"),
                               ("late", "late_events_dropped")):
                check(browser.eval(row(pid, cls)) == str(m[field]),
                      f"{cls}: shown {browser.eval(row(pid, cls))!r}, metrics say {m[field]}")
            check(m["output_events"] > 0, f"no window closed: {m}")
            browser.screenshot(args.screenshot)

        def the_admin_key_shows_every_tenant():
            browser.eval("document.getElementById('logout').click()")
            browser.wait_for("!document.getElementById('login').hidden", 5, "the form is back")
            check(browser.eval("document.getElementById('tenants').children.length") == 0,
                  "data left after forgetting the key")
            log_in(browser, admin, "admin")
            names = browser.wait_for(
                "Array.from(document.querySelectorAll('section.tenant h2'))"
                ".map((h) => h.firstChild.textContent)", 10, "tenants shown")
            check(sorted(names) == ["acme", "default"], f"tenants shown: {names}")
            check(browser.eval(row(pid, "name")) == PIPELINE_NAME, "acme's pipeline shown")
            browser.screenshot(os.path.join(os.path.dirname(args.screenshot),
                                            "status-admin.png"))

        for fn in (page_without_a_key_shows_no_data, a_wrong_key_is_refused_on_the_page,
                   the_tenant_key_shows_its_pipeline_as_text,
                   a_new_checkpoint_shows_up_without_a_reload,
                   the_admin_key_shows_every_tenant):
            step(fn.__name__.replace("_", " "), fn)
    finally:
        if browser is not None:
            browser.close()
        server.stop()
        if results["failed"] or args.verbose:
            print(f"# stderr of the server:\n{server.stderr().rstrip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the varpulis binary")
    parser.add_argument("--chromium", help="the browser (default: chromium on PATH)")
    parser.add_argument("--skip-if-missing", action="store_true",
                        help="exit 0, saying so, when no chromium is found")
    parser.add_argument("--screenshot", help="where the PNG goes (default: "
                        "$CARGO_TARGET_DIR/ui/status.png, else target/ui/status.png)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the server's and the browser's stderr")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} is not an executable: build it with cargo build -p varpulis-cli")
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not os.access(chromium, os.X_OK):
        message = ("*** no chromium found (install it: apt-get install -y chromium, or pass "
                   "--chromium PATH): the status page was NOT tested in a browser ***")
        if args.skip_if_missing:
            print(f"skipped - {message}")
            return 0
        print(f"FAIL - {message}", file=sys.stderr)
        return 2
    if args.screenshot is None:
        target = os.environ.get("CARGO_TARGET_DIR") or "target"
        args.screenshot = os.path.join(target, "ui", "status.png")
    args.screenshot = os.path.abspath(args.screenshot)
    workdir = tempfile.mkdtemp(prefix="varpulis-ui-")
    results = {"passed": 0, "failed": 0}
    try:
        run(args, chromium, workdir, results)
    except Failed as err:
        if not results["failed"]:
            print(f"FAIL - setup: {err}")
            results["failed"] += 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not results["failed"]:
        print(f"# screenshot: {args.screenshot}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
