#!/usr/bin/env python3
"""Parallel contexts (`varpulis run --workers N`): throughput, barrier cost, and checkpoint
stall and alignment as the state grows.

Usage:
  python3 benches/workers.py [--binary PATH] [--events N] [--zones K] [--reps R]
                             [--workers 1,2,3] [--state-keys 10000,100000,1000000]
                             [--dir DIR]

Builds `cargo build --release -p varpulis-cli --no-default-features` unless --binary is given.
Files go under --dir, else VARPULIS_BENCH_DIR, else the system temp directory.

Part 1, throughput: a partitioned window pipeline (a tumbling 1m window with four aggregates
and a session window, both partitioned by zone, and a filter over the tumbling window's
outputs) over N `.jsonl` events (default 2,000,000) spread over K zones (default 1,000), run
with each --workers value in turn, R times (default 5), alternating, without a state
directory: the median wall time and events/s of each, and the ratio to --workers 1 measured in
the same invocation. Every run's output is compared with the first's (they must be equal).

Part 2, the cost of barriers: --workers 2 with a state directory and --checkpoint-every 1s and
100ms, against --checkpoint-every 1h (only the first and final checkpoints, no barrier), R
times each, alternating: the median of each and their ratio, and the barriers taken.

Part 3, stall and alignment per checkpoint as the state grows: a count window that never
closes, partitioned by key, over P keys (--state-keys), so every key holds an open window;
--workers 2, a checkpoint every P events (every barrier after the first sees the whole state),
RUST_LOG=varpulis_engine=debug. From the `barrier aligned` lines: each barrier's latency
(injection to every context's state at the sink), alignment (first to last context at the
sink) and the longest context snapshot (the copy that stalls a context); from the `checkpoint
committed` lines: the sink's stall (`took_us - waited_us`: the tail's copy and the hand-off,
without waiting for the previous commit). Medians over
the scheduled checkpoints, with the checkpoint's encoded size from `checkpoint inspect`.

Wall-clock timing on a shared machine: quote ratios within one run. Standard library only.
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """\
event SensorReading: zone: str, temperature: float
stream ZoneStats = SensorReading
    .partition_by(zone)
    .window(1m)
    .aggregate(readings: count(), avg_temp: avg(temperature), min_temp: min(temperature),
               max_temp: max(temperature))
stream Bursts = SensorReading
    .partition_by(zone)
    .window(session: 30s)
    .aggregate(n: count(), hottest: max(temperature))
stream Hot = ZoneStats
    .where(avg_temp > 30.0)
    .emit(zone, avg_temp)
"""

STATE = """\
event R: k: str, v: float
stream State = R
    .partition_by(k)
    .window(1000000000)
    .aggregate(n: count(), total: sum(v))
