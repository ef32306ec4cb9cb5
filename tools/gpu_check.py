"""gpu-check: the one prepared GPU check (issue 12, item 5), in one command within a time limit, into one folder.

Usage: python3 tools/gpu_check.py [--out results/gpu-check] [--budget 465]      (on the GPU machine, in the checkout)
       python3 tools/gpu_check.py --dry-run --out /tmp/gpu-check               (on the CPU at tiny sizes)
       make gpu-check [GPU_CHECK_FLAGS=--dry-run]; make gpu-wheels             (pytest's wheels, for a machine
                                                                                without pytest and without network)

A GPU run is scarce (minutes, no network, a bare image with torch but maybe without pytest), so this is one command
that cannot hang past its budget and always leaves its folder readable:
1. environment: Python, torch, CUDA, the GPU, its capability and whether this torch has kernels for it (the
   trainer's own check, hmkd.engine.distributed), and that hmkd imports without submitit / mmcv-full;
2. tests: the CUDA-marked tests (pytest -m cuda tests/gpu) with a junit report; pytest is the interpreter's own,
   else unpacked from the pure-Python wheels in build/gpu-wheels (`make gpu-wheels` where PyPI is reachable; carry
   that folder with the checkout). Without either, the tests are reported as not run and the benchmarks still run;
3. benchmarks: `python -m hmkd.benchmarks.gpu --check` in the time that is left, each benchmark's JSON as written;
4. summary.json and table.md (environment, test outcomes, what each benchmark did, every figure).
Each phase is a child process in its own session, killed with its children at its time limit. The exit status is 0
only when the GPU is usable, every test passed (skips allowed only in a dry run) and every required benchmark ran.
--dry-run runs the same phases on the CPU (CUDA hidden): the tests at tiny sizes (HMKD_GPU_TESTS_ON_CPU=1) and the
benchmarks' --smoke sizes; the test suite runs it (tests/benchmarks/test_gpu_check.py). Standard library only, so any
python3 >= 3.6 starts it; the phases run in --python (default: this interpreter).
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WHEELS = os.path.join(ROOT, "build", "gpu-wheels")
TESTS = "tests/gpu"
TESTS_LIMIT_S = 230    # the tests' share of the budget; the benchmarks get what is left
TABLE_RESERVE_S = 25   # kept back for the table and the summary
START_RESERVE_S = 20   # the benchmarks process's imports and CUDA start, before its own budget starts counting

_PROBE = r"""
import json, sys
report = {"python": sys.version.split()[0]}
try:
    import torch
    report.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    import hmkd, hmkd.benchmarks.gpu, hmkd.engine.trainer, hmkd.evaluation  # what the check runs
    from hmkd.engine.distributed import check_gpu_kernels
    report["hmkd"] = hmkd.__version__
    report["imported"] = sorted(m for m in ("submitit", "mmcv") if m in sys.modules)
    if report["cuda_available"]:
        report.update(gpu=torch.cuda.get_device_name(0), capability="%d.%d" % torch.cuda.get_device_capability(0),
                      arch_list=torch.cuda.get_arch_list(), gpu_count=torch.cuda.device_count())
        try:
            check_gpu_kernels(0)
            torch.ones(1, device="cuda").add_(1)
            torch.cuda.synchronize()
            report["kernels"] = "ok"
        except Exception as exc:  # the refusal (ValueError) or CUDA's own error
            report["kernels"] = "%s: %s" % (type(exc).__name__, exc)
