"""The host-only tools under tools/ are scripts, not a package; the fixtures here load each by its path, once per
session. (A sys.path entry for tools/ would make tools/docker/ shadow the docker SDK.)

Usage: def test_x(docker_smoke, bench_gpu): ...      (pytest tests/tools)
"""
import os

import pytest
from script_loader import load_script


@pytest.fixture(scope="session")
def docker_smoke():
    return load_script(os.path.join("tools", "docker", "smoke.py"), "hmkd_tools_docker_smoke")


@pytest.fixture(scope="session")
def bench_gpu():
    return load_script(os.path.join("tools", "bench_gpu.py"), "hmkd_tools_bench_gpu")
