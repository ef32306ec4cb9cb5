"""A real one-node Slurm cluster for the launcher tests (tools/slurm, its cluster.py).

The session-scoped ``slurm_cluster`` fixture installs Debian's slurm + munge if needed
(tools/slurm/install.sh, root + apt), starts slurmctld/slurmd on free non-default ports in a
temporary directory, and stops them at the end of the session (also when tests fail).

    def test_x(slurm_cluster):
        job = slurm_cluster.sbatch("--wrap", "true")            # job id (str)
        slurm_cluster.wait_state(job, {"COMPLETED"})
        subprocess.run([...], env=slurm_cluster.environ())       # os.environ + SLURM_CONF

Without root or without a reachable package mirror the tests are skipped with a loud reason,
unless ``CI`` or ``HMKD_REQUIRE_SLURM`` is set (then that is an error). A cluster that is
installed but does not come up is always an error, with the daemons' log tails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, Iterable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_TOOLS = REPO / "tools" / "slurm"
SLURM_TOOLS_PACKAGE = "hmkd_tools_slurm"

TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
    "BOOT_FAIL", "DEADLINE",
})


def _load_cluster_module():
    """tools/slurm/cluster.py, with tools/slurm loaded as a package by path: not on sys.path, where its
    ``config`` module would clash with tests/config."""
    if SLURM_TOOLS_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(SLURM_TOOLS_PACKAGE, str(SLURM_TOOLS / "__init__.py"),
                                                      submodule_search_locations=[str(SLURM_TOOLS)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[SLURM_TOOLS_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(SLURM_TOOLS_PACKAGE + ".cluster")


def _must_not_skip() -> bool:
    return any(os.environ.get(k, "").strip().lower() not in ("", "0", "false", "no")
               for k in ("CI", "HMKD_REQUIRE_SLURM"))


def _unavailable(reason: str) -> None:
    msg = f"REAL SLURM CLUSTER UNAVAILABLE, launcher tests not run: {reason}"
    if _must_not_skip():
        pytest.fail(msg + " (CI/HMKD_REQUIRE_SLURM is set, so this is an error)", pytrace=False)
    warnings.warn(msg)
    pytest.skip(msg)


class SlurmCluster:
    """A running test cluster. Attributes:

    dir        Path of the cluster directory (slurm.conf, env.json, state, spool, logs)
    conf       Path of its slurm.conf
    partition  the partition to submit to ("debug")
    env        what to merge into a subprocess environment: {"SLURM_CONF": ...}
    info       DIR/env.json: ports, node, cpus, slurm_version, cluster_name, startup_s, ...
    """

    def __init__(self, directory: Path, info: Dict[str, object], module) -> None:
        self.dir = Path(directory)
        self.info = info
        self.conf = Path(str(info["SLURM_CONF"]))
        self.partition = str(info["partition"])
        self.env: Dict[str, str] = {"SLURM_CONF": str(self.conf)}
        self._mod = module

    @property
    def cpus(self) -> int:
        return int(self.info.get("cpus", 1))

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """A full environment for subprocesses: os.environ without the SLURM_*/SBATCH_*
        variables of an enclosing job, plus ``env`` (and ``extra``)."""
        env = self._mod.client_env(str(self.dir))
        env.update(self.env)
        if extra:
            env.update(extra)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 30.0,
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Run a client command (squeue, sbatch, scontrol, ...) against this cluster."""
        res = subprocess.run([str(c) for c in cmd], env=self.environ(env), cwd=str(self.dir),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))} exited {res.returncode}:\n"
                                 f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def sbatch(self, *args: str, env: Optional[Dict[str, str]] = None) -> str:
        """``sbatch --parsable -p <partition> ARGS``; returns the job id."""
        out = self.run("sbatch", "--parsable", "-p", self.partition, *args, env=env).stdout
        return out.strip().split(";")[0]

    def job(self, job_id: str) -> Dict[str, str]:
        """``scontrol show job -o JOB`` as a dict ({} once Slurm has forgotten the job)."""
        res = self.run("scontrol", "show", "job", "-o", str(job_id), check=False)
        fields: Dict[str, str] = {}
        if res.returncode != 0:
            return fields
        for tok in res.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields.setdefault(k, v)
        return fields

    def state(self, job_id: str) -> str:
        return self.job(job_id).get("JobState", "")

    def wait_state(self, job_id: str, states: Iterable[str] = TERMINAL_STATES,
                   timeout: float = 30.0, poll: float = 0.2) -> Dict[str, str]:
        """Poll until the job is in one of ``states``; returns its scontrol fields."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        fields: Dict[str, str] = {}
        while True:
            fields = self.job(job_id)
            if fields.get("JobState") in wanted:
                return fields
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} not in {sorted(wanted)} after {timeout} s: "
                    f"{fields.get('JobState')} (Reason={fields.get('Reason')})\n{self.logs()}")
            time.sleep(poll)

    def logs(self, n: int = 15) -> str:
        return self._mod.logs(str(self.dir))

    def __repr__(self) -> str:
        return f"SlurmCluster(dir={str(self.dir)!r}, ports={self.info.get('ports')})"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    mod = _load_cluster_module()
    if os.name != "posix" or not hasattr(os, "geteuid"):
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("needs root (slurmctld/slurmd run as root; install uses apt-get)")
    try:
        mod.install()
    except mod.ClusterError as e:
        _unavailable(str(e))
    base = tmp_path_factory.mktemp("slurm")
    if len(str(base)) > 60:  # unix socket paths under the dir must stay short
        base = Path(tempfile.mkdtemp(prefix="hmkd-slurm-"))
    try:
        info = mod.start(str(base))
    except mod.ClusterError as e:
        mod.stop(str(base), quiet=True)
        pytest.fail(f"Slurm test cluster did not start: {e}", pytrace=False)
    cluster = SlurmCluster(base, info, mod)
    try:
        yield cluster
    finally:
        mod.stop(str(base), quiet=True)
