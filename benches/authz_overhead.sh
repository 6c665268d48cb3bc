#!/usr/bin/env bash
# What authentication and authorization cost: 4 KiB PUT and GET ops/s and
# p50 of a `tessera dev` region built from BASE (default 8b71587, the last
# commit before mutual TLS and per-request authorization) and of this
# checkout, alternating ROUNDS times in one run on one machine, so both
# see the same disk, CPU and load. Prints each run and the median ratio.
# Usage: benches/authz_overhead.sh [BASE] [ROUNDS]   (reports in target/bench-authz)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-8b71587}
rounds=${2:-3}
out=target/bench-authz
mkdir -p "$out"
tree=target/bench-authz/base-src
if [ ! -d "$tree" ]; then git worktree add --detach "$tree" "$base" >/dev/null; fi
(cd "$tree" && git checkout -q --detach "$base")
echo "building $base and $(git rev-parse --short HEAD) (release)"
(cd "$tree" && CARGO_TARGET_DIR="$PWD/../base-target" cargo build --release -q -p tessera-tools)
cargo build --release -q -p tessera-tools
run() { # NAME BIN_DIR ROUND
    local name=$1 bin=$2 round=$3 region
    region=$(mktemp -d /tmp/tessera-authz.XXXXXX)
    "$bin/tessera" dev --exit-after-demo --dir "$region" > "$out/$name-$round.dev.log"
    for z in z1 z2 z3; do "$bin/tessera" dev start-zone --dir "$region" "$z" >/dev/null; done
    "$bin/tessera-bench" --config="$region/client.toml" --output-format=json --output="$out/$name-$round.json" \
        benches/jobs/small.fio >/dev/null || true
    "$bin/tessera" dev down --dir "$region" >/dev/null 2>&1 || true
    rm -rf "$region"
}
for r in $(seq 1 "$rounds"); do
    run base "target/bench-authz/base-target/release" "$r"
    run head "target/release" "$r"
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def figures(path):
    doc = json.load(open(path))
    got = {}
    for j in doc["jobs"]:
        d = "write" if j["jobname"] == "small-put" else "read"
        x = j[d]
        errors = sum(j["tessera"]["errors"].values())
        got[j["jobname"]] = (x["iops"], x["clat_ns"]["percentile"]["50.000000"] / 1e6, errors)
    return got
rows = {}
for r in range(1, rounds + 1):
    b, h = figures(f"{out}/base-{r}.json"), figures(f"{out}/head-{r}.json")
    for job in ("small-put", "small-get"):
        print(f"round {r} {job:>9}: base {b[job][0]:8.1f} ops/s p50 {b[job][1]:6.2f} ms (errors {b[job][2]}) | "
              f"head {h[job][0]:8.1f} ops/s p50 {h[job][1]:6.2f} ms (errors {h[job][2]})")
        rows.setdefault(job, []).append((h[job][0] / b[job][0], h[job][1] / b[job][1]))
for job, rs in rows.items():
    ops = statistics.median(x for x, _ in rs)
    p50 = statistics.median(y for _, y in rs)
    print(f"median {job:>9}: head/base ops/s {ops:.3f}, p50 {p50:.3f}")
PY
