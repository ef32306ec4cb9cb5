"""The test cluster's directory layout, its ports, its node(s) and the slurm.conf that ties them together.

Usage:
    cdir = ClusterDir.at("/tmp/c"); cdir.conf; cdir.log_file("slurmd.log")
    ctld_port, slurmd_port = pick_ports(2)                    # free, random, never the Slurm defaults
    info = write_config(cdir, ctld_port, [local_node(slurmd_port)], munge_socket=None)
    write_config(cdir, ctld_port, [Node("n1", "10.213.7.11", p), Node("n2", "10.213.7.12", p)], None,
                 ctld_addr="10.213.7.1", slurmd_timeout=20, per_node_files=True)   # one slurmd per namespace

Everything a daemon writes lives under the one directory and the daemons listen on random ports in
20000-30000, so a cluster already running on the machine (6817/6818, /etc/slurm) is left alone. The nodes
are a list of (name, address, port): the one-node cluster has this host at 127.0.0.1; the several-node one
(network.py) a slurmd per network namespace, all sharing this file, hence per-node (%n) spool, pid and log
paths.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

if __package__:
    from .programs import ClusterError, run, which
else:  # cluster.py run as a script: tools/slurm is sys.path[0]
    from programs import ClusterError, run, which

PARTITION = "debug"
PORT_RANGE = (20000, 30000)
SLURM_DEFAULT_PORTS = (6817, 6818, 6819)
PORT_TRIES = 500
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s);
# 10 s keeps the requeue tests short.
CRED_EXPIRE_S = 10
TOPOLOGY_KEYS = ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
# Slurm 22.05 options of the test cluster that depend on nothing: no accounting, fast scheduling,
# requeue allowed, short timeouts, no SPANK plugins, no cgroups.
POLICY = (
    "SlurmctldDebug=info",
    "SlurmdDebug=info",
    "MailProg=/bin/true",
    "ProctrackType=proctrack/linuxproc",
    "TaskPlugin=task/none",
    "SwitchType=switch/none",
    "MpiDefault=none",
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_CPU",
    "SchedulerType=sched/backfill",
    "SchedulerParameters=bf_interval=1,sched_interval=2",
    "AccountingStorageType=accounting_storage/none",
    "JobAcctGatherType=jobacct_gather/none",
    "JobCompType=jobcomp/none",
    "ReturnToService=2",
    "JobRequeue=1",
    "PropagateResourceLimitsExcept=MEMLOCK",
    "SlurmctldTimeout=30",
    "SlurmdTimeout=30",
    "InactiveLimit=0",
    "KillWait=5",
    "MinJobAge=300",
    "Waittime=0",
    "MessageTimeout=10",
)


class ClusterDir(NamedTuple):
    """One cluster's directory (absolute): every path the daemons, the clients and the fixture use."""

    path: str

    @classmethod
    def at(cls, directory: str) -> ClusterDir:
        return cls(os.path.abspath(directory))

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def conf(self) -> str:
        return self.file("slurm.conf")

    @property
    def plugstack(self) -> str:
        return self.file("plugstack.conf")

    @property
    def env(self) -> str:
        """env.json: what ``start`` returned, for the fixture and for ``status``."""
        return self.file("env.json")

    @property
    def state(self) -> str:
        return self.file("state")

    @property
    def spool(self) -> str:
        return self.file("spool")

    @property
    def log(self) -> str:
        return self.file("log")

    @property
    def run(self) -> str:
        """Pid files of the daemons and ``start``'s records of what it started."""
        return self.file("run")

    @property
    def munge(self) -> str:
        return self.file("munge")

    @property
    def munge_socket(self) -> str:
        return self.file("munge", "munge.socket.2")

    @property
    def munge_key(self) -> str:
        return self.file("munge", "munge.key")

    def log_file(self, name: str) -> str:
        return self.file("log", name)

    def run_file(self, name: str) -> str:
        return self.file("run", name)


class Node(NamedTuple):
    """A slurmd: its NodeName, the address slurmctld reaches it at, the port it listens on."""

    name: str
    addr: str
    port: int


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def local_node(port: int) -> Node:
    """The one node of today's cluster: this host, on the loopback address."""
    return Node(short_hostname(), "127.0.0.1", port)


# ----------------------------------------------------------------------------- ports


