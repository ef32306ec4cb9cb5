#!/usr/bin/env bash
# Create a venv with one of the two stacks plus the test pins.
#   legacy (default, the image's): Python 3.8, requirements/stack.txt (torch 1.11, mmcv-full 1.7.1) in .venv.
#     mmcv-full 1.7.1 has no CPU wheel on PyPI: it is compiled once from the source package (about 5 minutes on
#     2 cores) into a wheel cache outside the checkout, so later setups and CI on this machine reuse it.
#     requirements/legacy-test.txt adds the test-only oracles that need mmcv-full (mmsegmentation 0.30).
#   modern: Python 3.11, stack.txt with requirements/modern.txt's torch 2 instead of torch 1.11 and no mmcv-full;
#     requirements/modern-mmcv.txt adds mmcv 1.7.1 without ops (its FLOP counter, pure Python: 1 minute to build).
# Usage: tools/setup_env.sh [VENV_DIR]   (env: STACK=legacy|modern, PYTHON=/path/to/python, HMKD_WHEEL_CACHE=dir)
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${STACK:-legacy}
case "$stack" in
  legacy) version=3.8 ;;
  modern) version=3.11 ;;
  *) echo "setup: error: STACK must be legacy or modern, got '$stack'" >&2; exit 2 ;;
esac
venv=${1:-.venv}
wheels=${HMKD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmkd/wheels}

py=$(tools/find_python.sh "$version" || true)  # $PYTHON, pyenv's newest $version, python$version: each checked
if [ -z "$py" ]; then
  echo "setup: error: Python $version not found (the $stack stack's interpreter); install it (pyenv install" \
       "$version, or apt-get install python$version python$version-venv python$version-dev) or set" \
       "PYTHON=/path/to/python$version" >&2
  exit 1
fi

minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
if [ ! -x "$venv/bin/python" ] || [ "$(minor "$venv/bin/python")" != "$version" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# setuptools: below 75 to build mmcv-full (legacy); modern takes requirements/modern.txt's (torch 2 needs 77+).
"${pip[@]}" install -q "pip<25" wheel $([ "$stack" = legacy ] && echo "setuptools<75")

# The package itself, pip's consistency check (lines matching $1 are known and allowed), then an import of the
# stack's modules ($2...) with their versions: a venv that cannot import its stack is not ready.
install_and_check() {
  local allowed=$1; shift
  "${pip[@]}" install -q --no-deps -e .
  local broken
  broken=$("${pip[@]}" check | grep -vE "^No broken requirements${allowed:+|$allowed}" || true)
  if [ -n "$broken" ]; then echo "setup: error: inconsistent environment in $venv: $broken" >&2; exit 1; fi
  "$venv/bin/python" - "$stack" "$@" <<'PY'
import importlib, sys, warnings
warnings.simplefilter("ignore")
modules = [importlib.import_module(name) for name in sys.argv[2:]]
print("setup: python %d.%d venv ready (%s stack): %s" % (sys.version_info[0], sys.version_info[1], sys.argv[1],
      ", ".join("%s %s" % (m.__name__, m.__version__) for m in modules if hasattr(m, "__version__"))))
PY
}

if [ "$stack" = modern ]; then
  # The modern image's pins, resolved as its build resolves them (docker/image_pins.py, docker/stacks/modern.args).
  "$venv/bin/python" docker/image_pins.py --pins requirements/stack.txt --override requirements/modern.txt \
    --without "$(sed -nE 's/^WITHOUT=(.*)$/\1/p' docker/stacks/modern.args)" --out "$venv/pins" >/dev/null
  "${pip[@]}" install -q -r "$venv/pins/pins.txt" -r requirements/test.txt
  MMCV_WITH_OPS=0 "${pip[@]}" install -q --no-build-isolation -r requirements/modern-mmcv.txt
  install_and_check "" torch torchvision mmcv timm submitit cv2 yaml hmkd
  exit 0
fi

# Everything but mmcv-full first: its build imports torch, and its wheel records which OpenCV is installed.
grep -vE '^mmcv-full' requirements/stack.txt > "$venv/stack-without-mmcv.txt"
"${pip[@]}" install -q -r "$venv/stack-without-mmcv.txt" -r requirements/test.txt

mmcv_pin=$(grep -E '^mmcv-full==' requirements/stack.txt)
mmcv_version=${mmcv_pin#mmcv-full==}
mkdir -p "$wheels"
if ! ls "$wheels"/mmcv_full-"$mmcv_version"-cp38-*.whl >/dev/null 2>&1; then
  echo "setup: compiling $mmcv_pin from source into $wheels (once; about 5 minutes on 2 cores)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${pip[@]}" wheel -q --no-deps --no-build-isolation "$mmcv_pin" -w "$wheels"
fi
# --no-deps: its dependencies are pinned in stack.txt (and it would ask for opencv-python beside the headless one).
"${pip[@]}" install -q --no-deps --no-index --find-links "$wheels" "$mmcv_pin"
# The legacy stack's test-only oracles that need mmcv-full (mmsegmentation 0.30), after it so pip keeps that build.
"${pip[@]}" install -q -r requirements/legacy-test.txt
install_and_check '^mmcv-full [0-9.]+ requires opencv-python' \
  torch torchvision mmcv mmcv.ops timm submitit cv2 yaml hmkd
