#!/usr/bin/env python3
"""Checkpoint stall: how long one checkpoint blocks the event loop, as the state grows.

Usage:
  python3 benches/checkpoint_stall.py --after BINARY [--before BINARY]
      [--sizes 1K,64K,1M,8M,64M] [--runs N] [--dir DIR]

BINARY is a `varpulis` release binary (`cargo build --release -p varpulis-cli
--no-default-features`); `--before` is one built from an older tree (checkpoints on the loop),
`--after` this tree (checkpoints off the loop), both run here on the same inputs, one after
the other, `--runs` times each (default 1), so their ratio is what to compare. Files go under
`--dir`, else `VARPULIS_BENCH_DIR`, else the system temp directory (point it at the disk under
test: on tmpfs an fsync is free).

Workload, per state size: a program with a count window partitioned by key that never closes
(`.window(1000000000)`, count and sum: one open window and accumulator set per partition, so
the state grows with the number of partitions P) and a filter that writes about 1% of the
events to the output file; an `.evt` input of events over P keys in turn. P is calibrated
from a probe run so that a checkpoint's bytes are about the size asked for. Each binary runs
it with `--state-dir` (file store), `--checkpoint-every max(P, 100000)` events (every
checkpoint after the first sees the whole state; at least 100,000 events apart, about 0.1 s,
so small states are not checkpointed more often than they take to commit), and
`RUST_LOG=varpulis_engine=debug`, whose `checkpoint committed` lines give each checkpoint's
stall (`took_us`: the time the loop was blocked), and in the new binary `waited_us` (of it,
waiting for the previous checkpoint still in flight) and `total_us` (until the loop saw the
commit done). The first checkpoint (a new output's) and the final one are waited for by design
and left out: the figures are over the scheduled checkpoints in between.

Standard library only.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAM = """\
event R: k: str, v: float
stream State = R
    .partition_by(k)
    .window(1000000000)
    .aggregate(n: count(), total: sum(v))
stream Out = R
    .where(v > 0.99)
    .emit(k: k, v: v)
"""

SCHEDULED = 5
MIN_INTERVAL = 100_000
FIELD = re.compile(r"(\w+)=(\d+)")


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def fmt_size(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def fmt_us(us):
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def write_input(path, keys, events):
    with open(path, "w") as f:
        lines = []
        for i in range(events):
            v = (i * 7919 % 1000) / 1000
            lines.append(f'R {{ k: "k{i % keys}", v: {v} }}\n')
            if len(lines) == 65536:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def run(binary, work, name, keys, events, interval):
    """Runs `binary` over a fresh state and output; returns the checkpoints' fields, in order."""
    state = work / f"state-{name}"
    out = work / f"out-{name}.jsonl"
    subprocess.run(["rm", "-rf", str(state), str(out)], check=True)
    env = dict(os.environ, RUST_LOG="varpulis_engine=debug")
    proc = subprocess.run(
        [
            str(binary), "run", str(work / "p.vpl"),
            "--events", str(work / f"in-{keys}.evt"),
            "--state-dir", str(state),
            "--output", str(out),
            "--checkpoint-every", str(interval),
            "--no-progress",
        ],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"{binary} failed:\n{proc.stderr[-4000:]}")
    found = []
    for line in proc.stderr.splitlines():
        if "checkpoint committed" in line:
            found.append({k: int(v) for k, v in FIELD.findall(line)})
    subprocess.run(["rm", "-rf", str(state), str(out)], check=True)
    return found


def scheduled(checkpoints):
    """The scheduled checkpoints: all but the first (a new output's) and the final one."""
    return checkpoints[1:-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--after", required=True, type=Path)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--sizes", default="1K,64K,1M,8M,64M")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", type=Path)
    args = ap.parse_args()
    base = args.dir or os.environ.get("VARPULIS_BENCH_DIR") or tempfile.gettempdir()
    work = Path(tempfile.mkdtemp(prefix="varpulis-stall-", dir=base))
    (work / "p.vpl").write_text(PROGRAM)

    # Probe: bytes per partition of a checkpoint.
    probe_keys = 20_000
    write_input(work / f"in-{probe_keys}.evt", probe_keys, 3 * MIN_INTERVAL)
    probe = scheduled(run(args.after, work, "probe", probe_keys, 3 * MIN_INTERVAL, MIN_INTERVAL))
    per_key = statistics.median(c["bytes"] for c in probe) / probe_keys
    print(f"probe: {per_key:.1f} bytes of checkpoint per partition", flush=True)

    binaries = [("before", args.before)] if args.before else []
    binaries.append(("after", args.after))
    rows = []
    for size in (parse_size(s) for s in args.sizes.split(",")):
        keys = max(1, round(size / per_key))
        interval = max(keys, MIN_INTERVAL)
        events = SCHEDULED * interval + interval // 2
        write_input(work / f"in-{keys}.evt", keys, events)
        row = {"size": size, "keys": keys, "events": events, "interval": interval}
        for name, binary in binaries:
            got = []
            for i in range(args.runs):
                got += scheduled(run(binary, work, f"{name}-{i}", keys, events, interval))
            row[name] = got
            took = [c["took_us"] for c in got]
            print(
                f"{fmt_size(size):>9} {keys:>9} keys {name:>6}: stall median "
                f"{fmt_us(statistics.median(took))}, max {fmt_us(max(took))}, "
                f"bytes {fmt_size(int(statistics.median(c['bytes'] for c in got)))}",
                flush=True,
            )
        os.remove(work / f"in-{keys}.evt")
        rows.append(row)

    print()
    header = ["state", "partitions", "checkpoints"]
    if args.before:
        header += ["before: stall median / max"]
    header += ["after: stall median / max", "after: hand-off median (stall - wait)",
               "after: waited for the previous", "after: total median"]
    if args.before:
        header += ["before / after stall", "before / after hand-off"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        after = row["after"]
        took = [c["took_us"] for c in after]
        handoff = [c["took_us"] - c.get("waited_us", 0) for c in after]
        waited = [c.get("waited_us", 0) for c in after]
        cells = [fmt_size(int(statistics.median(c["bytes"] for c in after))),
                 f"{row['keys']:,}", str(len(after))]
        if args.before:
            b = [c["took_us"] for c in row["before"]]
            cells.append(f"{fmt_us(statistics.median(b))} / {fmt_us(max(b))}")
        cells.append(f"{fmt_us(statistics.median(took))} / {fmt_us(max(took))}")
        cells.append(fmt_us(statistics.median(handoff)))
        n = sum(w > 0 for w in waited)
        cells.append(f"{n} of {len(after)}" + (f", {fmt_us(max(waited))} max" if n else ""))
        cells.append(fmt_us(statistics.median(c.get("total_us", c["took_us"]) for c in after)))
        if args.before:
            b = statistics.median(c["took_us"] for c in row["before"])
            cells.append(f"**{b / max(statistics.median(took), 1):.1f}x**")
            cells.append(f"{b / max(statistics.median(handoff), 1):.1f}x")
        print("| " + " | ".join(cells) + " |")
    subprocess.run(["rm", "-rf", str(work)], check=True)


if __name__ == "__main__":
    main()
