#!/usr/bin/env bash
# AES-256-GCM on one core, criterion beside OpenSSL.
#
# Runs `openssl speed -evp aes-256-gcm -bytes N` (and its per-message `-aead` variant: fresh IV,
# 13 bytes of associated data and a tag per message, as an envelope does) for N = 4 KiB, 64 KiB
# and 1 MiB, then the `aes256gcm` group of benches/benches/crypto.rs (ring and aes-gcm, encrypt
# and decrypt, same sizes), then OpenSSL again, and prints every throughput with its ratio to
# OpenSSL's. Both sides are wall-clock (`-elapsed`) on one thread; the ratio divides by the
# faster of the two OpenSSL runs. Installs nothing: without `openssl` on PATH it says so and
# prints criterion's figures alone.
#
# Usage: benches/crypto.sh [SECONDS]   (criterion's --measurement-time and openssl's -seconds,
# default 3). Honours CARGO_TARGET_DIR (criterion writes under it).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
sizes=(4096 65536 1048576)
criterion_dir="${CARGO_TARGET_DIR:-target}/criterion"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

openssl_run() {
  local n mode
  for mode in evp aead; do
    for n in "${sizes[@]}"; do
      # -mr prints "+F:<i>:AES-256-GCM:<bytes per second>" for the one size asked for.
      openssl speed -elapsed -seconds "$secs" -bytes "$n" $([ "$mode" = aead ] && echo -aead) \
        -evp aes-256-gcm -mr 2>/dev/null |
        sed -n "s/^+F:[0-9]*:[^:]*:\(.*\)$/$mode $n \1/p"
    done
  done
}

if command -v openssl >/dev/null; then
  echo "== $(openssl version): openssl speed -elapsed -evp aes-256-gcm [-aead] -bytes N -seconds $secs"
  openssl_run >"$out/openssl-before"
else
  echo "== openssl is not on PATH (this script installs nothing): criterion figures only"
fi

echo "== cargo bench -p varpulis-benches --bench crypto -- aes256gcm --warm-up-time 1 --measurement-time $secs"
cargo bench -p varpulis-benches --bench crypto -- aes256gcm --warm-up-time 1 \
  --measurement-time "$secs" 2>&1 | grep -E '^aes256gcm|thrpt:|CPU' || true

if [ -f "$out/openssl-before" ]; then
  openssl_run >"$out/openssl-after"
fi

python3 - "$criterion_dir" "$out" <<'PY'
import json
import sys
from pathlib import Path

criterion, out = Path(sys.argv[1]), Path(sys.argv[2])
sizes = {4096: "4KiB", 65536: "64KiB", 1048576: "1MiB"}


def openssl(name):
    runs = {}
    path = out / name
    if path.exists():
        for line in path.read_text().split("\n"):
            if line.strip():
                mode, n, rate = line.split()
                runs[(mode, int(n))] = float(rate)
    return runs


before, after = openssl("openssl-before"), openssl("openssl-after")


def gbps(rate):
    return f"{rate / 1e9:.2f} GB/s" if rate else "n/a"


def criterion_rate(bench, n):
    est = criterion / "aes256gcm" / bench / sizes[n] / "new" / "estimates.json"
    if not est.exists():
        return None
    return n / (json.loads(est.read_text())["median"]["point_estimate"] / 1e9)


print()
print("| size | OpenSSL evp (before / after) | OpenSSL -aead (before / after) | "
      "ring encrypt | / OpenSSL evp | / OpenSSL -aead | aes-gcm encrypt | / OpenSSL evp | "
      "ring decrypt | aes-gcm decrypt |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n, label in sizes.items():
    evp = [r for r in (before.get(("evp", n)), after.get(("evp", n))) if r]
    aead = [r for r in (before.get(("aead", n)), after.get(("aead", n))) if r]
    best_evp, best_aead = max(evp, default=None), max(aead, default=None)
    rates = {b: criterion_rate(b, n) for b in
             ("ring_encrypt", "aes-gcm_encrypt", "ring_decrypt", "aes-gcm_decrypt")}

    def ratio(rate, base):
        return f"{rate / base:.2f}x" if rate and base else "n/a"

    print(f"| {label} | {' / '.join(gbps(r) for r in evp) or 'n/a'} | "
          f"{' / '.join(gbps(r) for r in aead) or 'n/a'} | "
          f"{gbps(rates['ring_encrypt'])} | {ratio(rates['ring_encrypt'], best_evp)} | "
          f"{ratio(rates['ring_encrypt'], best_aead)} | "
          f"{gbps(rates['aes-gcm_encrypt'])} | {ratio(rates['aes-gcm_encrypt'], best_evp)} | "
          f"{gbps(rates['ring_decrypt'])} | {gbps(rates['aes-gcm_decrypt'])} |")
PY