except Exception as exc:
    report["error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(report))
"""


def log(message):
    print("gpu-check: " + message, flush=True)


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def run_phase(cmd, log_path, timeout, env):
    """Runs ``cmd`` in ROOT with its output in ``log_path``; kills its whole session after ``timeout`` seconds.
    Returns (exit status or None when killed, seconds)."""
    start = time.monotonic()
    with open(log_path, "w") as handle:
        handle.write("$ %s\n" % " ".join(cmd))
        handle.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
            handle.write("\ngpu-check: killed after %.0f s (its time limit)\n" % timeout)
    return code, round(time.monotonic() - start, 1)


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def probe(python, env, out):
    path = os.path.join(out, "environment.log")
    code, seconds = run_phase([python, "-c", _PROBE], path, 180, env)
    text = tail(path, 5).strip().splitlines()
    try:
        report = json.loads(text[-1])
    except (IndexError, ValueError):
        report = {"error": "the probe printed no report (exit status %s); see environment.log" % code}
    report["seconds"] = seconds
    return report


def pytest_path(python, env, wheels, site):
    """(how pytest is found, extra sys.path entry or None); how is None when there is no pytest at all."""
    if subprocess.call([python, "-c", "import pytest"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) == 0:
        return "the interpreter's own", None
    found = sorted(glob.glob(os.path.join(wheels, "*.whl")))
    if not any(os.path.basename(w).startswith("pytest-") for w in found):
        return None, None
    os.makedirs(site, exist_ok=True)
    for wheel in found:  # pure-Python wheels: unpacked, they are importable as they are
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return "unpacked from %s (%d wheels)" % (os.path.relpath(wheels, ROOT), len(found)), site


def junit_results(path):
    """Counts and the failing tests from pytest's junit XML; None when there is none."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    cases, failed = [], []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0][:300] if message else ""
                break
        name = "%s::%s" % (case.get("classname", "").split(".")[-1], case.get("name"))
        cases.append({"test": name, "outcome": outcome, "seconds": float(case.get("time") or 0), "message": message})
        if outcome in ("failed", "error"):
            failed.append(name)
    counts = {k: sum(1 for c in cases if c["outcome"] == k) for k in ("passed", "failed", "error", "skipped")}
    return dict(counts, tests=len(cases), failed_tests=failed, cases=cases)


def run_tests(python, env, out, limit, wheels, dry_run):
    folder = os.path.join(out, "tests")
    os.makedirs(folder, exist_ok=True)
    how, extra = pytest_path(python, env, wheels, os.path.join(ROOT, "build", "gpu-check-site"))
    if how is None:
        return {"run": False, "why": "pytest is not importable and %s holds no pytest wheel (make gpu-wheels where "
                                     "PyPI is reachable, then bring that folder along)" % os.path.relpath(wheels, ROOT)}
    env = dict(env)  # tests/ on the path as pyproject's pythonpath puts it (a pytest older than 7 would not)
    env["PYTHONPATH"] = os.pathsep.join(([extra] if extra else []) + [env["PYTHONPATH"], os.path.join(ROOT, "tests")])
    if dry_run:
        env["HMKD_GPU_TESTS_ON_CPU"] = "1"
    junit = os.path.join(folder, "junit.xml")
    cmd = [python, "-m", "pytest", TESTS, "-m", "cuda", "-p", "no:cacheprovider", "-v", "--durations=15",
           "--junitxml", junit]
    code, seconds = run_phase(cmd, os.path.join(folder, "pytest.log"), limit, env)
    result = {"run": True, "pytest": how, "exit_status": code, "timed_out": code is None, "seconds": seconds,
              "limit_s": round(limit)}
    counts = junit_results(junit)
    result.update(counts or {"tests": 0, "why": "no junit report (see tests/pytest.log)"})
    return result


def run_benchmarks(python, env, out, budget, dry_run):
    status_path = os.path.join(out, "benchmarks.json")
    cmd = [python, "-m", "hmkd.benchmarks.gpu", "--check", "--out", os.path.join(out, "benchmarks"), "--budget",
           "%.0f" % max(0.0, budget - START_RESERVE_S), "--status", status_path] + (["--smoke"] if dry_run else [])
    code, seconds = run_phase(cmd, os.path.join(out, "benchmarks.log"), budget + 30, env)
    result = {"exit_status": code, "timed_out": code is None, "seconds": seconds, "budget_s": round(budget)}
    try:
        with open(status_path) as handle:
            result["benchmarks"] = json.load(handle)["benchmarks"]
    except (OSError, ValueError, KeyError):
        result["benchmarks"] = []
    return result


def figures_markdown(python, env, out):
    path = os.path.join(out, "figures.md")
    code, _ = run_phase([python, "-m", "hmkd.benchmarks.table", os.path.join(out, "benchmarks"), "--markdown", path],
                        os.path.join(out, "table.log"), TABLE_RESERVE_S, env)
    if code != 0 or not os.path.exists(path):
        return "(no figures: %s)\n" % (tail(os.path.join(out, "table.log"), 3).strip() or "the table did not run")
    with open(path) as handle:
        return handle.read()


def table_markdown(summary, figures):
    env, tests, bench = summary["environment"], summary["tests"], summary["benchmarks"]
    where = env.get("gpu") or ("CPU dry run" if summary["dry_run"] else "no GPU")
    lines = ["# GPU check: %s, %s" % (where, summary["finished"]), "",
             "%s. Python %s, torch %s (CUDA %s), hmkd %s; capability %s, arch list %s; kernels: %s; imported: %s; "
             "%.0f s of a %.0f s budget." % ("passed" if summary["ok"] else "FAILED", env.get("python"),
                                             env.get("torch"), env.get("cuda"), env.get("hmkd"),
                                             env.get("capability", "-"), " ".join(env.get("arch_list", [])) or "-",
                                             env.get("kernels", "-"), ", ".join(env.get("imported", [])) or "nothing",
                                             summary["seconds"], summary["budget_s"])]
    if "error" in env:
        lines.append("Environment error: %s" % env["error"])
    lines += ["", "## Tests", ""]
    if not tests.get("run"):
        lines.append("Not run: %s" % tests.get("why"))
    else:
        lines.append("%d tests: %d passed, %d failed, %d errors, %d skipped in %.0f s%s (pytest: %s)."
                     % (tests.get("tests", 0), tests.get("passed", 0), tests.get("failed", 0), tests.get("error", 0),
                        tests.get("skipped", 0), tests["seconds"], ", KILLED at its time limit" if tests["timed_out"]
                        else "", tests["pytest"]))
        lines += ["", "| test | outcome | s | message |", "| --- | --- | ---: | --- |"]
        lines += ["| %s | %s | %.1f | %s |" % (c["test"], c["outcome"], c["seconds"], c["message"].replace("|", "\\|"))
                  for c in tests.get("cases", [])]
    lines += ["", "## Benchmarks", "", "%.0f s%s." % (bench["seconds"], ", KILLED at its time limit"
                                                       if bench["timed_out"] else ""), "",
              "| benchmark | status | s | note |", "| --- | --- | ---: | --- |"]
    lines += ["| %s | %s%s | %s | %s |" % (b["name"], b["status"], "" if b.get("required", True) else " (optional)",
                                          b.get("seconds", ""), b.get("error") or b.get("why") or "")
              for b in bench["benchmarks"]]
    lines += ["", "## Figures", "", figures]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "gpu-check"))
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for everything (default 465 on the GPU, 900 for --dry-run)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the phases")
    parser.add_argument("--wheels", default=DEFAULT_WHEELS, help="pytest's wheels when the interpreter has none")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny sizes (CUDA hidden)")
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else (900.0 if args.dry_run else 465.0)
    start = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=ROOT + (os.pathsep + os.environ["PYTHONPATH"]
                                              if os.environ.get("PYTHONPATH") else ""),
               PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    summary = {"dry_run": args.dry_run, "budget_s": budget, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "out": out}

    def left():
        return budget - (time.monotonic() - start)

    log("%s; results in %s" % ("dry run on the CPU" if args.dry_run else "budget %.0f s" % budget, out))
    summary["environment"] = env_report = probe(args.python, env, out)
    log("environment: %s" % json.dumps({k: v for k, v in env_report.items() if k != "arch_list"}))
    usable = "error" not in env_report and (args.dry_run or env_report.get("kernels") == "ok")
    summary["tests"] = run_tests(args.python, env, out, min(TESTS_LIMIT_S if not args.dry_run else budget / 2,
                                                            left() - TABLE_RESERVE_S - 60), args.wheels, args.dry_run)
    tests = summary["tests"]
    log("tests: %s" % (tests.get("why") if not tests.get("run") else
                       "%d passed, %d failed, %d errors, %d skipped in %.0f s%s" % (
                           tests.get("passed", 0), tests.get("failed", 0), tests.get("error", 0),
                           tests.get("skipped", 0), tests["seconds"], " (killed)" if tests["timed_out"] else "")))
    summary["benchmarks"] = run_benchmarks(args.python, env, out, left() - TABLE_RESERVE_S, args.dry_run)
    bench = summary["benchmarks"]
    log("benchmarks: %s in %.0f s%s" % (", ".join("%s %s" % (b["name"], b["status"]) for b in bench["benchmarks"])
                                        or "none ran", bench["seconds"], " (killed)" if bench["timed_out"] else ""))
    tests_ok = tests.get("run") and not tests["timed_out"] and tests.get("tests", 0) > 0 and \
        tests.get("failed", 0) + tests.get("error", 0) == 0 and (args.dry_run or tests.get("skipped", 0) == 0)
    summary["ok"] = bool(usable and tests_ok and bench["exit_status"] == 0)
    summary["seconds"] = round(time.monotonic() - start, 1)
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(os.path.join(out, "summary.json"), summary)
    with open(os.path.join(out, "table.md"), "w") as handle:
        handle.write(table_markdown(summary, figures_markdown(args.python, env, out)))
    for name, phase in (("tests/pytest.log", tests), ("benchmarks.log", bench)):
        if phase.get("run", True) and (phase.get("exit_status") != 0):
            log("%s (last lines):\n%s" % (name, tail(os.path.join(out, name), 25)))
    log("%s in %.0f s: %s" % ("passed" if summary["ok"] else "FAILED", summary["seconds"],
                              os.path.join(out, "table.md")))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
