#!/usr/bin/env bash
# Starts a local region with `tessera dev`, runs the docs/BENCHMARKS.md
# workloads (benches/jobs/region.fio) against it with tessera-bench, keeps
# the JSON report and an SVG chart, and stops the region.
# Usage: benches/region_workloads.sh [OUTDIR]   (default ./target/bench-region)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-region}
mkdir -p "$out"
cargo build --release -q -p tessera-tools
region=$(mktemp -d /tmp/tessera-bench-region.XXXXXX)
stop() { ./target/release/tessera dev down --dir "$region" >/dev/null 2>&1 || true; rm -rf "$region"; }
trap stop EXIT
./target/release/tessera dev --exit-after-demo --dir "$region" > "$out/dev.log"
for z in z1 z2 z3; do ./target/release/tessera dev start-zone --dir "$region" "$z" >/dev/null; done
./target/release/tessera-bench --config="$region/client.toml" --output-format=json --output="$out/region.json" \
    --chart="$out/region.svg" --eta=always benches/jobs/region.fio || true
python3 - "$out/region.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for j in doc["jobs"]:
    for d in ("read", "write"):
        x = j[d]
        if x["total_ios"]:
            p = x["clat_ns"]["percentile"]
            print(f'{j["jobname"]:>10} {d:>5}: {x["bw"] / 1024:8.1f} MiB/s {x["iops"]:8.1f} ops/s '
                  f'p50 {p["50.000000"] / 1e6:7.1f} ms p99 {p["99.000000"] / 1e6:7.1f} ms '
                  f'errors {sum(j["tessera"]["errors"].values())}')
PY
echo "report: $out/region.json, chart: $out/region.svg"
