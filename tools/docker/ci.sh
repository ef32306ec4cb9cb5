#!/usr/bin/env bash
# CI's real Docker check: starts a dockerd of its own, and for each stack makes a local base image (no registry is
# reachable), builds docker/Dockerfile with the stack's build arguments (docker/stacks/<stack>.args) and only the
# sources overridden (PyPI's wheels, the local base), runs `make docker-smoke` in the image (driven from the host by
# tools/docker/smoke.py, which the image does not hold), prints build time, image size and the smoke report, and
# stops the dockerd it started.
# Usage: tools/docker/ci.sh [STACK...]   (make docker-ci; default: legacy modern; needs `make setup` first: the venv
#        and, for legacy, the compiled mmcv-full wheel)
# env: VENV=.venv (the smoke driver's), HMKD_WHEEL_CACHE (mmcv-full wheel dir), HMKD_WHEEL_PORT=28765, PIP_INDEX (the
#      registry's simple index), DOCKER_SMOKE_USER (UID:GID of the smoke; 4242:4242 when run as root, so the
#      ownership check counts), HMKD_DOCKER_CI_RESOLVE_ONLY (stacks whose pins are only resolved, not built;
#      default: none on overlay2, "modern" where the engine runs on vfs).
set -euo pipefail
cd "$(dirname "$0")/../.."
stacks=("$@")
if [ ${#stacks[@]} = 0 ]; then stacks=(legacy modern); fi
venv=${VENV:-.venv}
wheels=${HMKD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmkd/wheels}
index=${PIP_INDEX:-https://pypi.org/simple}
out=runs/docker-ci
mkdir -p "$out"
export DOCKER_BUILDKIT=0  # the engine's own (legacy) builder: Debian's docker.io has no buildx
for stack in "${stacks[@]}"; do
  if [ ! -f "docker/stacks/$stack.args" ]; then
    echo "docker-ci: error: no docker/stacks/$stack.args (stacks: legacy, modern)" >&2; exit 2
  fi
done
arg() { sed -nE "s/^$2=(.*)\$/\\1/p" "docker/stacks/$1.args"; }  # a stack's build argument, as the Makefile reads it

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
for stack in "${stacks[@]}"; do
  if [ -n "$(arg "$stack" MMCV_FIND_LINKS)" ] && ! ls "$wheels/mmcv_full-${mmcv_pin#mmcv-full==}-cp38-"*.whl \
      >/dev/null 2>&1; then
    echo "docker-ci: error: no $mmcv_pin wheel in $wheels: run \`make setup\` first (it compiles one)" >&2
    exit 1
  fi
done

eval "$(tools/docker/dockerd.sh env)"
if ! docker version >/dev/null 2>&1; then
  tools/docker/dockerd.sh start
  started_dockerd=1
fi

# The wheel cache as a find-links page on loopback, as OpenMMLab's index is one (the build uses the host network).
# A fixed port keeps MMCV_FIND_LINKS, a build argument, the same between runs, so the stack layer's cache holds.
serve_wheels() {
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
}

# What CI changes, beside the base: PyPI's torch/torchvision in place of the CUDA index's (no local tag), and for
# legacy the local mmcv-full wheel. REQUIRE_ARCH: PyPI's torch 1.11.0 is the CUDA 10.2 build (sm_37 to sm_70), so
# legacy's sm_80,sm_86 cannot hold in CI and is dropped (the list is still printed); PyPI's torch 2.14.1 is a CUDA
# build with sm_80 and sm_90, so modern's requirement is checked in CI as in the real build.
ci_flags() {
  case $1 in
    legacy) echo "--build-arg MMCV_FIND_LINKS=http://127.0.0.1:$port/ --build-arg REQUIRE_ARCH=" ;;
    *) echo "" ;;
  esac
}

# On vfs the modern image costs about 20 minutes and 25 GB to build (every step after its 6 GB install copies the whole
# image; docker/README.md): there CI resolves its pins instead, with the stack's Python against the build's index, as
# one dry-run install of what the image's install steps install. The Dockerfile both stacks share is linted by
# `make test` (hadolint, tests/docker).
driver=$(docker info -f '{{.Driver}}')
resolve_only=${HMKD_DOCKER_CI_RESOLVE_ONLY-$([ "$driver" = vfs ] && echo modern || true)}
resolve_pins() {
  local stack=$1 python pins=$out/pins-$1 override
  python=$(tools/find_python.sh "$(arg "$stack" PYTHON | sed 's/^python//')") || {
    echo "docker-ci: error: no $(arg "$stack" PYTHON) to resolve the $stack pins with" >&2; return 1; }
  override=$(arg "$stack" PINS_OVERRIDE)
  "$python" docker/image_pins.py --pins "$(arg "$stack" PINS)" ${override:+--override "$override"} \
    --without "$(arg "$stack" WITHOUT)" --out "$pins" >/dev/null
  # Only the index: neither this machine's pip configuration nor its PIP_* variables (local wheel folders) count.
  PIP_CONFIG_FILE=/dev/null "$python" -m pip --isolated --disable-pip-version-check ${PIP_CERT:+--cert "$PIP_CERT"} \
    install --dry-run --ignore-installed --quiet --report "$pins/report.json" --index-url "$index" \
    -r "$pins/torch.txt" -r "$pins/rest.txt"
  "$python" -c 'import json, sys
names = dict((i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in json.load(open(sys.argv[1]))["install"])
print("%d packages, torch %s, torchvision %s" % (len(names), names["torch"], names["torchvision"]))' "$pins/report.json"
}

user=${DOCKER_SMOKE_USER:-}
if [ -z "$user" ] && [ "$(id -u)" = 0 ]; then user=4242:4242; fi
summary=()
for stack in "${stacks[@]}"; do
  if [[ " $resolve_only " == *" $stack "* ]]; then
    t0=$(date +%s)
    echo "docker-ci: $stack: not built on the $driver storage driver; resolving its pins on $index instead"
    resolved=$(resolve_pins "$stack")
    summary+=("docker-ci: $stack: image not built ($driver); its pins resolve on $index with $(arg "$stack" PYTHON):\
 $resolved ($(( $(date +%s) - t0 )) s, report: $out/pins-$stack/report.json)")
    continue
  fi
  python=$(arg "$stack" PYTHON)
  base=hmkd-ci-base:bookworm-py${python#python}
  t0=$(date +%s)
  tools/docker/make_base.sh "$base" "${python#python}"
  t1=$(date +%s)
  if [ -n "$(arg "$stack" MMCV_FIND_LINKS)" ]; then serve_wheels; fi
  log=$out/build-$stack.log
  echo "docker-ci: building docker/Dockerfile (STACK=$stack) on $base with PyPI's wheels (log: $log)"
  status=0
  make docker-build STACK="$stack" DOCKER_BUILD_FLAGS="--network host --force-rm --build-arg BASE_IMAGE=$base \
    --build-arg APT_PACKAGES= --build-arg PIP_INDEX_URL=$index --build-arg TORCH_INDEX_URL=$index \
    --build-arg TORCH_VARIANT= $(ci_flags "$stack")" >"$log" 2>&1 || status=$?
  grep -E '^(Step [0-9]+/[0-9]+ : [A-Z]+|check_image|image_pins|Successfully tagged)' "$log" | cut -c1-160 || true
  if [ "$status" != 0 ]; then
    echo "docker-ci: error: the $stack build failed ($status); the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit "$status"
  fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; server_pid=; fi
  t2=$(date +%s)
  image=$(make -s --no-print-directory --eval 'ci-image: ; @echo $(IMAGE):$(IMAGE_TAG)' ci-image STACK="$stack")
  size=$(docker image inspect -f '{{.Size}}' "$image")
  make docker-smoke STACK="$stack" DOCKER_PY="$venv/bin/python" DOCKER_SMOKE_DIR="$out/smoke-$stack" \
    DOCKER_SMOKE_FLAGS="--gpus auto${user:+ --user $user}"
  t3=$(date +%s)
  docker image prune -f >/dev/null  # dangling images of earlier builds (vfs keeps full copies)
  summary+=("docker-ci: $stack: base image $((t1 - t0)) s, build $((t2 - t1)) s, smoke $((t3 - t2)) s; $image is \
$((size / 1000000)) MB")
done
printf '%s\n' "${summary[@]}"
