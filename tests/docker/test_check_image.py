"""docker/check_image.py: the architectures torch was built for, and the build failing when a required one is missing.

Usage: pytest tests/docker/test_check_image.py     (in either venv: the last tests run the check on this stack)
"""
import os
import re
import subprocess
import sys
import types

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torch.cuda.get_arch_list() of PyTorch's own builds (their flags, read without a GPU)
CU113_ARCHES = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"]  # torch 1.11.0+cu113
CU102_ARCHES = ["sm_37", "sm_50", "sm_60", "sm_70"]  # torch 1.11.0 from PyPI (CI's legacy build)


def stack_args(stack):
    with open(os.path.join(ROOT, "docker", "stacks", stack + ".args")) as handle:
        return dict(re.findall(r"^([A-Z_]+)=(\S*)$", handle.read(), re.M))


def this_arches():
    return torch._C._cuda_getArchFlags().split() if torch.version.cuda else []


def test_parse_arches(check_image):
    assert check_image.parse_arches("sm_80,sm_90") == ["sm_80", "sm_90"]
    assert check_image.parse_arches(" sm_80, sm_86 ") == ["sm_80", "sm_86"]
    assert check_image.parse_arches("") == []
    with pytest.raises(ValueError, match="90, compute_90"):
        check_image.parse_arches("sm_80,90,compute_90")


def test_each_stack_requires_its_targets(check_image):
    """Legacy's cu113 wheels pass their own requirement and fail modern's (no sm_90); CI's PyPI build of torch 1.11
    has neither sm_80 nor sm_86, which is why CI drops legacy's requirement (tools/docker/ci.sh)."""
    legacy, modern = (check_image.parse_arches(stack_args(s)["REQUIRE_ARCH"]) for s in ("legacy", "modern"))
    assert legacy == ["sm_80", "sm_86"] and modern == ["sm_80", "sm_90"]
    assert check_image.arch_error("1.11.0+cu113", CU113_ARCHES, legacy) is None
    message = check_image.arch_error("1.11.0+cu113", CU113_ARCHES, modern)
    assert message == ("torch 1.11.0+cu113 has no kernels for sm_90 (it has sm_37 sm_50 sm_60 sm_70 sm_75 sm_80 sm_86; "
                       "--require-arch sm_80,sm_90): use a torch index whose wheels include it")
    assert "sm_80, sm_86" in check_image.arch_error("1.11.0+cu102", CU102_ARCHES, legacy)


def test_ptx_alone_does_not_count_and_cpu_builds_say_so(check_image):
    assert "sm_90" in check_image.arch_error("2.0.0", ["sm_80", "compute_90"], ["sm_90"])
    assert check_image.arch_error("2.0.0", [], []) is None
    message = check_image.arch_error("2.13.0+cpu", [], ["sm_80", "sm_90"])
    assert "CPU build" in message and "sm_80, sm_90 are required" in message and "\n" not in message


def test_compiled_arches_without_a_gpu(check_image):
    """torch 1.11's get_arch_list() is [] without a GPU (as in every docker build); the flags are read instead."""
    fake = types.SimpleNamespace(version=types.SimpleNamespace(cuda="11.3"),
                                 _C=types.SimpleNamespace(_cuda_getArchFlags=lambda: " ".join(CU113_ARCHES)),
                                 cuda=types.SimpleNamespace(get_arch_list=lambda: []))
    assert check_image.compiled_arches(fake) == CU113_ARCHES
    fake.version.cuda = None
    assert check_image.compiled_arches(fake) == []
    arches = check_image.compiled_arches(torch)  # this venv's torch: a CUDA build on both stacks here
    assert arches == this_arches() and bool(arches) == bool(torch.version.cuda)
    assert all(re.match(r"^(sm|compute)_\d+[a-z]?$", a) for a in arches), arches


def run_check(tmp_path, *args):
    """check_image.py as the image's last RUN runs it, on this venv (its bin/ on PATH for the hmkd script)."""
    stack = stack_args("legacy" if torch.__version__.startswith("1.") else "modern")
    subprocess.run([sys.executable, os.path.join(ROOT, "docker", "image_pins.py"), "--pins",
                    os.path.join(ROOT, stack["PINS"])] + (["--override", os.path.join(ROOT, stack["PINS_OVERRIDE"])]
                                                          if stack["PINS_OVERRIDE"] else [])
                   + ["--without", stack["WITHOUT"], "--out", str(tmp_path)], check=True, stdout=subprocess.DEVNULL)
    pins = str(tmp_path / "pins.txt")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([sys.executable, os.path.join(ROOT, "docker", "check_image.py"), "--pins", pins] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)


def test_check_passes_on_this_venv_and_prints_its_arches(tmp_path):
    arches = this_arches()
    result = run_check(tmp_path, "--require-arch", ",".join(a for a in arches if a.startswith("sm_")))
    assert result.returncode == 0, result.stderr
    assert "architectures: %s;" % (" ".join(arches) or "none") in result.stdout
    assert ("mmcv.ops" in result.stdout) == torch.__version__.startswith("1.")  # mmcv on legacy only


def test_check_fails_in_one_line_without_a_required_arch(tmp_path):
    present = [a for a in this_arches() if a.startswith("sm_")][-1:]
    result = run_check(tmp_path, "--require-arch", ",".join(present + ["sm_999"]))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("check_image: error:")]
    assert len(errors) == 1 and re.search(r"(no kernels for|but) sm_999 ", errors[0]), result.stderr
    bad = run_check(tmp_path, "--require-arch", "80")
    assert bad.returncode == 2 and "sm_<capability>" in bad.stderr
