"""tools/bench_gpu.py, bench-gpu's setup phase: the pins it installs (CUDA tag, no mmcv), and the Python 3.8 search
it shares with tools/setup_env.sh (tools/find_python.sh) before its own conda/uv fallbacks. No GPU, no network.

Usage: pytest tests/tools/test_bench_gpu.py
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIND = os.path.join(ROOT, "tools", "find_python.sh")
PY38 = sys.version_info[:2] == (3, 8)


def test_pins_get_the_cuda_tag_and_skip_mmcv(bench_gpu):
    pins = bench_gpu.pinned_requirements("cu113")
    names = {p.split("==")[0].lower(): p for p in pins}
    assert names["torch"] == "torch==1.11.0+cu113" and names["torchvision"] == "torchvision==0.12.0+cu113"
    assert "mmcv-full" not in names


def test_a_wrong_python_is_refused_with_the_fix(bench_gpu, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHON", "/bin/true-not-python")
    with pytest.raises(bench_gpu.SetupError, match="PYTHON=/bin/true-not-python is not a Python 3.8"):
        bench_gpu.find_python38(str(tmp_path), "uv<1")


def _bin(tmp_path, python38=None):
    """A PATH holding only what the search runs: bash's tools, a pyenv that knows no version, and maybe python3.8."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("bash", "grep", "sort", "tail"):
        os.symlink(subprocess.check_output(["bash", "-c", "command -v " + tool], universal_newlines=True).strip(),
                   str(path / tool))
    (path / "pyenv").write_text("#!/bin/sh\nexit 0\n")
    (path / "pyenv").chmod(0o755)
    if python38:
        os.symlink(python38, str(path / "python3.8"))
    return str(path)


def _find(env):
    return subprocess.run(["bash", FIND], stdout=subprocess.PIPE, universal_newlines=True, env=env, timeout=60)


@pytest.mark.skipif(not PY38, reason="needs a Python 3.8 to find (the project venv's)")
def test_the_shared_search_checks_each_candidate(tmp_path):
    env = {"PATH": _bin(tmp_path, sys.executable)}
    assert _find(env).stdout.strip() == str(tmp_path / "bin" / "python3.8")
    assert _find(dict(env, PYTHON=sys.executable)).stdout.strip() == sys.executable
    wrong = _find(dict(env, PYTHON="/bin/true"))  # exits 0 to anything: the version must be printed, not assumed
    assert wrong.returncode == 2 and wrong.stdout == ""


def test_the_shared_search_finds_nothing_without_a_python38(tmp_path):
    found = _find({"PATH": _bin(tmp_path)})
    assert found.returncode == 1 and found.stdout == ""


@pytest.mark.skipif(not PY38, reason="needs a Python 3.8 to find (the project venv's)")
def test_bootstrap_takes_the_shared_answer(bench_gpu, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHON", raising=False)
    monkeypatch.setenv("PATH", _bin(tmp_path, sys.executable))
    assert bench_gpu.find_python38(str(tmp_path / "base"), "uv<1") == str(tmp_path / "bin" / "python3.8")


@pytest.mark.skipif(not PY38, reason="the fake conda links the running Python 3.8 into its env")
def test_bootstrap_falls_back_to_conda_after_the_shared_search(bench_gpu, tmp_path, monkeypatch):
    path = _bin(tmp_path)
    conda = os.path.join(path, "conda")
    with open(conda, "w") as handle:  # conda create -y -q -p PREFIX python=3.8
        handle.write('#!%s\n%s -p "$5/bin" && %s -s %s "$5/bin/python"\n'
                     % (shutil.which("bash"), shutil.which("mkdir"), shutil.which("ln"), sys.executable))
    os.chmod(conda, 0o755)
    monkeypatch.delenv("PYTHON", raising=False)
    monkeypatch.setenv("PATH", path)
    base = tmp_path / "base"
    assert bench_gpu.find_python38(str(base), "uv<1") == str(base / "python38" / "bin" / "python")


def test_setup_env_uses_the_shared_search():
    """One implementation: setup_env.sh calls tools/find_python.sh and has no search of its own."""
    with open(os.path.join(ROOT, "tools", "setup_env.sh")) as handle:
        text = handle.read()
    assert "tools/find_python.sh" in text
    assert "find_python38()" not in text and "pyenv versions" not in text and "command -v python3.8" not in text


def test_help_runs_with_the_standard_library_only(tmp_path):
    """-S -E: no site-packages, no PYTHON* variables; the tool must still parse its options (any python3 >= 3.6)."""
    done = subprocess.run([sys.executable, "-S", "-E", os.path.join(ROOT, "tools", "bench_gpu.py"), "--help"],
                          stdout=subprocess.PIPE, universal_newlines=True, cwd=str(tmp_path), timeout=60)
    assert done.returncode == 0 and "--setup-only" in done.stdout and "--torch-index-url" in done.stdout


def test_gpu_check_refuses_a_gpu_without_kernels_by_the_trainers_rule(bench_gpu, monkeypatch):
    """The check the setup phase runs in its venv, with CUDA emulated: an H200 against torch 1.11+cu113's list."""
    import pytest
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80",
                                                               "sm_86"])
    with pytest.raises(SystemExit) as stop:
        exec(bench_gpu._CHECK, {})
    assert str(stop.value).startswith("bench-gpu: error: NVIDIA H200 (GPU 0) has compute capability 9.0 (sm_90)")
