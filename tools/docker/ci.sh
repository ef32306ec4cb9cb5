#!/usr/bin/env bash
# CI's real Docker check: starts a dockerd of its own, makes a local base image (no registry is reachable), builds
# docker/Dockerfile with CPU wheel sources through build arguments only, runs `make docker-smoke` in the image (driven
# from the host by tools/docker/smoke.py, which the image does not hold), prints build time, image size and the smoke
# report, and stops the dockerd it started.
# Usage: tools/docker/ci.sh      (make docker-ci; needs `make setup` first: the venv and the compiled mmcv-full wheel)
# env: VENV=.venv, HMKD_WHEEL_CACHE (mmcv-full wheel dir), HMKD_WHEEL_PORT=28765, PIP_INDEX (the registry's simple
#      index), DOCKER_SMOKE_USER (UID:GID of the smoke; 4242:4242 when run as root, so the ownership check counts).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-.venv}
wheels=${HMKD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmkd/wheels}
base=hmkd-ci-base:bookworm-py3.8
index=${PIP_INDEX:-https://pypi.org/simple}
out=runs/docker-ci
mkdir -p "$out"
export DOCKER_BUILDKIT=0  # the engine's own (legacy) builder: Debian's docker.io has no buildx

started_dockerd=0
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ "$started_dockerd" = 1 ]; then tools/docker/dockerd.sh stop || true; fi
}
trap cleanup EXIT

# The docker SDK is a test pin (requirements/test.txt); a venv made before that pin gets it here.
if ! "$venv/bin/python" -c 'import docker' 2>/dev/null; then
  "$venv/bin/python" -m pip install -q docker==7.1.0
fi
mmcv_pin=$(grep -E '^mmcv-full==' requirements/stack.txt)
if ! ls "$wheels/mmcv_full-${mmcv_pin#mmcv-full==}-cp38-"*.whl >/dev/null 2>&1; then
  echo "docker-ci: error: no $mmcv_pin wheel in $wheels: run \`make setup\` first (it compiles one)" >&2
  exit 1
fi

eval "$(tools/docker/dockerd.sh env)"
if ! docker version >/dev/null 2>&1; then
  tools/docker/dockerd.sh start
  started_dockerd=1
fi
t0=$(date +%s)
tools/docker/make_base.sh "$base"
t1=$(date +%s)

# The wheel cache as a find-links page on loopback, as OpenMMLab's index is one (the build uses the host network).
# A fixed port keeps MMCV_FIND_LINKS, a build argument, the same between runs, so the stack layer's cache holds.
free_port() { python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1])' "$1"; }
port=$(free_port "${HMKD_WHEEL_PORT:-28765}" 2>/dev/null || true)
if [ -z "$port" ]; then
  port=$(free_port 0)
  echo "docker-ci: port ${HMKD_WHEEL_PORT:-28765} is taken; serving wheels on $port (the stack layer will rebuild)"
fi
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$wheels" >"$out/wheel-server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.2
done

echo "docker-ci: building docker/Dockerfile on $base with CPU wheels (log: $out/build.log)"
status=0
make docker-build DOCKER_BUILD_FLAGS="--network host --force-rm --build-arg BASE_IMAGE=$base --build-arg APT_PACKAGES= \
  --build-arg PIP_INDEX_URL=$index --build-arg TORCH_INDEX_URL=$index --build-arg TORCH_VARIANT= \
  --build-arg MMCV_FIND_LINKS=http://127.0.0.1:$port/" >"$out/build.log" 2>&1 || status=$?
grep -E '^(Step [0-9]+/[0-9]+ : [A-Z]+|check_image|Successfully tagged)' "$out/build.log" | cut -c1-110 || true
if [ "$status" != 0 ]; then
  echo "docker-ci: error: the build failed ($status); the end of $out/build.log:" >&2
  tail -n 30 "$out/build.log" >&2
  exit "$status"
fi
kill "$server_pid" 2>/dev/null || true
server_pid=
t2=$(date +%s)
version=$(sed -nE 's/^__version__ = "([^"]+)"/\1/p' hmkd/__init__.py)
size=$(docker image inspect -f '{{.Size}}' "hmkd:$version")

user=${DOCKER_SMOKE_USER:-}
if [ -z "$user" ] && [ "$(id -u)" = 0 ]; then user=4242:4242; fi
make docker-smoke DOCKER_PY="$venv/bin/python" DOCKER_SMOKE_DIR="$out/smoke" \
  DOCKER_SMOKE_FLAGS="--gpus auto${user:+ --user $user}"
t3=$(date +%s)
docker image prune -f >/dev/null  # dangling images of earlier builds (vfs keeps full copies)
echo "docker-ci: base image $((t1 - t0)) s, build $((t2 - t1)) s, smoke $((t3 - t2)) s;" \
     "hmkd:$version is $((size / 1000000)) MB"
