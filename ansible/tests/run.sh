#!/usr/bin/env bash
# The playbooks on real hosts: containers built here and reached over SSH
# (tests/hosts.sh), two regions (a: 3 zones x 2 hosts, b: 3 zones x 1 host)
# with a replication rule from a to b. Deploys with site.yml, checks that a
# second run changes nothing, that a foreign certificate is refused, that
# the map-signing key is on no host and a map signed by another key is
# refused (the map unchanged), that the users are issued and listed,
# runs `tessera admin audit` against region a (a user who owns nothing,
# region b's certificate on the data port and on the replication
# endpoint), rotates a user's certificate under that user's load (no
# error, no node restarted, the old certificate refused), writes and reads through the client from
# outside and sees the objects replicated to b, stops a zone and reads
# again, reverts a rule added by hand (the inventory owns the map), upgrades
# region a node by node under a bounded client load (verify on) that must
# see 0 errors, adds a node (add_nodes.yml), refuses two bad decommissions,
# decommissions a node (decommission.yml), checks that site.yml then
# changes nothing, and reads everything with another zone stopped: the new
# node must hold the data the old one held. Nodes run as supervised
# processes (no init system in the containers); everything else is the
# bare-metal path.
# Usage: ansible/tests/run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:?usage: run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]}")
bench=$(realpath "${2:?usage: run.sh TESSERA_BIN TESSERA_BENCH_BIN [DIR]}")
dir=${3:-$(mktemp -d /tmp/tessera-ansible.XXXXXX)}
mkdir -p "$dir"
export ANSIBLE_CONFIG=$here/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
cleanup() { "$here/tests/hosts.sh" down "$dir" || true; }
[ -n "${TESSERA_ANSIBLE_KEEP:-}" ] || trap cleanup EXIT   # TESSERA_ANSIBLE_KEEP=1 leaves the hosts up to look at
fail() { echo "FAIL: $*" >&2; exit 1; }

"$here/tests/hosts.sh" up "$dir"
vars() {
    cat >"$dir/vars.yml" <<V
tessera_node_binary: $bin
tessera_node_version: "$1"
tessera_service_manager: process
tessera_tuning_apply_sysctls: false
tessera_pki_dir: $dir/pki
tessera_node_repair_interval_ms: 2000
tessera_users: [alice, auditor]
tessera_node_crr_rules:
  - {id: photos-to-b, source_region: a, bucket: photos, dest_region: b, backfill: true}
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
ip_of() { grep -A1 "$1:" "$dir/hosts-added.yml" | sed -n 's/.*ansible_host: //p'; }
a1=$(ip_of a-z1-h1) a2=$(ip_of a-z2-h1) a3=$(ip_of a-z3-h1) b1=$(ip_of b-z1-h1)
for ip in "$a1" "$a2" "$a3"; do
    printf 'endpoint = "%s:7400"\nserver_name = "tessera-a"\nca_cert = "%s/pki/a/ca.pem"\ncert = "%s/pki/a/admin.pem"\nkey = "%s/pki/a/admin.key"\nmap_key = "%s/pki/a/map-signing.key"\n' \
        "$ip" "$dir" "$dir" "$dir" "$dir" >"$dir/client-$ip.toml"
done
printf 'endpoint = "%s:7400"\nserver_name = "tessera-b"\nca_cert = "%s/pki/b/ca.pem"\ncert = "%s/pki/b/admin.pem"\nkey = "%s/pki/b/admin.key"\n' \
    "$b1" "$dir" "$dir" "$dir" >"$dir/client-$b1.toml"
c() { "$bin" --config "$dir/client-$1.toml" "${@:2}"; }
c "$a1" mb photos >/dev/null

echo "== doors: a certificate of another region's CA is refused; metrics need the region's token"
sed -e "s|/pki/a/admin|/pki/b/admin|g" "$dir/client-$a1.toml" >"$dir/stranger.toml"
if out=$("$bin" --config "$dir/stranger.toml" ls 2>&1); then fail "region b's admin got into region a: $out"; fi
grep -q "certificate" <<<"$out" || fail "a foreign certificate was refused without saying so: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$a1:9400/metrics")
[ "$code" = 401 ] || fail "GET /metrics without the token answered $code"
# Read whole, then search: `curl | grep -q` fails under pipefail when grep
# stops reading before curl has written everything (SIGPIPE).
metrics=$(curl -sf -H "Authorization: Bearer $(head -1 "$dir/pki/a/metrics.token")" "http://$a1:9400/metrics") \
    || fail "GET /metrics with the region's token failed"
