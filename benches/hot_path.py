#!/usr/bin/env python3
"""End-to-end hot-path benchmark: `varpulis run` of this checkout against a baseline build of
another revision, in the same run, on the same generated workload.

Usage: python3 benches/hot_path.py [--baseline REV] [--events N] [--runs K] [--only NAME]
                                   [--callgrind-events M] [--no-callgrind]

The workload is the one of the hot-path issue: N `SensorEvent { zone: "zNN", value: F }` lines
over 100 zones (seeded, so every run reads the same bytes), as `.evt` and as the equivalent
`.jsonl`. The `.evt` file of the filter and count pipelines has no `@` prefixes (the form the
reference reader accepts); the time-window pipelines read a second `.evt`/`.jsonl` pair whose
events are 1 ms apart.

Per pipeline, input format and store (none, or `--state-dir` on the file store with the
binary's default checkpoint interval): the median wall time of K whole-process runs of each
binary (paired: baseline and current alternate), events/s, the ratio, peak RSS (`/usr/bin/time`)
and, unless `--no-callgrind`, the marginal instructions per event from `valgrind
--tool=callgrind` over the first M and M/10 events, (I(M) - I(M/10)) / (0.9 M), so start-up
cancels out (hardware counters are not available on every machine, callgrind is).
Outputs of the two binaries are compared byte for byte: a speedup that changes the output is
reported as a failure.

Builds: the current checkout with `cargo build --release -p varpulis-cli`; the baseline in a
git worktree of REV (default `ec3c648`, the main the issue measured) under
`$CARGO_TARGET_DIR`-independent `/var/tmp/varpulis-bench-baseline`. Standard library only.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_DIR = Path("/var/tmp/varpulis-bench-baseline")

PIPELINES = {
    "filter": (
        "untimed",
        "stream Hot = SensorEvent .where(value > 100.0) .emit(zone: zone, v: value)\n",
    ),
    "count": (
        "untimed",
        "stream Stats = SensorEvent .partition_by(zone) .window(1000)\n"
        "    .aggregate(n: count(), avg_v: avg(value), max_v: max(value))\n"
        "    .emit(zone: zone, n: n, avg_v: avg_v, max_v: max_v)\n",
    ),
    "tumbling": (
        "timed",
        "stream Stats = SensorEvent .partition_by(zone) .window(1s)\n"
        "    .aggregate(n: count(), avg_v: avg(value), max_v: max(value))\n"
        "    .emit(zone: zone, n: n, avg_v: avg_v, max_v: max_v)\n",
    ),
    "sliding": (
        "timed",
        "stream Stats = SensorEvent .partition_by(zone) .window(10s, sliding: 1s)\n"
        "    .aggregate(n: count(), avg_v: avg(value), max_v: max(value))\n"
        "    .emit(zone: zone, n: n, avg_v: avg_v, max_v: max_v)\n",
    ),
}


def generate(directory, n):
    """Writes untimed.evt, untimed.jsonl, timed.evt, timed.jsonl with n events each."""
    rng = random.Random(20261202)
    rows = [(f"z{rng.randrange(100):02d}", round(rng.uniform(0.0, 200.0), 3)) for _ in range(n)]
    paths = {}
    with open(directory / "untimed.evt", "w") as evt, open(directory / "untimed.jsonl", "w") as js:
        for zone, value in rows:
            evt.write(f'SensorEvent {{ zone: "{zone}", value: {value!r} }}\n')
            # Without `@`, .evt events carry time 0 (no earlier time): the .jsonl twin says so.
            js.write(
                f'{{"event_type":"SensorEvent","timestamp":0,'
                f'"fields":{{"zone":"{zone}","value":{value!r}}}}}\n'
            )
    with open(directory / "timed.evt", "w") as evt, open(directory / "timed.jsonl", "w") as js:
        for i, (zone, value) in enumerate(rows):
            evt.write(f'@{i}ms SensorEvent {{ zone: "{zone}", value: {value!r} }}\n')
            js.write(
                f'{{"event_type":"SensorEvent","timestamp":{i},'
                f'"fields":{{"zone":"{zone}","value":{value!r}}}}}\n'
            )
    for kind in ("untimed", "timed"):
        for fmt in ("evt", "jsonl"):
            paths[(kind, fmt)] = directory / f"{kind}.{fmt}"
    return paths


def build_current():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "varpulis-cli"], cwd=ROOT, check=True
    )
    return target / "release" / "varpulis"


def build_baseline(rev):
    tree = BASELINE_DIR / "tree"
    if tree.exists():
        subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--detach", rev], check=True)
    else:
        BASELINE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev],
            check=True,
        )
    env = dict(os.environ, CARGO_TARGET_DIR=str(BASELINE_DIR / "target"))
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "varpulis-cli"], cwd=tree, env=env, check=True
    )
    return BASELINE_DIR / "target" / "release" / "varpulis"


def command(binary, program, events, output, state_dir):
    cmd = [str(binary), "run", str(program), "--events", str(events), "--output", str(output),
           "--no-progress"]
    if state_dir is not None:
        cmd += ["--state-dir", str(state_dir)]
    return cmd


def timed_run(cmd, state_dir):
    """Wall seconds and peak RSS (KiB) of one whole-process run from an empty state dir."""
    if state_dir is not None and state_dir.exists():
        shutil.rmtree(state_dir)
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    rss = int(proc.stderr.strip().splitlines()[-1])
    return wall, rss


def instructions(cmd, events_file, m, work):
    """Instructions callgrind counts for a run over the first m lines of the input."""
    head = work / f"head-{m}{events_file.suffix}"
    if not head.exists():
        with open(events_file) as src, open(head, "w") as dst:
            for _, line in zip(range(m), src):
                dst.write(line)
    cmd = [head if str(c) == str(events_file) else c for c in cmd]
    out = work / "callgrind.out"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + [str(c) for c in cmd],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        return None
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip())
    return None


def instructions_per_event(make_cmd, events_file, m, work):
    """Marginal instructions per event: (I(m) - I(m/10)) / (m - m/10), so process start-up,
    program compilation and the final checkpoint cancel out."""
    small = max(1, m // 10)
    big_i = instructions(make_cmd(), events_file, m, work)
    small_i = instructions(make_cmd(), events_file, small, work)
    if big_i is None or small_i is None:
        return None
    return (big_i - small_i) / (m - small)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="ec3c648")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--callgrind-events", type=int, default=100_000)
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-store", action="store_true", help="skip the --state-dir runs")
    args = ap.parse_args()

    baseline = build_baseline(args.baseline)
    current = build_current()
    callgrind = not args.no_callgrind and shutil.which("valgrind")
    work = Path(tempfile.mkdtemp(prefix="varpulis-hot-path-"))
    try:
        inputs = generate(work, args.events)
        print(f"# {args.events} events, median of {args.runs} paired runs; "
              f"baseline {args.baseline}, current {current}")
        print("| pipeline | input | store | baseline s | current s | current events/s "
              "| speedup | baseline instr/event | current instr/event | baseline RSS MiB "
              "| current RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, (kind, source) in PIPELINES.items():
            if args.only and name not in args.only:
                continue
            program = work / f"{name}.vpl"
            program.write_text(source)
            for fmt in ("evt", "jsonl"):
                events = inputs[(kind, fmt)]
                for store in ([False] if args.no_store else [False, True]):
                    results = {}
                    outputs = {}
                    for label, binary in (("baseline", baseline), ("current", current)):
                        results[label] = ([], [])
                        outputs[label] = work / f"out-{label}.jsonl"
                    for _ in range(args.runs):
                        for label, binary in (("baseline", baseline), ("current", current)):
                            state = work / f"state-{label}" if store else None
                            out = outputs[label]
                            if out.exists():
                                out.unlink()
                            wall, rss = timed_run(command(binary, program, events, out, state), state)
                            results[label][0].append(wall)
                            results[label][1].append(rss)
                    same = outputs["baseline"].read_bytes() == outputs["current"].read_bytes()
                    b = statistics.median(results["baseline"][0])
                    c = statistics.median(results["current"][0])
                    instr = {}
                    for label, binary in (("baseline", baseline), ("current", current)):
                        if callgrind:
                            def make_cmd(binary=binary, label=label, store=store):
                                state = work / f"state-cg-{label}" if store else None
                                if state is not None and state.exists():
                                    shutil.rmtree(state)
                                out = work / f"out-cg-{label}.jsonl"
                                if out.exists():
                                    out.unlink()
                                return command(binary, program, events, out, state)
                            v = instructions_per_event(make_cmd, events, args.callgrind_events, work)
                            instr[label] = f"{v:,.0f}" if v is not None else "n/a"
                        else:
                            instr[label] = "n/a"
                    note = "" if same else " **outputs differ**"
                    print(
                        f"| {name} | .{fmt} | {'file' if store else 'none'} | {b:.3f} | {c:.3f} "
                        f"| {args.events / c:,.0f} | {b / c:.2f}x{note} | {instr['baseline']} "
                        f"| {instr['current']} | {max(results['baseline'][1]) / 1024:.0f} "
                        f"| {max(results['current'][1]) / 1024:.0f} |",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
