#!/usr/bin/env bash
# Create .venv with Python 3.8 and install the image's stack (requirements/stack.txt) plus test pins.
# mmcv-full 1.7.1 has no CPU wheel on PyPI: it is compiled once from the source package (about 5 minutes on
# 2 cores) into a wheel cache outside the checkout, so later setups and CI on this machine reuse it.
# Usage: tools/setup_env.sh [VENV_DIR]        (env: PYTHON=/path/to/python3.8, HMKD_WHEEL_CACHE=dir)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
wheels=${HMKD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmkd/wheels}

py=$(tools/find_python38.sh || true)  # $PYTHON, pyenv's newest 3.8, python3.8: checked to be a 3.8 there
if [ -z "$py" ]; then
  echo "setup: error: Python 3.8 not found (the image's interpreter); install it (pyenv install 3.8.18, or" \
       "apt-get install python3.8 python3.8-venv python3.8-dev) or set PYTHON=/path/to/python3.8" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "pip<25" "setuptools<75" wheel

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
"${pip[@]}" install -q --no-deps -e .
broken=$("${pip[@]}" check | grep -vE '^No broken requirements|^mmcv-full [0-9.]+ requires opencv-python' || true)
if [ -n "$broken" ]; then echo "setup: error: inconsistent environment in $venv: $broken" >&2; exit 1; fi
"$venv/bin/python" - <<'PY'
import warnings
warnings.simplefilter("ignore")
import torch, torchvision, mmcv, mmcv.ops, timm, submitit, cv2, yaml, hmkd
print("setup: python 3.8 venv ready: torch %s, torchvision %s, mmcv-full %s, timm %s, hmkd %s"
      % (torch.__version__, torchvision.__version__, mmcv.__version__, timm.__version__, hmkd.__version__))
PY
