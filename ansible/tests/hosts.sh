#!/usr/bin/env bash
# Real hosts for the playbooks: a Debian image built here (debootstrap from
# Debian's mirror, then `docker import`: no registry is needed), one
# container per host on a private bridge network, reached over SSH as root
# with a key made for the run, like servers. Writes DIR/hosts.yml (the
# inventory: regions, zones, racks, hosts) and DIR/id_ed25519.
#   hosts.sh up DIR     start the hosts
#   hosts.sh wait DIR   wait until every host answers SSH (after docker start)
#   hosts.sh down DIR   remove them and the network
set -euo pipefail
cmd=${1:?usage: hosts.sh up|down DIR}
dir=${2:?usage: hosts.sh up|down DIR}
image=${TESSERA_HOST_IMAGE:-tessera-host:bookworm}
net=${TESSERA_HOST_NET:-tessera-ansible}
subnet=${TESSERA_HOST_SUBNET:-172.31.250}
mirror=${TESSERA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Region a: 3 zones x 2 hosts (one rack per zone); region b: 3 zones x 1
# host; a-z1-h3 (a second rack in a's zone z1) is a spare for the expansion
# test. Inventories written: hosts.yml (without the spare), hosts-added.yml
# (with it), hosts-final.yml (with it, a-z1-h1 decommissioned).
hosts=(a-z1-h1 a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2 b-z1-h1 b-z2-h1 b-z3-h1 a-z1-h3)

build_image() {
    docker image inspect "$image" >/dev/null 2>&1 && return
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    local root
    root=$(mktemp -d)
    debootstrap --variant=minbase \
        --include=openssh-server,python3,openssl,sudo,procps,iproute2,util-linux \
        bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
        || { tail -20 "$dir/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    rm -f "$root"/etc/ssh/ssh_host_*
    tar -C "$root" -c . | docker import \
        -c 'CMD ["/bin/sh", "-c", "ssh-keygen -A >/dev/null && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"]' \
        - "$image" >/dev/null
    rm -rf "$root"
}

up() {
    mkdir -p "$dir"
    build_image
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
    docker network inspect "$net" >/dev/null 2>&1 \
        || docker network create --subnet "$subnet.0/24" "$net" >/dev/null
    # Docker's FORWARD policy is DROP here; containers on this bridge talk to
    # the host (the controller) directly, which needs no forwarding.
    local i=10
    for h in "${hosts[@]}"; do
        i=$((i + 1))
        docker rm -f "$h" >/dev/null 2>&1 || true
        docker run -d --name "$h" --hostname "$h" --network "$net" --ip "$subnet.$i" \
            --security-opt seccomp=unconfined \
            -v "$dir/id_ed25519.pub:/root/.ssh/authorized_keys:ro" "$image" >/dev/null
    done
    inventory a-z1-h1 a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2 b-z1-h1 b-z2-h1 b-z3-h1 >"$dir/hosts.yml"
    inventory "${hosts[@]}" >"$dir/hosts-added.yml"
    inventory a-z1-h2 a-z2-h1 a-z2-h2 a-z3-h1 a-z3-h2 b-z1-h1 b-z2-h1 b-z3-h1 a-z1-h3 >"$dir/hosts-final.yml"
    wait_ssh
}

# The inventory of the given hosts (regions, zones, racks as groups).
inventory() {
    local members=" $* " i
    echo "# Written by ansible/tests/hosts.sh: the container hosts of the playbook test."
    echo "all:"
    echo "  vars:"
    echo "    ansible_user: root"
    echo "    ansible_ssh_private_key_file: $dir/id_ed25519"
    echo "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    echo "  children:"
    echo "    tessera:"
    echo "      children:"
    for r in a b; do
        echo "        region_$r:"
        echo "          children:"
        for z in z1 z2 z3; do
            echo "            zone_${r}_$z:"
            echo "              children:"
            for k in r1 r2; do
                local rack=""
                i=10
                for h in "${hosts[@]}"; do
                    i=$((i + 1))
                    case $h in "$r-$z-"*) ;; *) continue ;; esac
                    case "$members" in *" $h "*) ;; *) continue ;; esac
                    # h3 hosts stand in a second rack.
                    case $h in *-h3) [ $k = r2 ] || continue ;; *) [ $k = r1 ] || continue ;; esac
                    if [ -z "$rack" ]; then
                        rack=1
                        echo "                rack_${r}_${z}_$k:"
                        echo "                  hosts:"
                    fi
                    echo "                    $h:"
                    echo "                      ansible_host: $subnet.$i"
                    echo "                      tessera_node_targets:"
                    # 12 targets per region: 2 per host in a, 4 per host in b.
                    local per=2
                    [ "$r" = b ] && per=4
                    for t in $(seq "$per"); do
                        echo "                        - {id: $(( (i - 10) * 10 + t )), path: /var/lib/tessera/target-$t.dat, capacity_bytes: 268435456}"
                    done
                done
            done
        done
    done
}

# Wait for every sshd.
wait_ssh() {
    for h in "${hosts[@]}"; do
        local ip
        ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$h")
        for _ in $(seq 50); do
            ssh -q -i "$dir/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                -o ConnectTimeout=1 "root@$ip" true 2>/dev/null && break
            sleep 0.2
        done
    done
}

down() {
    for h in "${hosts[@]}"; do docker rm -f "$h" >/dev/null 2>&1 || true; done
    docker network rm "$net" >/dev/null 2>&1 || true
}

case $cmd in
    up) up ;;
    wait) wait_ssh ;;
    down) down ;;
    *) echo "usage: hosts.sh up|down DIR" >&2; exit 2 ;;
esac
