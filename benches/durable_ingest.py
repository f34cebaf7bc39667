#!/usr/bin/env python3
"""The cost of durable ingest in `varpulis server`, and its recovery time after kill -9.

Usage: python3 benches/durable_ingest.py [--binary PATH] [--clients C] [--seconds S]
                                         [--store file|rocksdb]
                                         [--durable-dir DIR] [--volatile-dir DIR]
                                         [--recovery-events N,N,...]

Builds `cargo build --release -p varpulis-cli` unless --binary is given.

Part 1, acknowledged events/s and p50/p99 acknowledgement latency, batch sizes 1, 100 and
1,000, C client threads (default 16) posting to ONE pipeline on keep-alive HTTP/1.1
connections for S seconds (default 5) each:
- "durable": the file store in --durable-dir (default: a temporary directory under /var/tmp,
  a real disk): every acknowledged request is in the ingest log and fsynced;
- "fsync disabled": the same binary and flags with the state directory in --volatile-dir
  (default /dev/shm, a tmpfs, where fsync returns at once): the same code path, the same
  writes, only the fsyncs cost nothing.
Both run in the same invocation, alternating, and the ratio is reported. A last row sends
single events from one client to the durable server: one request per append, the rate group
commit multiplies. The number of
requests per log append (group commit) is read from the server's Prometheus histogram
`varpulis_ingest_group_requests`.

Part 2, recovery: for each N of --recovery-events (default 10,000, 100,000, 1,000,000), a
server with checkpoints disabled in practice (--checkpoint-interval 1h) takes N events in
batches of 1,000, is killed with SIGKILL, and restarted on the same directory: the time from
the restart to its `listening on` line (it replays the whole log before it listens), the log
size replayed, and the replay rate.

The client is Python (standard library only): with the GIL, small requests are bounded by
the client; the table says how busy the client process was. The tenant is on the enterprise
tier (500,000 events/s): a request refused with 429 waits as told and is sent again, its
latency includes the wait, and the table counts the 429s. Wall-clock timing on a shared
machine: quote ratios within one run.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from varpulis_http import Conn, Throttled, pct  # beside this script

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-key-0123456789abcdef"
PROGRAM = ("stream Stats = SensorEvent .partition_by(zone) .window(1000) "
           ".aggregate(n: count(), avg_v: avg(value), max_v: max(value)) "
           ".emit(zone: zone, n: n, avg_v: avg_v, max_v: max_v)")


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "varpulis-cli"], cwd=ROOT,
                   check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "varpulis")


STORE = ["--store", "file"]


def start(binary, state_dir, extra=()):
    cmd = [binary, "server", "--port", "0", "--api-key", ADMIN, "--state-dir", str(state_dir),
           *STORE, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    took = time.perf_counter() - t0
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"server did not start: {line!r}")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, host, int(port), took




def setup(host, port):
    c = Conn(host, port)
    t = c.call("POST", "/tenants", {"name": "bench", "quota_tier": "enterprise"}, ADMIN,
               admin=True)
    p = c.call("POST", "/pipelines", {"name": "stats", "source": PROGRAM}, t["api_key"])
    return t["api_key"], p["id"]


def bodies(count, size, seed):
    rng = random.Random(seed)
    out, ts = [], seed * 10**9
    for _ in range(count):
        events = []
        for _ in range(size):
            ts += 1
            events.append({"event_type": "SensorEvent", "timestamp": ts,
                           "fields": {"zone": f"z{rng.randrange(100):02}",
                                      "value": round(rng.uniform(0, 200), 3)}})
        out.append(json.dumps({"events": events}).encode())
    return out


def client(host, port, key, pid, pool, deadline, latencies, throttled):
    c = Conn(host, port)
    i = 0
    while time.perf_counter() < deadline:
        body = pool[i % len(pool)]
        i += 1
        t0 = time.perf_counter()
        while True:
            try:
                c.call("POST", f"/pipelines/{pid}/events-batch", body, key)
                break
            except Throttled as t:
                # The enterprise tier's 500,000 events/s: wait as told, count it; the
                # latency of the request includes the wait.
                throttled.append(1)
                time.sleep(t.seconds)
        latencies.append(time.perf_counter() - t0)



def group_size(host, port):
    text = Conn(host, port).call("GET", "/metrics", key=ADMIN, admin=True, raw=True).decode()
    total = count = 0.0
    for line in text.splitlines():
        m = re.match(r"varpulis_ingest_group_requests_(sum|count)\{[^}]*\} (\S+)", line)
        if m:
            if m.group(1) == "sum":
                total += float(m.group(2))
            else:
                count += float(m.group(2))
    return total / count if count else 0.0


def measure(binary, base, size, clients, seconds):
    state = Path(tempfile.mkdtemp(prefix="varpulis-bench-", dir=base))
    proc, host, port, _ = start(binary, state)
    try:
        key, pid = setup(host, port)
        # Events reused across requests: event times repeat, which the count window ignores.
        pools = [bodies(max(1, 2000 // size), size, 1 + i) for i in range(clients)]
        lats = [[] for _ in range(clients)]
        throttled = []
        deadline = time.perf_counter() + seconds
        threads = [threading.Thread(target=client,
                                    args=(host, port, key, pid, pools[i], deadline, lats[i],
                                          throttled))
                   for i in range(clients)]
        c0, t0 = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        allat = [x for l in lats for x in l]
        return {
            "events_s": len(allat) * size / wall,
            "p50": pct(allat, 50),
            "p99": pct(allat, 99),
            "group": group_size(host, port),
            "client_cpu": cpu / wall,
            "throttled": len(throttled),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def recovery(binary, base, events):
    state = Path(tempfile.mkdtemp(prefix="varpulis-bench-", dir=base))
    try:
        flags = ["--checkpoint-interval", "1h"]
        proc, host, port, _ = start(binary, state, flags)
        key, pid = setup(host, port)
        c = Conn(host, port)
        batch = 1000
        for body in bodies(events // batch, batch, 7):
            c.call("POST", f"/pipelines/{pid}/events-batch", body, key)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # The file store's log entries; RocksDB keeps them in its own files (not split out).
        log_bytes = sum(f.stat().st_size for f in state.rglob("*")
                        if f.is_file() and "log" in f.parts) or None
        proc, host, port, took = start(binary, state, flags)
        m = Conn(host, port).call("GET", f"/pipelines/{pid}/metrics", key=key)
        assert m["events_in"] == events, m
        proc.terminate()
        proc.wait(timeout=120)
        return took, log_bytes
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--durable-dir", default="/var/tmp")
    ap.add_argument("--volatile-dir", default="/dev/shm")
    ap.add_argument("--recovery-events", default="10000,100000,1000000")
    ap.add_argument("--store", choices=["file", "rocksdb"], default="file",
                    help="rocksdb needs a binary built with --features persistence")
    a = ap.parse_args()
    STORE[1] = a.store
    binary = a.binary or build()
    print(f"# store {a.store}, {a.clients} clients on one pipeline, {a.seconds:g} s per cell; durable: "
          f"{a.durable_dir}, fsync disabled: {a.volatile_dir}")
    print("| batch size | mode | acknowledged events/s | p50 ms | p99 ms | requests per append "
          "| client CPU | 429s |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for size in (1, 100, 1000):
        durable = measure(binary, a.durable_dir, size, a.clients, a.seconds)
        volatile = measure(binary, a.volatile_dir, size, a.clients, a.seconds)
        for name, r in (("durable", durable), ("fsync disabled", volatile)):
            print(f"| {size:,} | {name} | {r['events_s']:,.0f} | {r['p50'] * 1000:.2f} | "
                  f"{r['p99'] * 1000:.2f} | {r['group']:.1f} | {r['client_cpu']:.0%} | "
                  f"{r['throttled']} |")
        ratios.append((size, durable["events_s"] / volatile["events_s"],
                       durable["p99"] / volatile["p99"]))
    # One client: every append carries one request (the cost group commit saves).
    alone = measure(binary, a.durable_dir, 1, 1, a.seconds)
    print(f"| 1, one client | durable | {alone['events_s']:,.0f} | {alone['p50'] * 1000:.2f} | "
          f"{alone['p99'] * 1000:.2f} | {alone['group']:.1f} | {alone['client_cpu']:.0%} | "
          f"{alone['throttled']} |")
    print()
    for size, thr, p99 in ratios:
        print(f"batch {size:,}: durable/fsync-disabled throughput {thr:.2f}x, p99 {p99:.2f}x")
    print()
    print("| events in the log | log bytes | restart to listening (s) | replayed events/s |")
    print("|---|---|---|---|")
    for n in (int(x) for x in a.recovery_events.split(",")):
        took, size = recovery(binary, a.durable_dir, n)
        shown = f"{size:,}" if size else "n/a"
        print(f"| {n:,} | {shown} | {took:.2f} | {n / took:,.0f} |")


if __name__ == "__main__":
    main()
