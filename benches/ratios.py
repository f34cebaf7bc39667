#!/usr/bin/env python3
"""Prints the tables of docs/benchmarks.md from the last criterion run (`target/criterion`).

Usage: python3 benches/ratios.py [CRITERION_DIR]

Every ratio divides two medians measured by the same `cargo bench` run, so it is what to
compare across machines; absolute times are only indicative. Standard library only.
"""

import json
import sys
from pathlib import Path

SIZES = ["100B", "4KiB", "1MiB"]


def load(root):
    results = {}
    for meta in root.glob("**/new/benchmark.json"):
        info = json.loads(meta.read_text())
        est = json.loads((meta.parent / "estimates.json").read_text())
        median = est["median"]
        results[info["full_id"]] = (
            median["point_estimate"],
            median["confidence_interval"]["lower_bound"],
            median["confidence_interval"]["upper_bound"],
            (info.get("throughput") or {}).get("Bytes"),
        )
    return results


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(ns, nbytes):
    if not nbytes:
        return ""
    rate = nbytes / (ns / 1e9)
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.3g} {unit}"
    return f"{rate:.3g} B/s"


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def cell(r, key):
    if key not in r:
        return "n/a"
    ns, lo, hi, nbytes = r[key]
    rate = fmt_rate(ns, nbytes)
    return fmt_time(ns) + (f" ({rate})" if rate else "")


def ratio(r, num, den):
    if num not in r or den not in r:
        return "n/a"
    return f"{r[num][0] / r[den][0]:.2f}x"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    r = load(root)
    if not r:
        sys.exit(f"no criterion results under {root}")

    stores = [s for s in ("memory", "file", "rocksdb", "rocksdb-sync") if f"store/{s}/put/1MiB" in r]
    if stores:
        print("### Store put/get (median; throughput)\n")
        table(
            ["store", "op"] + SIZES,
            [[s, op] + [cell(r, f"store/{s}/{op}/{z}") for z in SIZES] for s in stores for op in ("put", "get")],
        )

    g = "file_put_vs_raw"
    if f"{g}/file_store/1MiB" in r:
        print("### FileStore put against raw write+fsync+rename (median; ratio)\n")
        table(
            ["size", "raw", "raw_dirsync", "file_store", "file_store / raw", "file_store / raw_dirsync",
             "raw_dirsync / raw"],
            [
                [z, cell(r, f"{g}/raw/{z}"), cell(r, f"{g}/raw_dirsync/{z}"), cell(r, f"{g}/file_store/{z}"),
                 ratio(r, f"{g}/file_store/{z}", f"{g}/raw/{z}"),
                 ratio(r, f"{g}/file_store/{z}", f"{g}/raw_dirsync/{z}"),
                 ratio(r, f"{g}/raw_dirsync/{z}", f"{g}/raw/{z}")]
                for z in SIZES
            ],
        )
        if "overhead/spawn_blocking_noop" in r:
            print(f"spawn_blocking round trip (no-op): {cell(r, 'overhead/spawn_blocking_noop')}\n")

    for backend in ("memory", "file"):
        g = f"encrypted/{backend}"
        if f"{g}/encrypted_put/1MiB" not in r:
            continue
        print(f"### Encrypted vs plain {backend} store (median; ratio)\n")
        rows = []
        for op in ("put", "get"):
            for z in SIZES:
                plain, enc = f"{g}/plain_{op}/{z}", f"{g}/encrypted_{op}/{z}"
                extra = "n/a"
                if plain in r and enc in r:
                    extra = f"{100 * (r[enc][0] / r[plain][0] - 1):+.0f}%"
                rows.append([op, z, cell(r, plain), cell(r, enc), ratio(r, enc, plain), extra])
        table(["op", "size", "plain", "encrypted", "encrypted / plain", "added"], rows)

    formats = [f for f in ("evt", "jsonl") if f"readers/{f}/reader" in r]
    if formats:
        print("### Readers, 100,000 lines (median; throughput; ratios in the same run)\n")
        rows = []
        for f in formats:
            g = f"readers/{f}"
            for path in ("lines", "reference", "reader"):
                key = f"{g}/{path}"
                if key not in r:
                    continue
                events = f"{100_000 / (r[key][0] / 1e9) / 1e6:.2f} M lines/s"
                rows.append([f, path, cell(r, key), events, ratio(r, key, f"{g}/lines"),
                             ratio(r, f"{g}/reference", key)])
        table(["format", "path", "time", "lines/s", "time / lines", "reference / this"], rows)

    cipher = [k for k in ("4KiB", "64KiB", "1MiB") if f"aes256gcm/ring_encrypt/{k}" in r]
    if cipher:
        print("### AES-256-GCM, one core (median [95% CI]; `benches/crypto.sh` adds OpenSSL)\n")
        rows = []
        for z in cipher:
            row = [z]
            for bench in ("ring_encrypt", "aes-gcm_encrypt", "ring_decrypt", "aes-gcm_decrypt"):
                key = f"aes256gcm/{bench}/{z}"
                if key not in r:
                    row.append("n/a")
                    continue
                ns, lo, hi, nbytes = r[key]
                row.append(f"{fmt_rate(ns, nbytes)} [{fmt_rate(hi, nbytes)} .. {fmt_rate(lo, nbytes)}]")
            row.append(ratio(r, f"aes256gcm/aes-gcm_encrypt/{z}", f"aes256gcm/ring_encrypt/{z}"))
            rows.append(row)
        table(["buffer", "ring encrypt", "aes-gcm encrypt", "ring decrypt", "aes-gcm decrypt",
               "ring speed-up (encrypt)"], rows)

if __name__ == "__main__":
    main()
