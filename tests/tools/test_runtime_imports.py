"""The runtime package (what the image ships) imports neither the docker SDK nor anything of tools/: host-only
tools live under tools/ and may import hmkd, never the other way round. Read with ast, nothing is imported.

Usage: pytest tests/tools/test_runtime_imports.py
"""
import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN = ("docker", "tools")  # the docker SDK (a test pin, not in the image); the host-only tools
_DYNAMIC = ("import_module", "__import__")  # importlib.import_module("docker"), __import__("docker")


def imported_modules(source: str, filename: str = "<source>"):
    """Every absolute module an ``import``, ``from ... import`` or a literal dynamic import in ``source`` names."""
    names = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and _called_name(node.func) in _DYNAMIC and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return names


def _called_name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def forbidden_imports(source: str, filename: str = "<source>"):
    return [name for name in imported_modules(source, filename) if name.split(".")[0] in FORBIDDEN]


def test_the_check_catches_each_way_of_importing():
    for source in ("import docker", "import docker.errors as e", "from docker import types", "import os, docker",
                   "def f():\n    import docker\n", "from tools.docker import smoke", "import tools.bench_gpu",
                   "importlib.import_module('docker')", "__import__('tools.docker.smoke')"):
        assert forbidden_imports(source), source
    for source in ("import dockerfile_parse", "from hmkd.tools import x", "from . import docker", "import os",
                   "from .tools import y", "print('docker')"):
        assert not forbidden_imports(source), source


def test_the_runtime_package_imports_no_docker_sdk_and_no_tools():
    files = sorted(glob.glob(os.path.join(ROOT, "hmkd", "**", "*.py"), recursive=True))
    assert len(files) > 20, files  # the walk found the package
    found = {}
    for path in files:
        with open(path) as handle:
            bad = forbidden_imports(handle.read(), path)
        if bad:
            found[os.path.relpath(path, ROOT)] = bad
    assert not found, "the runtime package imports host-only modules: %s" % found


def test_the_docker_smoke_driver_left_the_package():
    assert not os.path.exists(os.path.join(ROOT, "hmkd", "dockersmoke.py"))
    assert os.path.isfile(os.path.join(ROOT, "tools", "docker", "smoke.py"))
