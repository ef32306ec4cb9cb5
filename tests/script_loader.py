"""The repository's scripts (docker/*.py, tools/*.py) are files, not packages: tests load each by its path.

Usage: module = load_script(os.path.join("docker", "check_image.py"), "hmkd_test_check_image")
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relpath: str, name: str):
    """The module at ROOT/relpath, imported under ``name`` (kept out of sys.modules: no name of a script leaks, and
    no sys.path entry for docker/ or tools/ shadows a package such as the docker SDK)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
