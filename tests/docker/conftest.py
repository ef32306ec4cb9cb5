"""The image's build-time scripts (docker/image_pins.py, docker/check_image.py) are files, not a package; the
fixtures here load each by its path, once per session (a sys.path entry for docker/ would leak their names).

Usage: def test_x(image_pins, check_image): ...      (pytest tests/docker)
"""
import os

import pytest
from script_loader import load_script


@pytest.fixture(scope="session")
def image_pins():
    return load_script(os.path.join("docker", "image_pins.py"), "hmkd_test_image_pins")


@pytest.fixture(scope="session")
def check_image():
    return load_script(os.path.join("docker", "check_image.py"), "hmkd_test_check_image")
