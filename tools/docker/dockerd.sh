#!/usr/bin/env bash
# Start or stop a Docker engine of our own for CI (machines without a running engine): Debian's dockerd with the vfs
# storage driver and no bridge/iptables, on its own socket, data root and pidfile, so it never touches an engine that
# is already there. `stop` ends only the dockerd whose pid this script recorded (dockerd stops its own containerd).
# Usage: tools/docker/dockerd.sh start|stop|env     (env: HMKD_DOCKERD_ROOT=/var/lib/hmkd-docker,
#                                                     HMKD_DOCKERD_RUN=/run/hmkd-docker)
# `eval "$(tools/docker/dockerd.sh env)"` points DOCKER_HOST at it.
set -euo pipefail
data_root=${HMKD_DOCKERD_ROOT:-/var/lib/hmkd-docker}
run_dir=${HMKD_DOCKERD_RUN:-/run/hmkd-docker}
sock=$run_dir/docker.sock
pidfile=$run_dir/dockerd.pid
log=$run_dir/dockerd.log
host=unix://$sock

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
    mkdir -p "$data_root" "$run_dir/exec"
    # The data root persists between runs (cached base image and layers); the exec root is per-start.
    setsid dockerd --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
      --data-root "$data_root" --exec-root "$run_dir/exec" --pidfile "$pidfile" -H "$host" >"$log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
      if DOCKER_HOST=$host docker version >/dev/null 2>&1; then
        echo "dockerd: up (pid $(cat "$pidfile"), $host, data root $data_root)"; exit 0
      fi
      sleep 0.5
    done
    echo "dockerd: error: the engine did not answer on $host within 60 s; its log:" >&2
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