grep -q '^tessera_' <<<"$metrics" || fail "GET /metrics with the region's token gave no metrics"
health=$(curl -sf "http://$a1:9400/health") || fail "GET /health needs no token"
grep -q ok <<<"$health" || fail "GET /health answered $health"
echo "== doors: the map-signing key stays on the controller; a map signed by another key is refused"
for h in a-z1-h1 a-z2-h1 b-z1-h1; do
    found=$(docker exec "$h" find / -xdev -name 'map-signing.key' 2>/dev/null || true)
    [ -z "$found" ] || fail "the map-signing key is on $h: $found"
done
"$bin" admin map key --out "$dir/rogue" >/dev/null
docker exec a-z2-h1 cat /etc/tessera/map.ansible.toml >"$dir/rogue/map.toml"
held=$(sed -n 's/^epoch = //p' "$dir/rogue/map.toml")
sed -i "s/^epoch = .*/epoch = $((held + 1))/" "$dir/rogue/map.toml"
"$bin" admin map sign "$dir/rogue/map.toml" --key "$dir/rogue/map-signing.key" >/dev/null
grep -v '^map_key' "$dir/client-$a1.toml" >"$dir/rogue/admin.toml"
if out=$("$bin" --config "$dir/rogue/admin.toml" push-map "$dir/rogue/map.toml" 2>&1); then fail "a map signed by a rogue key was taken: $out"; fi
grep -q "which this node does not trust" <<<"$out" || fail "a rogue map was refused without saying why: $out"
[ "$(docker exec a-z2-h1 sed -n 's/^epoch = //p' /etc/tessera/map.toml)" = "$held" ] || fail "a refused map changed a node's map"
echo "== users: issued on the controller, listed in each region; their keys on no host"
for r in a b; do
    users=$("$bin" --config "$dir/pki/$r/admin.toml" admin user ls) || fail "admin user ls in region $r: $users"
    grep -q '^alice ' <<<"$users" && grep -q '^auditor ' <<<"$users" || fail "region $r does not list the users: $users"
done
for h in a-z1-h1 b-z1-h1; do
    found=$(docker exec "$h" find / -xdev \( -name 'alice.key' -o -name 'secrets.key' \) 2>/dev/null || true)
    [ -z "$found" ] || fail "a user key or the secrets key is on $h: $found"
done

echo "== tessera admin audit: region a's doors, tried by every kind of attacker"
docker exec b-z1-h1 cat /etc/tessera/tls/node.pem >"$dir/peer-b.pem"
(umask 077 && docker exec b-z1-h1 cat /etc/tessera/tls/node.key >"$dir/peer-b.key")
audit=$("$bin" --config "$dir/pki/a/admin.toml" admin audit \
    --user-cert "$dir/pki/a/users/auditor.pem" --user-key "$dir/pki/a/users/auditor.key" \
    --peer-cert "$dir/peer-b.pem" --peer-key "$dir/peer-b.key" --crr-endpoint "$a1:7800" --peer-region b 2>&1) \
    || { echo "$audit"; fail "the audit of region a"; }
echo "$audit" >"$dir/audit.log"
grep -q '^refused  user:auditor (owns nothing' <<<"$audit" || fail "the audit did not attack as user:auditor: $audit"
grep -q '^refused  peer b / ' <<<"$audit" || fail "the audit did not attack the data port as region b: $audit"
grep -q '^refused  peer b at the replication endpoint / .*may not replicate into bucket' <<<"$audit" \
    || fail "the replication endpoint took a replica no rule allows: $audit"
grep -q '^audit passed: 64 attempts by 4 attackers' <<<"$audit" || fail "the audit: $audit"

echo "== rotate_user_cert.yml: alice's certificate replaced, nodes untouched, her load never failing"
ua=$dir/pki/a/users
"$bin" --config "$ua/alice.toml" mb alice-data >/dev/null
"$bin" --config "$ua/alice.toml" put "$dir/id_ed25519.pub" alice-data/note >/dev/null
cp "$ua/alice.pem" "$dir/alice-old.pem" && cp "$ua/alice.key" "$dir/alice-old.key"
sed -e "s|^cert = .*|cert = \"$dir/alice-old.pem\"|" -e "s|^key = .*|key = \"$dir/alice-old.key\"|" \
    -e "s|^ca_cert = .*|ca_cert = \"$ua/ca.pem\"|" "$ua/alice.toml" >"$dir/alice-old.toml"
node_pids() { for h in a-z1-h1 a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2; do docker exec "$h" pgrep -f 'tessera node'; done; }
pids=$(node_pids)
play "$here/playbooks/rotate_user_cert.yml" -e tessera_rotate_user=alice >"$dir/rotate1.log" 2>&1 \
    || { tail -30 "$dir/rotate1.log"; fail "rotate_user_cert.yml (issue)"; }
