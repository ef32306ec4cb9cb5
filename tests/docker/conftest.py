"""The image's build-time scripts (docker/image_pins.py, docker/check_image.py) are files, not a package; the
fixtures here load each by its path, once per session (a sys.path entry for docker/ would leak their names).

Usage: def test_x(image_pins, check_image): ...      (pytest tests/docker)
"""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_script(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def image_pins():
    return load_script(os.path.join("docker", "image_pins.py"), "hmkd_test_image_pins")


@pytest.fixture(scope="session")
def check_image():
    return load_script(os.path.join("docker", "check_image.py"), "hmkd_test_check_image")
