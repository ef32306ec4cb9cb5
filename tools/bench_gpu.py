"""bench-gpu: set up the project's pinned stack on a bare GPU machine, then run the GPU benchmarks in one go.

Usage: python3 tools/bench_gpu.py [--venv build/venv-gpu --out results --torch-index-url URL]   (any python3 >= 3.6)
       python3 tools/bench_gpu.py --setup-only        (the venv and the GPU check, no benchmark)
       python3 tools/bench_gpu.py --smoke --out /tmp/r (in a project venv: the run phase on the CPU at tiny sizes)

The figures users compare codebases by are GPU-hours, so the GPU run must be repeatable by anyone with one command.
This is the setup phase, a host-only tool outside the runtime package: standard library only, so a bare machine's
python3 can run it. It finds Python 3.8 (tools/find_python.sh, the search `make setup` uses too: $PYTHON, pyenv's
newest 3.8, python3.8; else a conda env or uv's managed 3.8 created under the venv's folder), creates the venv,
installs torch/torchvision with the +cu113 tag from PyTorch's cu113 index and the rest of requirements/stack.txt
except mmcv-full (no benchmark imports it), then checks that the GPU is one these wheels have kernels for. A stamp
of the pins skips the install on a rerun. The run phase, the benchmarks themselves, is hmkd/benchmarks/gpu.py,
started inside the venv.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "requirements", "stack.txt")
FIND_PYTHON = os.path.join(ROOT, "tools", "find_python.sh")
RUN_PHASE = "hmkd.benchmarks.gpu"  # the benchmarks, run with the venv's python
DEFAULT_INDEX = "https://download.pytorch.org/whl/cu113"
SKIPPED = ("mmcv-full",)  # compiled CUDA ops the benchmarks never import; building it needs nvcc


class SetupError(RuntimeError):
    """A setup step that cannot go on; the message says what to install or set."""


def log(message: str) -> None:
    print("bench-gpu: " + message, flush=True)


def _run(cmd, what: str, **kwargs) -> None:
    log("$ " + " ".join(cmd))
    if subprocess.call(cmd, **kwargs) != 0:
        raise SetupError("%s failed (command above)" % what)


def _is_py38(python: str) -> bool:
    try:
        return subprocess.call([python, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False


def shared_python38() -> str:
    """tools/find_python.sh's answer ('' when it finds none). Raises SetupError for a $PYTHON that is no 3.8."""
    try:
        found = subprocess.run(["bash", FIND_PYTHON, "3.8"], stdout=subprocess.PIPE, universal_newlines=True)
    except OSError as exc:
        raise SetupError("cannot run %s (%s): bash is needed" % (FIND_PYTHON, exc.strerror))
    if found.returncode == 2:
        raise SetupError("PYTHON=%s is not a Python 3.8 interpreter" % os.environ.get("PYTHON", ""))
    return found.stdout.strip() if found.returncode == 0 else ""  # the script ran each candidate to check it


def conda_python38(conda: str, base: str) -> str:
    prefix = os.path.join(base, "python38")
    python = os.path.join(prefix, "bin", "python")
    if not _is_py38(python):
        _run([conda, "create", "-y", "-q", "-p", prefix, "python=3.8"], "creating a Python 3.8 conda env")
    return python


def uv_python38(base: str, uv_spec: str) -> str:
    """uv (from PyPI, in a venv of its own under ``base``) and its managed Python 3.8 build."""
    uv_home = os.path.join(base, "uv")
    uv = os.path.join(uv_home, "bin", "uv")
    if not os.path.exists(uv):
        _run([sys.executable, "-m", "venv", uv_home], "creating a venv for uv")
        _run([os.path.join(uv_home, "bin", "python"), "-m", "pip", "install", "-q", uv_spec], "installing " + uv_spec)
    env = dict(os.environ, UV_PYTHON_INSTALL_DIR=os.path.join(base, "uv-python"))
    _run([uv, "python", "install", "3.8"], "uv python install 3.8", env=env)
    found = subprocess.run([uv, "python", "find", "3.8"], stdout=subprocess.PIPE, universal_newlines=True, env=env)
    python = found.stdout.strip()
    if found.returncode != 0 or not _is_py38(python):
        raise SetupError("no Python 3.8 found: set PYTHON=/path/to/python3.8, or install python3.8 (apt-get install "
                         "python3.8 python3.8-venv; pyenv install 3.8.18; conda), then rerun")
    return python


def find_python38(base: str, uv_spec: str) -> str:
    """An existing 3.8 first (the shared search); else one created under ``base`` with conda, else with uv.
    Raises SetupError listing the ways to provide one."""
    python = shared_python38()
    if python:
        return python
    conda = shutil.which("mamba") or shutil.which("conda")
    return conda_python38(conda, base) if conda else uv_python38(base, uv_spec)


