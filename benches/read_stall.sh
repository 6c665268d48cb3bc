#!/usr/bin/env bash
# The 1 MiB read stall (docs/BENCHMARKS.md): GETs at concurrency 1 of
# 4 KiB and 1 MiB objects from a fresh `tessera dev` region (release),
# with the kernel's count of UDP datagrams dropped for a full receive
# buffer (RcvbufErrors, /proc/net/snmp) over each read job. A tail of
# shard replies dropped at the client's socket is recovered only by QUIC's
# probe timeout (~25-30 ms). Each GET job runs twice in the same run: with
# the kernel's default socket buffer (udp_buffer_bytes = 0, the SDK before
# the fix) and with the SDK's default 8 MiB.
# Usage: benches/read_stall.sh [OBJECTS]   (reports in target/bench-read-stall/)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-64}
out=target/bench-read-stall
mkdir -p "$out"
rm -f "$out/drops"
cargo build --release -q -p tessera-tools
bin=target/release
region=$(mktemp -d /tmp/tessera-stall.XXXXXX)
trap '"$bin/tessera" dev down --dir "$region" >/dev/null 2>&1 || true; rm -rf "$region"' EXIT
"$bin/tessera" dev --exit-after-demo --dir "$region" >"$out/dev.log"
for z in z1 z2 z3; do "$bin/tessera" dev start-zone --dir "$region" "$z" >/dev/null; done
drops() { awk '/^Udp:/ {v = $6} END {print v}' /proc/net/snmp; }
{ echo "udp_buffer_bytes = 0"; cat "$region/client.toml"; } >"$region/kernel-buffer.toml"
job() { # NAME BS RW [PREFIX] [CONFIG]
    "$bin/tessera-bench" --config="$region/${5:-client.toml}" --eta=never --output-format=json \
        --output="$out/$1.json" --name="$1" --bucket=stall --rw="$3" --bs="$2" --size="$((n * ${2%?}))${2: -1}" \
        --iodepth=1 ${4:+--key_prefix=$4} >/dev/null
}
job put4k 4k write
job put1m 1m write
for size in 4k 1m; do
    for cfg in kernel-buffer client; do
        before=$(drops)
        job "get$size-$cfg" "$size" read "put$size.0/" "$cfg.toml"
        echo "$size-$cfg $(($(drops) - before))" >>"$out/drops"
    done
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
drops = dict(l.split() for l in open(f"{out}/drops"))
for size in ("4k", "1m"):
    for cfg, what in (("kernel-buffer", "kernel's socket buffer"), ("client", "SDK's 8 MiB buffer")):
        r = json.load(open(f"{out}/get{size}-{cfg}.json"))["jobs"][0]["read"]
        p = r["clat_ns"]["percentile"]
        print(f"GET {size:>2} x{r['total_ios']}, {what:<22}: p50 {p['50.000000'] / 1e6:6.2f} ms, "
              f"p99 {p['99.000000'] / 1e6:6.2f} ms, receive-buffer drops {drops[size + '-' + cfg]}")
PY
rm -f "$out/drops"
