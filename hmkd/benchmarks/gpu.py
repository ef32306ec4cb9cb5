"""bench-gpu: set up the project's pinned stack on a bare GPU machine, then run the GPU benchmarks in one go.

Usage: python3 -m hmkd.benchmarks.gpu [--venv build/venv-gpu --out results --torch-index-url URL]   (any python3 >= 3.6)
       python3 -m hmkd.benchmarks.gpu --smoke --out /tmp/r   (CPU dry run of the run phase at tiny sizes)

The figures users compare codebases by are GPU-hours, so the GPU run must be repeatable by anyone with one command.
Setup phase (standard library only, so a bare machine's python3 can run it): find Python 3.8 ($PYTHON, python3.8,
a pyenv 3.8, else a conda env or uv's managed 3.8 created under the venv's folder), create the venv, install
torch/torchvision with the +cu113 tag from PyTorch's cu113 index and the rest of requirements/stack.txt except
mmcv-full (no benchmark imports it), then check that the GPU is one these wheels have kernels for. A stamp of the
pins skips the install on a rerun. Run phase (inside the venv): the headline distillation step (SegFormer-B4 ->
DeepLabV3-R18, 512x1024 crops, batch 8) in fp32 and AMP, HFA's context memory on CUDA, evaluation at 1024x2048,
fp32/AMP/channels-last step ratios, the data loader against the step's demand, then the table.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "requirements", "stack.txt")
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


def find_python38(base: str, uv_spec: str) -> str:
    """An existing 3.8 first; else one created under ``base`` with conda, else with uv (from PyPI) and its managed
    Python builds. Raises SetupError listing the ways to provide one."""
    if os.environ.get("PYTHON"):
        if not _is_py38(os.environ["PYTHON"]):
            raise SetupError("PYTHON=%s is not a Python 3.8 interpreter" % os.environ["PYTHON"])
        return os.environ["PYTHON"]
    candidates = [shutil.which("python3.8") or ""]
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], stdout=subprocess.PIPE,
                                  universal_newlines=True).stdout.split()
        for version in sorted((v for v in versions if v == "3.8" or v.startswith("3.8.")), reverse=True):
            candidates.append(os.path.join(subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                                                          universal_newlines=True).stdout.strip(),
                                           "versions", version, "bin", "python"))
    for python in candidates:
        if python and _is_py38(python):
            return python
    conda = shutil.which("mamba") or shutil.which("conda")
    if conda:
        prefix = os.path.join(base, "python38")
        python = os.path.join(prefix, "bin", "python")
        if not _is_py38(python):
            _run([conda, "create", "-y", "-q", "-p", prefix, "python=3.8"], "creating a Python 3.8 conda env")
        return python
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
if not torch.cuda.is_available():
    sys.exit("bench-gpu: error: torch %s sees no CUDA device (driver missing, or no GPU visible)" % torch.__version__)
major, minor = torch.cuda.get_device_capability(0)
arches = torch.cuda.get_arch_list()
ptx = [a for a in arches if a.startswith("compute_") and int(a[8:]) <= major * 10 + minor]
if "sm_%d%d" % (major, minor) not in arches and not ptx:
    sys.exit("bench-gpu: error: %s is sm_%d%d but torch %s was built for %s only; the project's pins cannot run "
             "on this GPU" % (torch.cuda.get_device_name(0), major, minor, torch.__version__, ", ".join(arches)))
torch.ones(1, device="cuda").add_(1)
torch.cuda.synchronize()
print("bench-gpu: %s (sm_%d%d), torch %s, CUDA %s" % (torch.cuda.get_device_name(0), major, minor,
                                                       torch.__version__, torch.version.cuda))
"""


def check_gpu(python: str) -> None:
    if subprocess.call([python, "-c", _CHECK], cwd=ROOT) != 0:
        raise SetupError("the GPU check failed (message above)")


