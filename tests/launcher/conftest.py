"""Real Slurm clusters for the launcher tests (tools/slurm, its cluster.py): one node, or two in namespaces.

The session-scoped ``slurm_cluster`` fixture installs Debian's slurm + munge if needed
(tools/slurm/install.sh, root + apt), starts slurmctld/slurmd on free non-default ports in a
temporary directory, and stops them at the end of the session (also when tests fail).

    def test_x(slurm_cluster):
        job = slurm_cluster.sbatch("--wrap", "true")            # job id (str)
        slurm_cluster.wait_state(job, {"COMPLETED"})
        subprocess.run([...], env=slurm_cluster.environ())       # os.environ + SLURM_CONF

The session-scoped ``slurm_nodes`` fixture is the same SlurmCluster with two nodes, ``n1`` and ``n2``:
slurmctld on this host, each slurmd in a network namespace of its own (own address on a bridge, own
hostname, an /etc/hosts naming every node), so a job step on n2 reaches n1 over TCP by name as on a real
cluster. For a 2-node torch job:

    def test_ddp(slurm_nodes, tmp_path):
        job = slurm_nodes.sbatch("-N", "2", "--ntasks-per-node=1", "-o", str(tmp_path / "%j.log"),
                                 str(script))                    # the script runs on n1; srun starts the ranks
        slurm_nodes.wait_state(job, {"COMPLETED"}, timeout=120)
        # in the script: MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)   -> n1
        slurm_nodes.nodes        # [{"name": "n1", "addr": "10.213.X.11", "netns": ...}, {"name": "n2", ...}]
        slurm_nodes.node_exec("n2", "ss", "-tln")                # a command inside n2 (CompletedProcess, text)
        slurm_nodes.set_link("n2", False)                        # cut n2's cable (True: plug it back)
        slurm_nodes.restart_slurmd("n2", kill_jobs=True)         # n2 "reboots": its jobs die, slurmd re-registers
        slurm_nodes.wait_node_state("n2", {"idle"})              # sinfo's state ("idle", "down*", "alloc", ...)

What a job on a node sees: gethostname() is the node name and resolves to the node's address (not 127.x),
so torch/gloo pick eth0; ports are per node (two nodes may listen on the same one); 127.0.0.1 is the node's
own loopback, so a server on this host's loopback is out of reach (the host is ``slurm_nodes.info
["ctld_addr"]``). The file system is shared: tmp_path, the repository and the venv are the same on every
node. Every node declares all of this machine's CPUs (``.cpus``), so -N 2 jobs run on one machine's cores.
SlurmdTimeout is 20 s: a node whose link is cut is "idle*" (not responding) after about 15 s and DOWN
("down*") after about 30 s. Plugging the link back is not enough to bring a DOWN node back soon: slurmctld
stops pinging it and asks it to register only every 20th ping cycle (up to about 2 minutes; 90 s measured);
``restart_slurmd(node)`` makes it register at once (ReturnToService=2 then returns it to service in about
a second). A link cut and restored before the node is DOWN needs nothing. A test that cuts a link or
restarts a slurmd must leave both nodes idle (``wait_node_state``), as the fixture is shared.

Without root or without a reachable package mirror the tests are skipped with a loud reason,
unless ``CI`` or ``HMKD_REQUIRE_SLURM`` is set (then that is an error); ``slurm_nodes`` also when network
namespaces cannot be made. A cluster that is installed but does not come up is always an error, with the
daemons' log tails.
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
from typing import Dict, Iterable, List, Optional

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
               (several nodes: also nodes, bridge, ctld_addr, subnet)
    nodes      [{"name", "addr", "netns"}, ...] of a several-node cluster; [] for the one-node one
    """

    def __init__(self, directory: Path, info: Dict[str, object], module) -> None:
        self.dir = Path(directory)
        self.info = info
        self.conf = Path(str(info["SLURM_CONF"]))
        self.partition = str(info["partition"])
        self.env: Dict[str, str] = {"SLURM_CONF": str(self.conf)}
        self.nodes: List[Dict[str, str]] = [dict(n) for n in info.get("nodes", [])]  # type: ignore[attr-defined]
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

    # --- several-node clusters (``slurm_nodes``): the node names are those of ``nodes``

    def node_exec(self, node: str, *argv: str, check: bool = True, timeout: float = 30.0,
                  env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``node`` (its network namespace, /etc/hosts and hostname), text output."""
        res = self._mod.node_exec(str(self.dir), node, [str(a) for a in argv], env=self.environ(env),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"on {node}: {' '.join(map(str, argv))} exited {res.returncode}:\n"
                                 f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def node_command(self, node: str, *argv: str) -> List[str]:
        """``argv`` wrapped to run inside ``node``, for subprocess.Popen (a background server, say)."""
        return self._mod.node_command(str(self.dir), node, [str(a) for a in argv])

    def set_link(self, node: str, up: bool) -> None:
        """Cut (False) or restore (True) ``node``'s link to the bridge that joins the nodes and slurmctld."""
        self._mod.set_link(str(self.dir), node, up)

    def restart_slurmd(self, node: str, kill_jobs: bool = False) -> int:
        """Stop and start ``node``'s slurmd (``kill_jobs``: also end its jobs, as a reboot); its new PID."""
        return self._mod.restart_slurmd(str(self.dir), node, kill_jobs=kill_jobs)

    def node_pids(self, node: str) -> List[int]:
        """The PIDs running in ``node``'s network namespace."""
        return self._mod.node_pids(str(self.dir), node)

    def node_states(self) -> Dict[str, str]:
        """sinfo's state of every node: {"n1": "idle", "n2": "down*", ...} ("*": not responding)."""
        return self._mod.node_states(str(self.dir))

    def wait_node_state(self, node: str, states: Iterable[str], timeout: float = 30.0,
                        poll: float = 0.25) -> float:
        """Poll sinfo until ``node`` is in one of ``states``; returns the seconds it took."""
        wanted = set(states)
        t0 = time.monotonic()
        while True:
            state = self.node_states().get(node)
            if state in wanted:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"node {node} not in {sorted(wanted)} after {timeout} s: {state}\n"
                                     + self.run("scontrol", "show", "node", node, check=False).stdout)
            time.sleep(poll)

    def __repr__(self) -> str:
        return f"SlurmCluster(dir={str(self.dir)!r}, ports={self.info.get('ports')})"


