"""The GPU check (tools/gpu_check.py): its CPU dry run end to end, the pieces that keep one GPU run from being lost
(time limits, pytest from wheels, the junit summary), and that what it runs imports neither submitit nor mmcv-full,
which the GPU image lacks.

Usage: pytest tests/benchmarks/test_gpu_check.py
"""
import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import pytest

from runner import REPO, cli_env


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("hmkd_tools_gpu_check", os.path.join(REPO, "tools", "gpu_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


@pytest.mark.slow
def test_dry_run_fills_one_folder_with_the_summary_the_table_and_every_figure(tmp_path):
    from hmkd.benchmarks.gpu import check_plan

    out = tmp_path / "gpu-check"
    result = subprocess.run([sys.executable, os.path.join("tools", "gpu_check.py"), "--dry-run", "--out", str(out)],
                            cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "gpu-check: passed" in result.stdout
    with open(out / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["ok"] and summary["dry_run"] and summary["environment"]["imported"] == []
    tests = summary["tests"]
    assert tests["run"] and tests["tests"] >= 11 and tests["failed"] == tests["error"] == 0
    assert any(c["test"].startswith("test_cuda::test_deterministic_resume") and c["outcome"] == "passed"
               for c in tests["cases"])
    names = [p.name for p in check_plan(smoke=True)]
    assert [b["name"] for b in summary["benchmarks"]["benchmarks"]] == names
    assert all(b["status"] == "ok" for b in summary["benchmarks"]["benchmarks"])
    assert sorted(os.listdir(out / "benchmarks")) == sorted(n + ".json" for n in names)
    for name in ("distill_step_fp32", "distill_step_bf16"):
        with open(out / "benchmarks" / (name + ".json")) as handle:
            step = json.load(handle)
        assert step["images_per_s"] > 0 and step["ratio"] > 0 and step["batch"] == 2
        assert step["amp"] == (False if name.endswith("fp32") else "bf16")
    with open(out / "benchmarks" / "context_memory.json") as handle:
        context = json.load(handle)
    for variant in context["variants"]:
        assert "median_s" in context["scopes"]["context"][variant]["time"]
    with open(out / "benchmarks" / "eval_throughput.json") as handle:
        modes = json.load(handle)["models"][0]["modes"]
    assert {"whole", "slide_bw1", "slide_bw4"} <= set(modes)
    table = (out / "table.md").read_text()
    for part in ("# GPU check: CPU dry run", "## Tests", "## Benchmarks", "## Figures", "| test_cuda::",
                 "| distill_step_bf16 | ok |", "| eval_throughput |"):
        assert part in table, part
    assert os.path.isfile(out / "tests" / "junit.xml") and os.path.isfile(out / "tests" / "pytest.log")


def test_a_phase_past_its_limit_is_killed_with_its_children(tmp_path):
    log = str(tmp_path / "phase.log")
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);" \
              " print('started', flush=True); time.sleep(60)"
    code, seconds = gpu_check.run_phase([sys.executable, "-c", sleeper], log, 3, dict(os.environ))
    assert code is None and seconds < 30
    text = open(log).read()
    assert "started" in text and "killed after 3 s" in text


def test_pytest_comes_from_the_wheels_when_the_interpreter_has_none(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, files in (("pytest-8.3.5-py3-none-any.whl", {"pytest/__init__.py": "", "_pytest/__init__.py": ""}),
                        ("pluggy-1.5.0-py3-none-any.whl", {"pluggy/__init__.py": ""})):
        with zipfile.ZipFile(str(wheels / name), "w") as archive:
            for path, text in files.items():
                archive.writestr(path, text)
    monkeypatch.setattr(gpu_check.subprocess, "call", lambda *args, **kwargs: 1)  # `import pytest` fails
    how, site = gpu_check.pytest_path(sys.executable, {}, str(wheels), str(tmp_path / "site"))
    assert how.startswith("unpacked from") and "(2 wheels)" in how
    assert os.path.isfile(os.path.join(site, "pytest", "__init__.py"))
    assert os.path.isfile(os.path.join(site, "pluggy", "__init__.py"))
    assert gpu_check.pytest_path(sys.executable, {}, str(tmp_path / "none"), str(tmp_path / "s2")) == (None, None)


def test_junit_results_count_outcomes_and_name_the_failures(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest">'
                    '<testcase classname="tests.gpu.test_cuda" name="test_a[fp16]" time="1.5"/>'
                    '<testcase classname="tests.gpu.test_cuda" name="test_b" time="2">'
                    '<failure message="AssertionError: no gradient&#10;more">trace</failure></testcase>'
                    '<testcase classname="tests.gpu.test_cuda" name="test_c" time="0"><skipped message="no CUDA"/>'
                    '</testcase></testsuite></testsuites>')
    results = gpu_check.junit_results(str(path))
    assert (results["tests"], results["passed"], results["failed"], results["skipped"]) == (3, 1, 1, 1)
    assert results["failed_tests"] == ["test_cuda::test_b"]
    assert results["cases"][1]["message"] == "AssertionError: no gradient"
    assert gpu_check.junit_results(str(tmp_path / "missing.xml")) is None


_WITHOUT_SUBMITIT_AND_MMCV = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("submitit", "mmcv"):
            raise ModuleNotFoundError("No module named %r (as on the GPU image)" % name)
sys.meta_path.insert(0, Absent())
import hmkd.benchmarks.gpu, hmkd.cli.main, hmkd.engine.trainer, hmkd.evaluation
from hmkd.models import build_model
from hmkd.models.complexity import model_complexity
hmkd.cli.main.build_parser()
try:
    print(model_complexity(build_model("deeplabv3_tiny", 3), (32, 32))["counter"])
except ImportError:  # torch 1.11 without mmcv-full has no counter at all (the trainer records null FLOPs)
    print("none")
"""


def test_what_the_check_runs_imports_neither_submitit_nor_mmcv():
    """The GPU image has no submitit and no mmcv-full: the trainer, the evaluation, the benchmarks and the CLI must
    import without them (submitit only in the launcher's paths) and FLOPs fall back to torch's counter."""
    result = subprocess.run([sys.executable, "-c", _WITHOUT_SUBMITIT_AND_MMCV], capture_output=True, text=True,
                            timeout=300, env=cli_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    has_torch_counter = importlib.util.find_spec("torch.utils.flop_counter") is not None
    assert result.stdout.strip().splitlines()[-1] == ("torch" if has_torch_counter else "none")
