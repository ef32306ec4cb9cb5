"""Build-time check that the image's stack imports, matches its pins and has kernels for the GPUs it is built for.

Usage: python docker/check_image.py [--pins PINS] [--version HMKD_VERSION] [--require-arch sm_80,sm_90]

A broken wheel, a pin pip did not honour, or a torch without the required architectures fails the build, not a job.
PINS is the stack's resolved pins file (docker/image_pins.py writes /opt/venv/pins/pins.txt in the image; default
requirements/stack.txt): mmcv-full and its compiled ops are required where the stack pins mmcv-full (legacy), and
not looked for where it does not (modern). The CUDA architectures torch was compiled for are printed on every build;
each one --require-arch names must be among them (an empty value requires none: CI's builds with PyPI's wheels).
"""
import argparse
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import warnings
from importlib import metadata
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_image_pins():
    """docker/image_pins.py beside this file (the image's /opt/hmkd/docker, or the checkout's), loaded by its path:
    the docker/ folder is no package, and a sys.path entry would leak its module names."""
    spec = importlib.util.spec_from_file_location("hmkd_docker_image_pins", os.path.join(HERE, "image_pins.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_pins = _load_image_pins()

# distribution (normalized, as in the pins) -> module that must import; mmcv-full only where the stack pins it
# (tensorboard.program: the server `tensorboard --logdir` runs, which needs six; the package alone imports without it)
MODULES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "submitit": "submitit", "pyyaml": "yaml",
           "opencv-python-headless": "cv2", "numpy": "numpy", "tensorboard": "tensorboard.program", "six": "six",
           "onnx": "onnx", "onnxruntime": "onnxruntime"}
# mmcv-full's metadata asks for opencv-python; the headless build in the pins provides cv2 (setup_env.sh too).
PIP_CHECK_TOLERATED = re.compile(r"^(No broken|mmcv-full \S+ requires opencv-python)")


def parse_arches(text: str) -> List[str]:
    """``sm_80,sm_90`` -> ['sm_80', 'sm_90']; empty -> []. Anything but sm_<digits> is a ValueError."""
    arches = [a.strip() for a in re.split(r"[,\s]+", text or "") if a.strip()]
    bad = [a for a in arches if not re.match(r"^sm_\d+[a-z]?$", a)]
    if bad:
        raise ValueError("--require-arch takes sm_<capability> names such as sm_80,sm_90; got %s" % ", ".join(bad))
    return arches


def compiled_arches(torch) -> List[str]:
    """The architectures torch's CUDA kernels were compiled for; [] for a CPU build.

    This is torch.cuda.get_arch_list(), read from the flags it returns: torch 1.11's get_arch_list() answers []
    whenever no GPU is visible, as in every `docker build`, while torch 2's reads the same flags without a GPU.
    """
    if not torch.version.cuda:
        return []
    flags = getattr(torch._C, "_cuda_getArchFlags", None)
    text = flags() if flags else None
    return text.split() if text else list(torch.cuda.get_arch_list())


def arch_error(torch_version: str, compiled: Sequence[str], required: Sequence[str]) -> Optional[str]:
    """One line saying which required architectures the build lacks, or None. A kernel image counts (sm_90), not
    PTX (compute_90): the requirement is that the GPU runs without JIT compilation at start-up."""
    missing = [arch for arch in required if arch not in compiled]
    if not missing:
        return None
    if not compiled:
        return ("torch %s is a CPU build (no CUDA kernels), but %s %s required: install a CUDA build of torch"
                % (torch_version, ", ".join(missing), "is" if len(missing) == 1 else "are"))
    return ("torch %s has no kernels for %s (it has %s; --require-arch %s): use a torch index whose wheels include "
            "%s" % (torch_version, ", ".join(missing), " ".join(compiled), ",".join(required),
                    "it" if len(missing) == 1 else "them"))


def check_stack(pins: Dict[str, str]) -> Tuple[List[str], List[str]]:
    """(found, errors): each module imports and its distribution's version is the pinned one."""
    found, errors = [], []
    modules = dict(MODULES)
    if image_pins.MMCV_NAME in pins:
        modules[image_pins.MMCV_NAME] = "mmcv"
    for dist, module in modules.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import failure is a broken image
            errors.append("import %s: %s: %s" % (module, type(exc).__name__, exc))
            continue
        version = metadata.version(dist)  # the distribution's (cv2.__version__ drops opencv's 4th part)
        found.append("%s %s" % (module, version))
        if dist in pins and version.split("+")[0] != pins[dist]:
            errors.append("%s is %s, the pins say %s" % (dist, version, pins[dist]))
    if image_pins.MMCV_NAME in pins:
        try:
            import mmcv.ops  # noqa: F401  compiled ops (_ext) load against this torch
            found.append("mmcv.ops")
        except Exception as exc:
            errors.append("import mmcv.ops: %s: %s" % (type(exc).__name__, exc))
    return found, errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="", help="the hmkd version the image is labelled with")
    parser.add_argument("--pins", default=os.path.join(HERE, "..", "requirements", "stack.txt"))
    parser.add_argument("--require-arch", default="",
                        help="comma-separated sm_XY the torch build must have kernels for (empty: none)")
    args = parser.parse_args(argv)
    try:
        required = parse_arches(args.require_arch)
        pins = image_pins.exact_pins(args.pins)
    except (ValueError, FileNotFoundError) as exc:
        print("check_image: error: %s" % exc, file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    found, errors = check_stack(pins)
    try:
        import hmkd
        found.append("hmkd %s" % hmkd.__version__)
        if args.version and hmkd.__version__ != args.version:
            errors.append("hmkd is %s, the image is labelled %s" % (hmkd.__version__, args.version))
    except Exception as exc:
        errors.append("import hmkd: %s: %s" % (type(exc).__name__, exc))
    if not shutil.which("hmkd"):
        errors.append("the hmkd console script is not on PATH")
    check = subprocess.run([sys.executable, "-m", "pip", "check"], stdout=subprocess.PIPE, universal_newlines=True)
    broken = [line for line in check.stdout.splitlines() if line and not PIP_CHECK_TOLERATED.match(line)]
    errors.extend("pip check: %s" % line for line in broken)
    try:
        import torch
    except Exception:  # reported above as a failed import
        torch = None
    if torch is not None:
        arches = compiled_arches(torch)
        print("check_image: torch %s, CUDA %s, architectures: %s%s" % (
            torch.__version__, torch.version.cuda or "none (CPU build)", " ".join(arches) or "none",
            "; required: %s" % ",".join(required) if required else "; none required"))
        problem = arch_error(torch.__version__, arches, required)
        if problem:
            errors.append(problem)
    if errors:
        for e in errors:
            print("check_image: error: %s" % e, file=sys.stderr)
        return 1
    print("check_image: ok: %s" % ", ".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
