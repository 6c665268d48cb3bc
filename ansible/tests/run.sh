#!/usr/bin/env bash
# The playbooks on real hosts: containers built here and reached over SSH
# (tests/hosts.sh), two regions (a: 3 zones x 2 hosts, b: 3 zones x 1 host).
# Deploys with site.yml, checks that a second run changes nothing, writes
# and reads through the client from outside, stops a zone and reads again,
# then upgrades region a node by node under a bounded client load (verify
# on) that must see 0 errors. Nodes run as supervised processes (no init
# system in the containers); everything else is the bare-metal path.
# Usage: ansible/tests/run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:?usage: run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]}")
bench=$(realpath "${2:?usage: run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]}")
dir=${3:-$(mktemp -d /tmp/tessera-ansible.XXXXXX)}
mkdir -p "$dir"
export ANSIBLE_CONFIG=$here/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
cleanup() { "$here/tests/hosts.sh" down "$dir" || true; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$here/tests/hosts.sh" up "$dir"
vars() {
    cat >"$dir/vars.yml" <<V
tessera_node_binary: $bin
tessera_node_version: "$1"
tessera_service_manager: process
tessera_tuning_apply_sysctls: false
tessera_pki_dir: $dir/pki
V
}
play() { ansible-playbook -i "$dir/hosts.yml" -e "@$dir/vars.yml" "$@"; }
recap_changed() { sed -n '/PLAY RECAP/,$p' "$1" | grep -o 'changed=[0-9]*' | awk -F= '{s += $2} END {print s + 0}'; }

echo "== site.yml: fresh deploy of regions a and b"
vars 1.0.0
play "$here/playbooks/site.yml" >"$dir/site1.log" 2>&1 || { tail -40 "$dir/site1.log"; fail "site.yml"; }

echo "== site.yml again: nothing changes"
play "$here/playbooks/site.yml" >"$dir/site2.log" 2>&1 || { tail -40 "$dir/site2.log"; fail "second site.yml"; }
changed=$(recap_changed "$dir/site2.log")
[ "$changed" = 0 ] || { grep -B2 'changed:' "$dir/site2.log" | head -40; fail "second run changed $changed things"; }

echo "== the client against the deployed region (from outside, over the bridge)"
a1=$(grep -A1 'a-z1-h1:' "$dir/hosts.yml" | sed -n 's/.*ansible_host: //p')
a2=$(grep -A1 'a-z2-h1:' "$dir/hosts.yml" | sed -n 's/.*ansible_host: //p')
for ip in "$a1" "$a2"; do
    printf 'endpoint = "%s:7400"\nserver_name = "tessera-a"\nca_cert = "%s/pki/a/ca.pem"\n' "$ip" "$dir" >"$dir/client-$ip.toml"
done
c() { "$bin" --config "$dir/client-$1.toml" "${@:2}"; }
c "$a1" mb photos >/dev/null
for i in 1 2 3; do head -c $((i * 700001)) /dev/urandom >"$dir/obj$i"; c "$a1" put "$dir/obj$i" "photos/obj$i" >/dev/null; done
[ "$(c "$a1" ls photos | wc -l)" = 3 ] || fail "ls does not list the 3 objects"
for i in 1 2 3; do c "$a1" get "photos/obj$i" "$dir/back$i" >/dev/null; cmp -s "$dir/obj$i" "$dir/back$i" || fail "obj$i read back differs"; done

echo "== zone z1 stopped: reads still served"
docker stop a-z1-h1 a-z1-h2 >/dev/null
for i in 1 2 3; do c "$a2" get "photos/obj$i" "$dir/back$i" >/dev/null; cmp -s "$dir/obj$i" "$dir/back$i" || fail "obj$i differs with z1 down"; done
docker start a-z1-h1 a-z1-h2 >/dev/null
"$here/tests/hosts.sh" wait "$dir"
play "$here/playbooks/site.yml" >"$dir/site3.log" 2>&1 || { tail -40 "$dir/site3.log"; fail "site.yml after the zone came back"; }

echo "== rolling upgrade of region a under load"
"$bench" --config="$dir/client-$a2.toml" --eta=never --output-format=json --output="$dir/load.json" \
    --name=load --bucket=load --rw=randrw --bs=64k --size=8m --iodepth=4 --rate_iops=20 --runtime=240 \
    --time_based --continue_on_error=all --verify=crc32c >/dev/null 2>&1 &
load=$!
sleep 5
vars 1.0.1
play --limit region_a "$here/playbooks/rolling_upgrade.yml" >"$dir/upgrade.log" 2>&1 || { kill $load; tail -40 "$dir/upgrade.log"; fail "rolling upgrade"; }
wait $load || true   # the load runs its 240 s and reports
for h in a-z1-h1 a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2; do
    [ "$(docker exec "$h" readlink /usr/local/bin/tessera)" = /opt/tessera/1.0.1/tessera ] || fail "$h not upgraded"
done
python3 - "$dir/load.json" <<'PY' || fail "the load saw errors during the upgrade"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ops = j["read"]["total_ios"] + j["write"]["total_ios"]
print(f"load during the upgrade: {ops} operations, errors {j['tessera']['errors']}, "
      f"{j['tessera']['verified']} reads verified")
sys.exit(1 if j["tessera"]["errors"] or ops < 100 else 0)
PY
echo "PASS"