cmp -s "$ua/alice.pem" "$dir/alice-old.pem" && fail "rotate_user_cert.yml issued no new certificate"
for cfg in "$ua/alice.toml" "$dir/alice-old.toml"; do
    "$bin" --config "$cfg" get alice-data/note "$dir/note" >/dev/null || fail "alice ($cfg) cannot read mid-rotation"
done
"$bench" --config="$ua/alice.toml" --eta=never --output-format=json --output="$dir/alice-load.json" \
    --name=alice --bucket=alice-load --rw=randrw --bs=64k --size=4m --iodepth=2 --rate_iops=20 --runtime=40 \
    --time_based --continue_on_error=all --verify=crc32c >/dev/null 2>&1 &
alice_load=$!
sleep 5
play "$here/playbooks/rotate_user_cert.yml" -e tessera_rotate_user=alice -e tessera_rotate_finish=true \
    >"$dir/rotate2.log" 2>&1 || { kill $alice_load; tail -30 "$dir/rotate2.log"; fail "rotate_user_cert.yml (finish)"; }
if out=$("$bin" --config "$dir/alice-old.toml" get alice-data/note "$dir/note" 2>&1); then
    fail "alice's previous certificate still reads after the rotation"
fi
grep -q "was revoked" <<<"$out" || fail "the previous certificate was refused without saying it was revoked: $out"
[ ! -e "$ua/alice.previous.pem" ] || fail "the previous certificate's files were left behind"
wait $alice_load || true
python3 - "$dir/alice-load.json" <<'PY' || fail "alice's load saw errors during the rotation"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ops = j["read"]["total_ios"] + j["write"]["total_ios"]
print(f"alice's load across the revocation: {ops} operations, errors {j['tessera']['errors']}")
sys.exit(1 if j["tessera"]["errors"] or ops < 100 else 0)
PY
[ "$(node_pids)" = "$pids" ] || fail "a node of region a restarted during the rotation"

c "$b1" mb photos >/dev/null
for i in 1 2 3; do head -c $((i * 700001)) /dev/urandom >"$dir/obj$i"; c "$a1" put "$dir/obj$i" "photos/obj$i" >/dev/null; done
[ "$(c "$a1" ls --json photos | grep -c '"key":')" = 3 ] || fail "ls does not list the 3 objects"
for i in 1 2 3; do c "$a1" get "photos/obj$i" "$dir/back$i" >/dev/null; cmp -s "$dir/obj$i" "$dir/back$i" || fail "obj$i read back differs"; done

# Every object of region a's photos bucket is in region b, byte for byte
# (bounded: 60 s).
replicated() {
    local deadline=$((SECONDS + 60)) f
    for f in "$@"; do
        until c "$b1" get "photos/$f" "$dir/b-$f" >/dev/null 2>&1 && cmp -s "$dir/$f" "$dir/b-$f"; do
            [ $SECONDS -lt $deadline ] || { c "$a1" crr status || true; fail "photos/$f is not replicated to region b"; }
            sleep 1
        done
    done
}
echo "== replication a -> b (rule from the inventory)"
grep -q '^photos-to-b ' <<<"$(c "$a1" crr ls)" || fail "the inventory's rule is not in region a's map"
replicated obj1 obj2 obj3

echo "== a rule added by hand (replaced by the inventory's on the next run, below)"
c "$a2" mb scratch >/dev/null
c "$a2" crr add --id by-hand --bucket scratch --dest-region b --dest-bucket photos >/dev/null
grep -q '^by-hand ' <<<"$(c "$a2" crr ls)" || fail "tessera crr add did not add the rule"

echo "== zone z1 stopped: reads still served"
docker stop a-z1-h1 a-z1-h2 >/dev/null
for i in 1 2 3; do c "$a2" get "photos/obj$i" "$dir/back$i" >/dev/null; cmp -s "$dir/obj$i" "$dir/back$i" || fail "obj$i differs with z1 down"; done
docker start a-z1-h1 a-z1-h2 >/dev/null
"$here/tests/hosts.sh" wait "$dir"

echo "== site.yml after the zone came back: nodes restarted, the hand-made rule replaced"
play "$here/playbooks/site.yml" >"$dir/site3.log" 2>&1 || { tail -40 "$dir/site3.log"; fail "site.yml after the zone came back"; }
grep -q '^by-hand ' <<<"$(c "$a2" crr ls)" && fail "site.yml left the hand-made rule in the map"
grep -q '^photos-to-b ' <<<"$(c "$a2" crr ls)" || fail "site.yml lost the inventory's rule"

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
order=$(grep -A1 'TASK \[The node runs the new version\]' "$dir/upgrade.log" | sed -n 's/^ok: \[\(.*\)\]$/\1/p' | tr '\n' ' ')
[ "$order" = "a-z1-h1 a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2 " ] || fail "upgrade order was not zone by zone: $order"
python3 - "$dir/load.json" <<'PY' || fail "the load saw errors during the upgrade"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ops = j["read"]["total_ios"] + j["write"]["total_ios"]
print(f"load during the upgrade: {ops} operations, errors {j['tessera']['errors']}, "
      f"{j['tessera']['verified']} reads verified")