def short_tmp_dir(tmp_path_factory, name: str) -> Path:
    """A fresh dir for a cluster: unix socket paths under it (munge, slurmstepd) must stay short."""
    base = tmp_path_factory.mktemp(name)
    if len(str(base)) > 60:
        base = Path(tempfile.mkdtemp(prefix=f"hmkd-{name}-"))
    return base


def _cluster_module_or_skip(nodes: bool = False):
    """tools/slurm/cluster.py once Slurm is installed, or skip (fail under CI) when it cannot run here."""
    mod = _load_cluster_module()
    if os.name != "posix" or not hasattr(os, "geteuid"):
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("needs root (slurmctld/slurmd run as root; install uses apt-get)")
    try:
        mod.install()
    except mod.ClusterError as e:
        _unavailable(str(e))
    if nodes:
        problem = mod.network_problem()
        if problem:
            _unavailable(f"a several-node cluster needs network namespaces: {problem}")
    return mod


def _session_cluster(tmp_path_factory, name: str, nodes: Optional[int]):
    mod = _cluster_module_or_skip(nodes=nodes is not None)
    base = short_tmp_dir(tmp_path_factory, name)
    try:
        info = mod.start(str(base), nodes=nodes)
    except mod.ClusterError as e:
        mod.stop(str(base), quiet=True)
        pytest.fail(f"Slurm test cluster did not start: {e}", pytrace=False)
    try:
        yield SlurmCluster(base, info, mod)
    finally:
        mod.stop(str(base), quiet=True)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    yield from _session_cluster(tmp_path_factory, "slurm", nodes=None)


@pytest.fixture(scope="session")
def slurm_nodes(tmp_path_factory):
    """Two nodes, n1 and n2, each slurmd in its own network namespace (see the module docstring)."""
    yield from _session_cluster(tmp_path_factory, "nodes", nodes=2)


@pytest.fixture(scope="session")
def slurm_tools_nodes():
    """tools/slurm/cluster.py (as a module), for tests that start and stop several-node clusters of their
    own; skipped (failed under CI) like ``slurm_nodes``."""
    return _cluster_module_or_skip(nodes=True)