"""

FIELD = re.compile(r"(\w+)=(\d+)")


def build(root):
    subprocess.run(
        ["cargo", "build", "--release", "-p", "varpulis-cli", "--no-default-features"],
        cwd=root,
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", str(root / "target"))
    return Path(target) / "release" / "varpulis"


def write_events(path, n, zones, seed=7):
    rng = random.Random(seed)
    with open(path, "w") as f:
        t = 1_700_000_000_000
        lines = []
        for i in range(n):
            t += rng.randrange(0, 20)
            lines.append(
                '{"event_type":"SensorReading","timestamp":%d,"fields":{"zone":"z%d",'
                '"temperature":%.2f}}\n' % (t, rng.randrange(zones), rng.uniform(-10, 40))
            )
            if len(lines) == 65536:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def write_state_events(path, keys, rounds):
    with open(path, "w") as f:
        lines = []
        t = 1_000
        for r in range(rounds):
            for k in range(keys):
                t += 1
                lines.append(
                    '{"event_type":"R","timestamp":%d,"fields":{"k":"key-%d","v":%d.5}}\n'
                    % (t, k, r)
                )
                if len(lines) == 65536:
                    f.writelines(lines)
                    lines.clear()
        f.writelines(lines)


def run(binary, program, events, workers, extra=(), env=None):
    out = events.parent / f"out-{workers}.jsonl"
    if out.exists():
        out.unlink()
    cmd = [str(binary), "run", str(program), "--events", str(events), "--output", str(out),
           "--no-progress", "--workers", str(workers), *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed, out, proc.stderr


def part1(binary, work, n, zones, reps, workers):
    program = work / "pipeline.vpl"
    program.write_text(PIPELINE)
    events = work / "pipeline.jsonl"
    write_events(events, n, zones)
    times = {w: [] for w in workers}
    reference = None
    for _ in range(reps):
        for w in workers:
            elapsed, out, _ = run(binary, program, events, w)
            data = out.read_bytes()
            if reference is None:
                reference = data
            elif data != reference:
                sys.exit(f"--workers {w} wrote another output")
            times[w].append(elapsed)
    base = statistics.median(times[workers[0]])
    print(f"\n## Throughput: {n:,} events over {zones:,} zones, {reps} runs each, alternating\n")
    print("| --workers | median s | events/s | vs --workers %d |" % workers[0])
    print("|---|---|---|---|")
    for w in workers:
        m = statistics.median(times[w])
        print(f"| {w} | {m:.3f} | {n / m:,.0f} | {base / m:.2f}x |")
    return program, events


def part2(binary, work, program, events, n, reps):
    rows = {"100ms": [], "1s": [], "1h": []}
    barriers = {every: [] for every in rows}
    env = dict(os.environ, RUST_LOG="varpulis_engine=info")
    for _ in range(reps):
        for every in rows:
            state = work / f"state-{every}"
            subprocess.run(["rm", "-rf", str(state)], check=True)
            elapsed, _, stderr = run(
                binary, program, events, 2,
                ["--state-dir", str(state), "--checkpoint-every", every], env=env,
            )
            rows[every].append(elapsed)
            barriers[every].append(stderr.count("barrier aligned"))
    print(f"\n## Barrier cost: --workers 2, file store, {reps} runs each, alternating\n")
    print("| --checkpoint-every | median s | events/s | barriers per run | vs 1h |")
    print("|---|---|---|---|---|")
    base = statistics.median(rows["1h"])
    for every, ts in rows.items():
        m = statistics.median(ts)
        print(f"| {every} | {m:.3f} | {n / m:,.0f} | {statistics.median(barriers[every]):.0f} "
              f"| {base / m:.2f}x |")


def part3(binary, work, keys_list):
    program = work / "state.vpl"
    program.write_text(STATE)
    env = dict(os.environ, RUST_LOG="varpulis_engine=debug")
    print("\n## Stall and alignment per checkpoint as the state grows (--workers 2)\n")
    print("| keys | checkpoint size | context snapshot stall (max, median) | sink stall "
          "(median) | alignment (median) | barrier latency (median) |")
    print("|---|---|---|---|---|---|")
    for keys in keys_list:
        rounds = 7
        events = work / f"state-{keys}.jsonl"
        write_state_events(events, keys, rounds)
        state = work / f"state-dir-{keys}"
        subprocess.run(["rm", "-rf", str(state)], check=True)
        _, _, stderr = run(
            binary, program, events, 2,
            ["--state-dir", str(state), "--checkpoint-every", str(keys)], env=env,
        )
        snap, align, lat, took = [], [], [], []
        for line in stderr.splitlines():
            fields = dict(FIELD.findall(line))
            if "barrier aligned" in line:
                snap.append(int(fields["max_snapshot_us"]))
                align.append(int(fields["alignment_us"]))
                lat.append(int(fields["latency_us"]))
            elif "checkpoint committed" in line:
                # The stall itself, without waiting for the previous commit still in flight.
                took.append(int(fields["took_us"]) - int(fields.get("waited_us", 0)))
        # The first barrier sees a partly built state; the first and the final checkpoints
        # are not barriers (the sink stall of those two is left out too).
        snap, align, lat, took = snap[1:], align[1:], lat[1:], took[2:-1]
        inspect = subprocess.run(
            [str(binary), "checkpoint", "inspect", "--state-dir", str(state)],
            capture_output=True, text=True, check=True,
        ).stdout
        size = re.search(r"size: ([^\n]+)", inspect).group(1)
        med = lambda xs: f"{statistics.median(xs) / 1000:.2f} ms" if xs else "-"
        print(f"| {keys:,} | {size} | {med(snap)} | {med(took)} | {med(align)} | {med(lat)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary")
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--zones", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--state-keys", default="10000,100000,1000000")
    parser.add_argument("--dir", default=os.environ.get("VARPULIS_BENCH_DIR"))
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    binary = Path(args.binary) if args.binary else build(root)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"cores: {os.cpu_count()}, binary: {binary}")
        program, events = part1(binary, work, args.events, args.zones, args.reps, workers)
        part2(binary, work, program, events, args.events, args.reps)
        part3(binary, work, [int(k) for k in args.state_keys.split(",")])


if __name__ == "__main__":
    main()