def _port_free(port: int) -> bool:
    for addr in ("0.0.0.0", "127.0.0.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    # Something listening on another address of this host also counts as taken.
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(0.2)
    try:
        return c.connect_ex(("127.0.0.1", port)) != 0
    finally:
        c.close()


def pick_ports(n: int = 2, lo: int = PORT_RANGE[0], hi: int = PORT_RANGE[1]) -> List[int]:
    """``n`` distinct free TCP ports in [lo, hi), chosen at random (not the Slurm defaults)."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1e6))
    chosen: List[int] = []
    for _ in range(PORT_TRIES):
        port = rng.randrange(lo, hi)
        if port not in chosen and port not in SLURM_DEFAULT_PORTS and _port_free(port):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise ClusterError(f"no {n} free TCP ports found in {lo}-{hi}")


# ----------------------------------------------------------------------------- hardware


def _slurmd_hardware() -> Dict[str, int]:
    """``slurmd -C``'s numeric fields (CPUs, Boards, ..., RealMemory); {} when it cannot say."""
    slurmd = which("slurmd")
    if not slurmd:
        return {}
    try:
        out = run([slurmd, "-C"], timeout=20).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    pairs = (tok.split("=", 1) for tok in out.split() if "=" in tok)
    return {k: int(v) for k, v in pairs if v.isdigit()}


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise ClusterError("no MemTotal in /proc/meminfo")


def node_hardware() -> Dict[str, int]:
    """CPU topology and memory (MB) of this machine, as slurmd reports them."""
    hw = _slurmd_hardware()
    if "CPUs" not in hw:
        hw = {"CPUs": os.cpu_count() or 1}
    if "RealMemory" not in hw:
        hw["RealMemory"] = _mem_total_mb()
    return hw


# ----------------------------------------------------------------------------- slurm.conf


def _auth_lines(cluster_name: str, ctld_addr: str, ctld_port: int, slurmd_port: int,
                munge_socket: Optional[str]) -> List[str]:
    auth_info = [f"socket={munge_socket}"] if munge_socket else []
    return [
        "# Test cluster written by tools/slurm/config.py for cluster.py (Slurm 22.05 options).",
        f"ClusterName={cluster_name}",
        f"SlurmctldHost={short_hostname()}({ctld_addr})",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "AuthInfo=" + ",".join(auth_info + [f"cred_expire={CRED_EXPIRE_S}"]),
    ]


def _path_lines(cdir: ClusterDir, per_node_files: bool) -> List[str]:
    """``per_node_files``: several slurmd share the file system, so each gets its own spool dir, pid and log
    file (slurmd puts its NodeName for %n)."""
    spool, slurmd = (os.path.join(cdir.spool, "%n"), "slurmd-%n") if per_node_files else (cdir.spool, "slurmd")
    return [
        f"StateSaveLocation={cdir.state}",
        f"SlurmdSpoolDir={spool}",
        f"SlurmctldPidFile={cdir.run_file('slurmctld.pid')}",
        f"SlurmdPidFile={cdir.run_file(slurmd + '.pid')}",
        f"SlurmctldLogFile={cdir.log_file('slurmctld.log')}",
        f"SlurmdLogFile={cdir.log_file(slurmd + '.log')}",
        f"PlugStackConfig={cdir.plugstack}",
    ]


def _policy_lines(slurmd_timeout: Optional[int]) -> List[str]:
    if slurmd_timeout is None:
        return list(POLICY)
    return [line for line in POLICY if not line.startswith("SlurmdTimeout=")] + [f"SlurmdTimeout={slurmd_timeout}"]


def _node_lines(nodes: Sequence[Node], hw: Dict[str, int], mem_mb: int) -> List[str]:
    topo = " ".join([f"CPUs={hw['CPUs']}"] + [f"{k}={hw[k]}" for k in TOPOLOGY_KEYS if k in hw])
    lines = [f"NodeName={n.name} NodeAddr={n.addr} Port={n.port} {topo} RealMemory={mem_mb} State=UNKNOWN"
             for n in nodes]
    names = ",".join(n.name for n in nodes)
    return lines + [f"PartitionName={PARTITION} Nodes={names} Default=YES MaxTime=INFINITE State=UP"]


def write_config(cdir: ClusterDir, ctld_port: int, nodes: Sequence[Node], munge_socket: Optional[str],
                 cluster_name: Optional[str] = None, ctld_addr: str = "127.0.0.1",
                 slurmd_timeout: Optional[int] = None, per_node_files: bool = False) -> Dict[str, object]:
    """Write slurm.conf and plugstack.conf; returns the env.json fields they decide (name, node, cpus, memory).

    A fresh random ClusterName each start, so slurmctld never picks up another run's state. ``ctld_addr``:
    where every slurmd reaches slurmctld; ``slurmd_timeout`` (s) replaces POLICY's when given; see
    ``_path_lines`` for ``per_node_files``. Every node is given this machine's CPUs and memory."""
    hw = node_hardware()
    mem_mb = max(64, int(hw["RealMemory"] * 0.9))
    cluster_name = cluster_name or "hmkd%06x" % random.randrange(16 ** 6)
    lines = (_auth_lines(cluster_name, ctld_addr, ctld_port, nodes[0].port, munge_socket)
             + _path_lines(cdir, per_node_files) + _policy_lines(slurmd_timeout) + _node_lines(nodes, hw, mem_mb))
    with open(cdir.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(cdir.plugstack, "w") as f:
        f.write("# no SPANK plugins in the test cluster\n")
    return {"cluster_name": cluster_name, "node": ",".join(n.name for n in nodes), "cpus": hw["CPUs"],
            "real_memory_mb": mem_mb}
