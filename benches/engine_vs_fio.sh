#!/usr/bin/env bash
# Runs fio and the Tessera engine on the same file system, same block size
# and queue depth, in one run, and prints the ratios.
# Usage: benches/engine_vs_fio.sh [DIR]   (DIR defaults to ./target/bench-disk)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-disk}
mkdir -p "$dir"
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)"; exit 1; }
cargo build --release -q -p tessera-benches --bin engine_bench


fio --name=seqw --directory="$dir" --filename=fio.dat --size=1G --bs=1M --rw=write --direct=1 \
    --ioengine=io_uring --iodepth=32 --output-format=json > "$dir/fio-w.json"
fio --name=randr --directory="$dir" --filename=fio.dat --size=1G --bs=4k --rw=randread --direct=1 \
    --ioengine=io_uring --iodepth=32 --runtime=15 --time_based --output-format=json > "$dir/fio-r.json"
rm -f "$dir/fio.dat"
fio_w=$(python3 -c 'import json; print(json.load(open("'"$dir"'/fio-w.json"))["jobs"][0]["write"]["bw"]/1024)')
fio_r=$(python3 -c 'import json; print(json.load(open("'"$dir"'/fio-r.json"))["jobs"][0]["read"]["iops"])')
out=$(./target/release/engine_bench --dir "$dir" --bs 1048576 --size 1073741824 --iodepth 32 --read-bs 4096 --read-runtime 15)
echo "$out"
eng_w=$(echo "$out" | sed -n 's/.*seq write.*: \([0-9.]*\) MiB\/s.*/\1/p')
eng_r=$(echo "$out" | sed -n 's/.*rand read.*: \([0-9.]*\) IOPS.*/\1/p')
python3 - "$fio_w" "$eng_w" "$fio_r" "$eng_r" <<'PY'
import sys
fw, ew, fr, er = map(float, sys.argv[1:])
print(f"seq write 1 MiB QD32: fio {fw:.1f} MiB/s, engine {ew:.1f} MiB/s, ratio {ew/fw:.2}")
print(f"rand read 4 KiB QD32: fio {fr:.0f} IOPS, engine {er:.0f} IOPS, ratio {er/fr:.2}")
PY
