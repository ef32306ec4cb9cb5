"""The host-only tools under tools/ are scripts, not a package; the fixtures here load each by its path, once per
session. (A sys.path entry for tools/ would make tools/docker/ shadow the docker SDK.)

Usage: def test_x(docker_smoke, bench_gpu): ...      (pytest tests/tools)
"""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_tool(relpath: str, name: str):
    """The module at ROOT/relpath, imported under ``name`` (kept out of sys.modules: no name of a tool leaks)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def docker_smoke():
    return load_tool(os.path.join("tools", "docker", "smoke.py"), "hmkd_tools_docker_smoke")


@pytest.fixture(scope="session")
def bench_gpu():
    return load_tool(os.path.join("tools", "bench_gpu.py"), "hmkd_tools_bench_gpu")
