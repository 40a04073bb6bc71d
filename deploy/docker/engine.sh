#!/usr/bin/env bash
# A Docker engine and an offline base image, for machines without Docker Hub (CI here):
#   deploy/docker/engine.sh start   install docker.io and docker-compose where missing, start dockerd
#   deploy/docker/engine.sh base    the base image $BASE_IMAGE from Debian packages (debootstrap)
#   deploy/docker/engine.sh stop    stop the dockerd this script started (none other)
# dockerd runs without iptables and without the default bridge (neither is allowed here): compose's
# own network still joins the containers, and builds need `--network host`.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-inferq-base:bookworm}
STATE=${DOCKER_ENGINE_STATE:-/var/run/inferq-dockerd}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

need_root() { [ "$(id -u)" = 0 ] || { echo "$0 $1: needs root" >&2; exit 1; }; }

install_missing() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ ${#missing[@]} -gt 0 ]; then
        need_root install
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

start() {
    install_missing
    if docker info >/dev/null 2>&1; then
        echo "dockerd already answers"
        return
    fi
    need_root start
    mkdir -p "$STATE"
    dockerd --iptables=false --bridge=none --storage-driver=overlay2 \
        --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && { echo "dockerd started (log: $STATE/dockerd.log)"; return; }
        sleep 0.5
    done
    echo "dockerd did not answer within 60 s:" >&2
    tail -20 "$STATE/dockerd.log" >&2
    exit 1
}

base() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "$BASE_IMAGE exists"
        return
    fi
    need_root base
    local root
    root=$(mktemp -d)
    trap 'rm -rf "$root"' RETURN
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python-is-python3,ca-certificates,redis-server \
        bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
    # pip inside a build reaches the package index through whatever this machine trusts.
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root.log"
    tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
    echo "$BASE_IMAGE imported"
}

stop() {
    local pidfile="$STATE/dockerd.pid"
    [ -f "$pidfile" ] || { echo "no dockerd of ours"; return; }
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || { echo "dockerd stopped"; return; }; sleep 0.5; done
    echo "dockerd ($pid) still running" >&2
}

case "${1:-}" in
    start) start ;;
    base) base ;;
    stop) stop ;;
    *) echo "usage: $0 start|base|stop" >&2; exit 2 ;;
esac
