#!/usr/bin/env bash
# Start or stop a Docker engine of our own for CI (machines without a running engine): Debian's dockerd with no
# bridge/iptables, on its own socket, data root and pidfile, so it never touches an engine that is already there.
# `stop` ends only the dockerd whose pid this script recorded (dockerd stops its own containerd).
# Storage: overlay2 where the kernel and the data root's filesystem allow it (dockerd refuses to start otherwise),
# else vfs, which works anywhere but copies the whole image for every container and layer: on vfs the legacy
# builder's few steps after the modern image's 6 GB install cost minutes each (docker/README.md has the figures).
# Usage: tools/docker/dockerd.sh start|stop|env     (env: HMKD_DOCKERD_ROOT=/var/lib/hmkd-docker,
#        HMKD_DOCKERD_RUN=/run/hmkd-docker, HMKD_DOCKERD_STORAGE=auto|overlay2|vfs; auto: overlay2, else vfs)
# `eval "$(tools/docker/dockerd.sh env)"` points DOCKER_HOST at it.
set -euo pipefail
data_root=${HMKD_DOCKERD_ROOT:-/var/lib/hmkd-docker}
run_dir=${HMKD_DOCKERD_RUN:-/run/hmkd-docker}
sock=$run_dir/docker.sock
pidfile=$run_dir/dockerd.pid
log=$run_dir/dockerd.log
host=unix://$sock
storage=${HMKD_DOCKERD_STORAGE:-auto}

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case ${1:-} in
  env)
    echo "export DOCKER_HOST=$host"
    ;;
  start)
    if running; then echo "dockerd: already running (pid $(cat "$pidfile"), $host)"; exit 0; fi
    if ! command -v dockerd >/dev/null; then
      echo "dockerd: installing Debian's docker.io"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
        >/dev/null
    fi
    case $storage in
      auto) drivers=(overlay2 vfs) ;;
      overlay2|vfs) drivers=("$storage") ;;
      *) echo "dockerd: error: HMKD_DOCKERD_STORAGE must be auto, overlay2 or vfs, got '$storage'" >&2; exit 2 ;;
    esac
    mkdir -p "$data_root" "$run_dir/exec"
    # The data root persists between runs (cached base images and layers, kept per storage driver); the exec root is
    # per-start.
    for driver in "${drivers[@]}"; do
      setsid dockerd --storage-driver="$driver" --iptables=false --ip-masq=false --bridge=none \
        --data-root "$data_root" --exec-root "$run_dir/exec" --pidfile "$pidfile" -H "$host" >"$log" 2>&1 </dev/null &
      pid=$!
      for _ in $(seq 1 120); do
        if DOCKER_HOST=$host docker version >/dev/null 2>&1; then
          echo "dockerd: up (pid $(cat "$pidfile"), $host, data root $data_root, storage driver $driver)"; exit 0
        fi
        kill -0 "$pid" 2>/dev/null || running || break  # it exited: this driver is not supported here
        sleep 0.5
      done
      if kill -0 "$pid" 2>/dev/null || running; then
        echo "dockerd: error: the engine did not answer on $host within 60 s; its log:" >&2
        tail -n 20 "$log" >&2
        exit 1
      fi
      echo "dockerd: the $driver storage driver is not usable here: $(grep -m1 -iE 'level=(error|fatal)' "$log" \
        | cut -c1-200)" >&2
    done
    echo "dockerd: error: dockerd did not start with any of: ${drivers[*]}; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
    ;;
  stop)
    if ! running; then echo "dockerd: not running"; exit 0; fi
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || { echo "dockerd: stopped (pid $pid)"; exit 0; }
      sleep 0.5
    done
    echo "dockerd: still running after 30 s; sending KILL to $pid" >&2
    kill -9 "$pid" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2; exit 2
    ;;
esac
