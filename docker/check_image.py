"""Build-time check that the image's stack imports and matches its pins (a broken wheel fails the build, not a job).

Usage: python docker/check_image.py [--version HMKD_VERSION] [--pins requirements/stack.txt]
"""
import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from importlib import metadata

# distribution name in stack.txt -> module that must import
MODULES = {"torch": "torch", "torchvision": "torchvision", "mmcv-full": "mmcv", "timm": "timm", "submitit": "submitit",
           "PyYAML": "yaml", "opencv-python-headless": "cv2", "numpy": "numpy"}


def read_pins(path):
    pins = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
            if m:
                pins[m.group(1)] = m.group(2)
    return pins


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="", help="the hmkd version the image is labelled with")
    parser.add_argument("--pins", default=os.path.join(here, "..", "requirements", "stack.txt"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    pins = read_pins(args.pins)
    errors, found = [], []
    for dist, module in MODULES.items():
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # any import failure is a broken image
            errors.append("import %s: %s: %s" % (module, type(exc).__name__, exc))
            continue
        version = metadata.version(dist)  # the distribution's (cv2.__version__ drops opencv's 4th part)
        found.append("%s %s" % (module, version))
        if dist in pins and version.split("+")[0] != pins[dist]:
            errors.append("%s is %s, stack.txt pins %s" % (dist, version, pins[dist]))
    del mod
    try:
        import mmcv.ops  # noqa: F401  compiled ops (_ext) load against this torch
        found.append("mmcv.ops")
    except Exception as exc:
        errors.append("import mmcv.ops: %s: %s" % (type(exc).__name__, exc))
    import hmkd
    found.append("hmkd %s" % hmkd.__version__)
    if args.version and hmkd.__version__ != args.version:
        errors.append("hmkd is %s, the image is labelled %s" % (hmkd.__version__, args.version))
    if not shutil.which("hmkd"):
        errors.append("the hmkd console script is not on PATH")
    check = subprocess.run([sys.executable, "-m", "pip", "check"], stdout=subprocess.PIPE, universal_newlines=True)
    # mmcv-full's metadata asks for opencv-python; the headless build pinned in stack.txt provides cv2 (setup_env.sh).
    tolerated = re.compile(r"^(No broken|mmcv-full \S+ requires opencv-python)")
    broken = [line for line in check.stdout.splitlines() if line and not tolerated.match(line)]
    errors.extend("pip check: %s" % line for line in broken)
    import torch
    found.append("cuda build %s" % (torch.version.cuda or "none"))
    if errors:
        for e in errors:
            print("check_image: error: %s" % e, file=sys.stderr)
        return 1
    print("check_image: ok: %s" % ", ".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
