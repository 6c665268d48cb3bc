#!/usr/bin/env bash
# Runs the same job file (benches/jobs/engine.fio) under fio and under
# tessera-bench's engine mode, on the same file system, in one run, and
# prints the ratios from the two JSON reports (same layout).
# Usage: benches/engine_vs_fio.sh [DIR]   (DIR defaults to ./target/bench-disk)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-disk}
mkdir -p "$dir"
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)"; exit 1; }
cargo build --release -q -p tessera-tools --bin tessera-bench
jobs=benches/jobs/engine.fio

fio --output-format=json --ioengine=io_uring --direct=1 --filename="$dir/fio.dat" "$jobs" > "$dir/fio.json"
rm -f "$dir/fio.dat"
./target/release/tessera-bench --engine --filename="$dir/tessera.dat" --output-format=json --eta=never "$jobs" \
    > "$dir/tessera.json"
python3 - "$dir/fio.json" "$dir/tessera.json" <<'PY'
import json, sys
fio, tb = (json.load(open(p)) for p in sys.argv[1:3])
def job(doc, name):
    return next(j for j in doc["jobs"] if j["jobname"] == name)
for name, d, what in [("seqwrite", "write", "bw"), ("randread", "read", "iops")]:
    f, t = job(fio, name)[d], job(tb, name)[d]
    unit = "KiB/s" if what == "bw" else "IOPS"
    fp99 = f["clat_ns"]["percentile"]["99.000000"] / 1e3
    tp99 = t["clat_ns"]["percentile"]["99.000000"] / 1e3
    print(f"{name}: fio {f[what]:.0f} {unit} (p99 {fp99:.0f} us), "
          f"engine {t[what]:.0f} {unit} (p99 {tp99:.0f} us), ratio {t[what] / f[what]:.2f}")
PY