def pinned_requirements(cuda_tag: str):
    """stack.txt's pins with torch/torchvision given the CUDA local tag, and without the skipped packages."""
    if not os.path.isfile(STACK):
        raise SetupError("%s not found; run from a checkout of the project" % STACK)
    pins = []
    with open(STACK) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name = line.split("==", 1)[0].strip().lower()
            if name in SKIPPED:
                continue
            if name in ("torch", "torchvision"):
                if "==" not in line or "+" in line:
                    raise SetupError("%s: expected an exact '%s==X.Y.Z' pin, got %r" % (STACK, name, line))
                line = "%s+%s" % (line, cuda_tag)
            pins.append(line)
    return pins


def setup(venv: str, index_url: str, cuda_tag: str, uv_spec: str) -> str:
    """Creates or reuses ``venv``; returns its python. Idempotent: a stamp of the pins and index skips pip."""
    pins = pinned_requirements(cuda_tag)
    stamp_text = "\n".join(pins + [index_url]) + "\n"
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "bench-gpu.stamp")
    if os.path.exists(stamp) and _is_py38(python):
        with open(stamp) as handle:
            if handle.read() == stamp_text:
                log("%s is up to date (%s)" % (venv, hashlib.sha1(stamp_text.encode()).hexdigest()[:10]))
                return python
    base = os.path.abspath(venv) + "-tools"
    os.makedirs(base, exist_ok=True)
    if not _is_py38(python):
        py38 = find_python38(base, uv_spec)
        log("using Python 3.8 at %s" % py38)
        if os.path.exists(venv):
            shutil.rmtree(venv)
        _run([py38, "-m", "venv", venv], "creating the venv " + venv)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    _run(pip + ["install", "-q", "pip<25", "setuptools<75", "wheel"], "upgrading pip in " + venv)
    requirements = os.path.join(venv, "bench-gpu-requirements.txt")
    with open(requirements, "w") as handle:
        handle.write("\n".join(pins) + "\n")
    try:
        _run(pip + ["install", "-q", "--extra-index-url", index_url, "-r", requirements], "pip install")
    except SetupError:
        raise SetupError("installing %s failed; torch/torchvision +%s come from %s (set --torch-index-url or "
                         "TORCH_INDEX_URL to a mirror of it), the rest from PyPI" % (requirements, cuda_tag, index_url))
    with open(stamp, "w") as handle:
        handle.write(stamp_text)
    return python


_CHECK = """
import sys, torch
from hmkd.engine.distributed import check_gpu_kernels   # the trainer's own rule (SASS and PTX compatibility)
if not torch.cuda.is_available():
    sys.exit("bench-gpu: error: torch %s sees no CUDA device (driver missing, or no GPU visible)" % torch.__version__)
try:
    check_gpu_kernels(0)
except ValueError as exc:
    sys.exit("bench-gpu: error: %s" % exc)
major, minor = torch.cuda.get_device_capability(0)
torch.ones(1, device="cuda").add_(1)
torch.cuda.synchronize()
print("bench-gpu: %s (sm_%d%d), torch %s, CUDA %s" % (torch.cuda.get_device_name(0), major, minor,
                                                       torch.__version__, torch.version.cuda))
"""


def check_gpu(python: str) -> None:
    if subprocess.call([python, "-c", _CHECK], cwd=ROOT) != 0:
        raise SetupError("the GPU check failed (message above)")


def run_phase(python: str, out: str, smoke: bool = False) -> int:
    """The benchmarks in ``python`` (the venv's, or this one for --run/--smoke), started in the checkout."""
    return subprocess.call([python, "-m", RUN_PHASE, "--out", out] + (["--smoke"] if smoke else []), cwd=ROOT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=os.environ.get("BENCH_GPU_VENV", "build/venv-gpu"))
    parser.add_argument("--out", default="results")
    parser.add_argument("--torch-index-url", default=os.environ.get("TORCH_INDEX_URL", DEFAULT_INDEX))
    parser.add_argument("--cuda-tag", default="cu113", help="local version tag of the torch/torchvision wheels")
    parser.add_argument("--uv", default="uv<1", help="pip spec of uv, used only when no Python 3.8 is found")
    parser.add_argument("--setup-only", action="store_true", help="set up the venv and check the GPU, run nothing")
    parser.add_argument("--run", action="store_true", help="(inside the venv) run the benchmarks in this Python")
    parser.add_argument("--smoke", action="store_true", help="run phase on the CPU at tiny sizes, in this Python")
    args = parser.parse_args(argv)
    args.venv, args.out = os.path.abspath(args.venv), os.path.abspath(args.out)  # the run phase starts in ROOT
    try:
        if args.run or args.smoke:
            return run_phase(sys.executable, args.out, args.smoke)
        python = setup(args.venv, args.torch_index_url, args.cuda_tag, args.uv)
        check_gpu(python)
        if args.setup_only:
            return 0
        log("running the benchmarks in %s; results in %s/" % (args.venv, args.out))
        return run_phase(python, args.out)
    except SetupError as exc:
        print("bench-gpu: error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