def run_benchmarks(out: str, smoke: bool) -> None:
    """Inside the venv: every GPU figure into ``out``, then the table. ``smoke`` runs the same calls on the CPU at
    tiny sizes, to check the wiring on a machine without a GPU."""
    import sys as _sys
    import torch

    from hmkd.benchmarks import context_memory, data_pipeline, distill_step, eval_throughput, step_formats, table

    if not smoke and not torch.cuda.is_available():
        raise SetupError("no CUDA device visible to torch %s" % torch.__version__)
    common = ["--out", out, "--device", "cpu" if smoke else "cuda"]
    if smoke:
        step = ["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "64x128", "--batch", "2",
                "--reps", "2"]
        context = ["--hw", "32x64", "--channels", "64", "--chunk", "256", "--reps", "1"]
        evaluation = ["--size", "64x128", "--crop", "64x64", "--stride", "48x48", "--reps", "2",
                      "--models", "deeplabv3_tiny,segformer_tiny"]
        formats = ["--size", "64x128", "--batch", "2", "--reps", "2", "--models", "deeplabv3_tiny,segformer_tiny",
                   "--name", "step_formats_smoke"]
        data = ["--workers", "1,2", "--samples-per-scale", "1", "--reps", "1", "--loader-reps", "1"]
    else:  # the headline pair at the paper's shape; evaluation at full Cityscapes resolution
        step = ["--teacher", "segformer_b4", "--student", "deeplabv3_r18", "--size", "512x1024", "--batch", "8",
                "--reps", "10"]
        context = []
        evaluation = ["--size", "1024x2048", "--crop", "512x1024", "--stride", "341x682", "--reps", "10"]
        formats = ["--size", "512x1024", "--batch", "8", "--reps", "10"]
        data = ["--workers", ",".join(str(n) for n in (1, 2, 4, 8) if n <= (os.cpu_count() or 1))]
    distill_step.main(common + step + ["--name", "distill_step_gpu_fp32"])
    distill_step.main(common + step + ["--name", "distill_step_gpu_amp", "--amp"])
    context_memory.main(common + context)
    eval_throughput.main(common + evaluation + ["--batch-windows", "1,4"])
    step_formats.main(common + formats)
    data_pipeline.main(["--out", out] + data)  # after the steps: it compares the loader with their demand
    assert not any(m == "mmcv" or m.startswith("mmcv.") for m in _sys.modules), "a benchmark imported mmcv"
    table.main([out])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=os.environ.get("BENCH_GPU_VENV", "build/venv-gpu"))
    parser.add_argument("--out", default="results")
    parser.add_argument("--torch-index-url", default=os.environ.get("TORCH_INDEX_URL", DEFAULT_INDEX))
    parser.add_argument("--cuda-tag", default="cu113", help="local version tag of the torch/torchvision wheels")
    parser.add_argument("--uv", default="uv<1", help="pip spec of uv, used only when no Python 3.8 is found")
    parser.add_argument("--setup-only", action="store_true", help="set up the venv and check the GPU, run nothing")
    parser.add_argument("--run", action="store_true", help="(inside the venv) run the benchmarks")
    parser.add_argument("--smoke", action="store_true", help="run phase on the CPU at tiny sizes, in this Python")
    args = parser.parse_args(argv)
    args.venv, args.out = os.path.abspath(args.venv), os.path.abspath(args.out)  # the run phase starts in ROOT
    try:
        if args.run or args.smoke:
            run_benchmarks(args.out, args.smoke)
            return 0
        python = setup(args.venv, args.torch_index_url, args.cuda_tag, args.uv)
        check_gpu(python)
        if args.setup_only:
            return 0
        log("running the benchmarks in %s; results in %s/" % (args.venv, args.out))
        return subprocess.call([python, "-m", "hmkd.benchmarks.gpu", "--run", "--out", args.out], cwd=ROOT)
    except SetupError as exc:
        print("bench-gpu: error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