sys.exit(1 if j["tessera"]["errors"] or ops < 100 else 0)
PY

echo "== replication still runs on the new version"
head -c 300001 /dev/urandom >"$dir/obj4"
c "$a2" put "$dir/obj4" photos/obj4 >/dev/null
replicated obj1 obj2 obj3 obj4

echo "== add_nodes.yml: a-z1-h3 joins zone z1 in a new rack"
add() { ansible-playbook -i "$dir/hosts-added.yml" -e "@$dir/vars.yml" "$@"; }
add "$here/playbooks/add_nodes.yml" >"$dir/add.log" 2>&1 || { tail -40 "$dir/add.log"; fail "add_nodes.yml"; }
grep -q 'repair caught up' "$dir/add.log" || fail "add_nodes.yml did not wait for repair"
st=$(c "$a2" repair status) || fail "a node of region a does not answer after add_nodes.yml: $st"
grep -q '^a-z1-h3 ' <<<"$st" || fail "a-z1-h3 is not in region a's map"

echo "== decommission.yml refuses without confirmation, and a drain the zone cannot take"
add "$here/playbooks/decommission.yml" -e tessera_decommission_host=a-z1-h1 >"$dir/decom0.log" 2>&1 \
    && fail "decommission.yml ran without tessera_decommission_confirm"
grep -q 'tessera_decommission_confirm' "$dir/decom0.log" || { tail -20 "$dir/decom0.log"; fail "no word of the confirmation"; }
epoch() { docker exec a-z2-h2 sed -n 's/^epoch = //p' /etc/tessera/map.ansible.toml; }
before=$(epoch)
add "$here/playbooks/decommission.yml" -e tessera_decommission_host=a-z2-h1 -e tessera_decommission_confirm=a-z2-h1 \
    >"$dir/decom1.log" 2>&1 && fail "decommission.yml drained a-z2-h1 out of a zone that cannot lose it"
grep -q 'weighted targets' "$dir/decom1.log" || { tail -30 "$dir/decom1.log"; fail "the refused drain does not say why"; }
[ "$(epoch)" = "$before" ] || fail "a refused drain changed region a's map (epoch $before -> $(epoch))"

echo "== decommission.yml: a-z1-h1 leaves region a"
add "$here/playbooks/decommission.yml" -e tessera_decommission_host=a-z1-h1 -e tessera_decommission_confirm=a-z1-h1 \
    >"$dir/decom.log" 2>&1 || { tail -40 "$dir/decom.log"; fail "decommission.yml"; }
docker exec a-z1-h1 pgrep -f 'tessera node' >/dev/null && fail "a-z1-h1 still runs its node"
grep -q 'repair caught up' "$dir/decom.log" || fail "decommission.yml did not wait for repair"
st=$(c "$a2" repair status) || fail "a node of region a does not answer after decommission.yml: $st"
grep -q '^a-z1-h1 ' <<<"$st" && fail "a-z1-h1 is still in region a's map"
grep -q '^a-z1-h3 ' <<<"$st" || fail "a-z1-h3 left region a's map"

echo "== site.yml with a-z1-h1 out of the inventory: nothing changes"
final() { ansible-playbook -i "$dir/hosts-final.yml" -e "@$dir/vars.yml" "$@"; }
final "$here/playbooks/site.yml" >"$dir/site4.log" 2>&1 || { tail -40 "$dir/site4.log"; fail "site.yml after the decommission"; }
changed=$(recap_changed "$dir/site4.log")
[ "$changed" = 0 ] || { grep -B2 'changed:' "$dir/site4.log" | head -40; fail "site.yml after the decommission changed $changed things"; }

echo "== zone z2 stopped: every object read from z1 (h2, and h3 that took h1's place) and z3"
docker stop a-z2-h1 a-z2-h2 >/dev/null
for i in 1 2 3 4; do
    c "$a3" get "photos/obj$i" "$dir/back$i" >/dev/null || fail "obj$i unreadable with z2 down after the decommission"
    cmp -s "$dir/obj$i" "$dir/back$i" || fail "obj$i differs with z2 down after the decommission"
done
c "$a3" ls --recursive --json load | sed -n 's/.*"key":"\([^"]*\)".*/\1/p' >"$dir/load-keys"
[ -s "$dir/load-keys" ] || fail "the load bucket lists nothing with z2 down"
while read -r k; do
    c "$a3" get "load/$k" "$dir/loadobj" >/dev/null || fail "load/$k unreadable with z2 down after the decommission"
done <"$dir/load-keys"
echo "PASS"
