#!/usr/bin/env python3
"""Batch ingest benchmark of `varpulis server`: events/s and latency per batch, for one tenant,
for 8 tenants in parallel, and the latency of a quiet tenant while another floods the server.

Usage: python3 benches/server_ingest.py [--binary PATH] [--batches N] [--batch-size B]
                                        [--store memory|file] [--clients C]

Builds `cargo build --release -p varpulis-cli` unless --binary is given, starts the server on
127.0.0.1 with port 0 (in a temporary --state-dir for --store file), creates enterprise-tier
tenants (500,000 events/s, so the rate limit is not what is measured) each with one pipeline
(`.partition_by(zone) .window(1000) .aggregate(count, avg, max)`, the hot-path issue's count
pipeline), and sends pre-encoded batches of B `SensorEvent` over 100 zones with HTTP/1.1
keep-alive connections (one per client thread, `http.client`). Reported:

- one tenant, one client: events/s over N batches, p50/p99 of the batch round trip;
- 8 tenants, one client each in parallel: total events/s, p50/p99 per batch;
- a quiet tenant sending one single event every 20 ms alone, then while C clients of another
  tenant flood batches: p50/p99 of the quiet tenant's round trips, and the ratio.

The client is Python (standard library only): with the GIL, 8 client threads share one core,
so the 8-tenant figure is a lower bound of what the server does; the report says how busy the
client was. Wall-clock timing, on a shared machine: quote ratios within one run.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from varpulis_http import Conn, pct  # beside this script

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-key-0123456789abcdef"
PROGRAM = ("stream Stats = SensorEvent .partition_by(zone) .window(1000) "
           ".aggregate(n: count(), avg_v: avg(value), max_v: max(value)) "
           ".emit(zone: zone, n: n, avg_v: avg_v, max_v: max_v)")


def build():
    env = dict(os.environ)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "varpulis-cli"], cwd=ROOT,
                   check=True, env=env)
    target = Path(env.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "varpulis")


def start(binary, store, tmp):
    cmd = [binary, "server", "--port", "0", "--api-key", ADMIN]
    if store == "file":
        cmd += ["--state-dir", str(Path(tmp) / "state")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"server did not start: {line!r} {proc.stderr.read()}")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, host, int(port)



def setup(host, port, name):
    c = Conn(host, port)
    t = c.call("POST", "/tenants", {"name": name, "quota_tier": "enterprise"}, ADMIN, admin=True)
    p = c.call("POST", "/pipelines", {"name": "stats", "source": PROGRAM}, t["api_key"])
    return t["api_key"], p["id"]


def batches(n, size, seed):
    rng = random.Random(seed)
    out, ts = [], 0
    for _ in range(n):
        events = []
        for _ in range(size):
            ts += 1
            events.append({"event_type": "SensorEvent", "timestamp": ts,
                           "fields": {"zone": f"z{rng.randrange(100):02}",
                                      "value": round(rng.uniform(0, 200), 3)}})
        out.append(json.dumps({"events": events}).encode())
    return out


def send_all(host, port, key, pid, bodies, latencies):
    c = Conn(host, port)
    for body in bodies:
        t0 = time.perf_counter()
        c.call("POST", f"/pipelines/{pid}/events-batch", body, key)
        latencies.append(time.perf_counter() - t0)



def ms(x):
    return f"{x * 1000:.2f}"


def quiet(host, port, key, pid, stop, latencies, period=0.02):
    c = Conn(host, port)
    ts = 10**9
    while not stop.is_set():
        ts += 1
        body = {"event_type": "SensorEvent", "timestamp": ts, "fields": {"zone": "q", "value": 1.0}}
        t0 = time.perf_counter()
        c.call("POST", f"/pipelines/{pid}/events", body, key)
        latencies.append(time.perf_counter() - t0)
        time.sleep(period)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--store", choices=["memory", "file"], default="file")
    ap.add_argument("--clients", type=int, default=2)
    a = ap.parse_args()
    binary = a.binary or build()
    with tempfile.TemporaryDirectory() as tmp:
        proc, host, port = start(binary, a.store, tmp)
        try:
            run(a, host, port)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def run(a, host, port):
    n, size = a.batches, a.batch_size
    print(f"# store {a.store}, {n} batches of {size} events per client")
    print("| scenario | tenants | events/s | p50 ms/batch | p99 ms/batch | client CPU |")
    print("|---|---|---|---|---|---|")
    # One tenant.
    key, pid = setup(host, port, "one")
    bodies = batches(n, size, 1)
    lat = []
    c0, t0 = time.process_time(), time.perf_counter()
    send_all(host, port, key, pid, bodies, lat)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"| sequential batches | 1 | {n * size / wall:,.0f} | {ms(pct(lat, 50))} | "
          f"{ms(pct(lat, 99))} | {cpu / wall:.0%} |")
    # Eight tenants in parallel.
    tenants = [setup(host, port, f"t{i}") for i in range(8)]
    bodies = [batches(n // 4, size, 10 + i) for i in range(8)]
    lats = [[] for _ in range(8)]
    threads = [threading.Thread(target=send_all, args=(host, port, k, p, b, l))
               for (k, p), b, l in zip(tenants, bodies, lats)]
    c0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    allat = [x for l in lats for x in l]
    print(f"| parallel batches | 8 | {len(allat) * size / wall:,.0f} | {ms(pct(allat, 50))} | "
          f"{ms(pct(allat, 99))} | {cpu / wall:.0%} |")
    # A quiet tenant, alone and then beside a flood.
    qkey, qpid = setup(host, port, "quiet")
    fkey, fpid = setup(host, port, "flood")
    alone, stop = [], threading.Event()
    th = threading.Thread(target=quiet, args=(host, port, qkey, qpid, stop, alone))
    th.start()
    time.sleep(3)
    stop.set()
    th.join()
    beside, stop = [], threading.Event()
    th = threading.Thread(target=quiet, args=(host, port, qkey, qpid, stop, beside))
    flood = [threading.Thread(target=send_all,
                              args=(host, port, fkey, fpid, batches(n, size, 100 + i), []))
             for i in range(a.clients)]
    th.start()
    for f in flood:
        f.start()
    for f in flood:
        f.join()
    stop.set()
    th.join()
    print()
    print("| quiet tenant (single events every 20 ms) | samples | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    print(f"| alone | {len(alone)} | {ms(pct(alone, 50))} | {ms(pct(alone, 99))} |")
    print(f"| while {a.clients} clients flood another tenant | {len(beside)} | "
          f"{ms(pct(beside, 50))} | {ms(pct(beside, 99))} |")
    print(f"\np99 ratio (beside flood / alone): {pct(beside, 99) / pct(alone, 99):.1f}x")


if __name__ == "__main__":
    main()
