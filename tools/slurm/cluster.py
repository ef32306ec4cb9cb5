#!/usr/bin/env python3
"""A real Slurm cluster under one directory, for tests and local trials: one node on this host, or several,
each slurmd in a network namespace of its own.

Usage:
    python3 tools/slurm/cluster.py start  --dir DIR   # write DIR/slurm.conf, start daemons (or: start DIR)
    python3 tools/slurm/cluster.py start  --dir DIR --nodes 2     # nodes n1, n2, each in its own namespace
    python3 tools/slurm/cluster.py status --dir DIR   # daemons, env.json, sinfo + squeue
    python3 tools/slurm/cluster.py stop   --dir DIR   # cancel jobs, stop what start started, remove the network
    python3 tools/slurm/cluster.py install            # tools/slurm/install.sh

    info = start("/tmp/c"); ...; stop("/tmp/c")       # info: a dict, as in DIR/env.json
    info = start("/tmp/c", nodes=2)                   # info["nodes"]: [{"name": "n1", "addr": ..., "netns": ...}, ...]
    node_exec("/tmp/c", "n1", ["getent", "hosts", "n2"], stdout=subprocess.PIPE)   # inside n1 (subprocess.run)
    subprocess.Popen(node_command("/tmp/c", "n1", ["sleep", "60"]))                 # the same, in the background
    set_link("/tmp/c", "n2", False); restart_slurmd("/tmp/c", "n2"); node_pids("/tmp/c", "n2"); node_states("/tmp/c")

Point client commands (sbatch, squeue, scontrol, scancel, submitit) at the cluster with
``SLURM_CONF=DIR/slurm.conf`` (also in DIR/env.json); ``client_env(DIR)`` is such an environment. Everything
the daemons write (state, spool, logs, pid files, the munge socket when it has to start munged) lives under
DIR, on free ports (config.py), so a cluster already running on the machine is left alone. ``stop`` ends only
what ``start`` recorded in DIR/run (daemons.py), so it works from another process, e.g. the CLI.

With ``nodes=N`` slurmctld stays in this namespace, on a bridge address that every node reaches, and node i
is a network namespace with its own address, hostname and /etc/hosts (network.py) running
``slurmd -N n<i>``; the munge socket is a path, so one munged serves them all. Jobs, srun steps and
slurmstepd inherit the namespaces of their slurmd, so a job sees the node it runs on as its own machine.
SlurmdTimeout is MULTI_NODE_SLURMD_TIMEOUT_S there, so a node whose link is cut is marked down soon.
``stop`` also ends whatever still runs in the nodes' namespaces and removes namespaces, links and
/etc/netns/<ns>, recorded in DIR/run/net.json before any of it is made.

Needs root and Debian's slurmctld/slurmd/slurm-client/munge (tools/slurm/install.sh). Targets Slurm 22.05
(Debian 12). Python 3.8, standard library only. tests/launcher/conftest.py loads tools/slurm as a package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, Iterable, List, NamedTuple, Optional

if __package__:
    from . import daemons, network, procs
    from .config import PARTITION, ClusterDir, Node, local_node, pick_ports, short_hostname, write_config
    from .munge import DEFAULT_SOCKET, answers, start_munged
    from .network import Net, NetNode
    from .programs import CLIENTS, ClusterError, install, need, run, slurm_version, which
else:  # run as a script: tools/slurm is sys.path[0]
    import daemons
    import network
    import procs
    from config import PARTITION, ClusterDir, Node, local_node, pick_ports, short_hostname, write_config
    from munge import DEFAULT_SOCKET, answers, start_munged
    from network import Net, NetNode
    from programs import CLIENTS, ClusterError, install, need, run, slurm_version, which

__all__ = ["ClusterError", "client_env", "install", "logs", "main", "network_problem", "node_command", "node_exec",
           "node_pids", "node_states", "restart_slurmd", "running", "set_link", "start", "status", "stop"]

STARTUP_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3  # a port taken by someone else between the pick and the bind: pick again
CANCEL_TIMEOUT_S = 10.0
NETNS_EMPTY_TIMEOUT_S = 10.0
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes
SLURM_DAEMONS = ("slurmctld", "slurmd")
JOB_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")
# slurmctld pings every SlurmdTimeout/3 s and marks a node DOWN once it has not answered for SlurmdTimeout:
# 20 s lets a test see a cut link noticed in well under a minute (the one-node cluster keeps POLICY's 30 s).
MULTI_NODE_SLURMD_TIMEOUT_S = 20


class _Attempt(NamedTuple):
    """One try at bringing slurmctld + the slurmd(s) up on freshly picked ports."""

    ports: Dict[str, int]
    conf_fields: Dict[str, object]  # write_config's env.json fields
    started: Dict[str, subprocess.Popen]
    why: str  # "" when every node came up idle, else why not


def client_env(d: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """An environment for client commands: ``base`` (default os.environ) without the
    SLURM_*/SBATCH_*/SALLOC_*/SRUN_* variables of any enclosing job, plus SLURM_CONF."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if not k.startswith(JOB_ENV_PREFIXES)}
    env["SLURM_CONF"] = ClusterDir.at(d).conf
    return env


def _slurmd_record(node: Optional[str]) -> str:
    """The name of a slurmd's record in DIR/run: "slurmd" on the one-node cluster, else "slurmd-<node>"."""
    return f"slurmd-{node}" if node else "slurmd"


def _slurm_daemons(cdir: ClusterDir) -> List[str]:
    """The records of this dir's Slurm daemons: slurmctld and one slurmd per node of its network, if any."""
    net = network.recorded(cdir)
    return ["slurmctld"] + ([_slurmd_record(n.name) for n in net.nodes] if net else [_slurmd_record(None)])


def running(d: str) -> bool:
    cdir = ClusterDir.at(d)
    return all(daemons.recorded(cdir, name) for name in _slurm_daemons(cdir))


def logs(d: str) -> str:
    """The tail of every daemon log of the cluster in ``d``, for error messages."""
    return daemons.logs_report(ClusterDir.at(d))


def node_states(d: str) -> Dict[str, str]:
    """sinfo's compact state of each node ("idle", "down*", "idle*" = not responding, ...); {} if sinfo fails."""
    try:
        res = run([need("sinfo"), "-h", "-N", "-o", "%N %t"], env=client_env(d), timeout=10)
    except subprocess.TimeoutExpired:
        return {}
    if res.returncode != 0:
        return {}
    pairs = (line.split() for line in res.stdout.decode().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


# ----------------------------------------------------------------------------- start


def _fresh_dirs(cdir: ClusterDir) -> None:
    """A fresh cluster each start: empty state, logs of this run only (spool and munge are kept)."""
    if len(cdir.munge_socket) > MAX_SOCKET_PATH:
        raise ClusterError(f"cluster dir {cdir.path} is too long for unix socket paths: use a shorter one")
    os.makedirs(cdir.path, exist_ok=True)
    shutil.rmtree(cdir.state, ignore_errors=True)
    shutil.rmtree(cdir.log, ignore_errors=True)
    for path in (cdir.state, cdir.spool, cdir.log, cdir.run):
        os.makedirs(path, exist_ok=True)
    for path in (cdir.state, cdir.spool, cdir.run):
        os.chmod(path, 0o755)


def _slurmd_command(cdir: ClusterDir, node: Optional[NetNode]) -> List[str]:
    """The one-node slurmd, or node's slurmd inside its namespaces."""
    if node is None:
        return [need("slurmd"), "-D", "-N", short_hostname(), "-f", cdir.conf]  # local_node's name
    return network.in_node(node, [need("slurmd"), "-D", "-N", node.name, "-f", cdir.conf])


def _spawn_slurmd(cdir: ClusterDir, node: Optional[NetNode], env: Dict[str, str]) -> subprocess.Popen:
    name = _slurmd_record(node.name if node else None)
    proc = daemons.spawn(cdir, name, _slurmd_command(cdir, node), env)
    daemons.record(cdir, name, proc.pid, "slurmd")  # in_node execs, so the PID becomes slurmd's
    return proc


def _spawn_slurm(cdir: ClusterDir, net: Optional[Net], env: Dict[str, str]) -> Dict[str, subprocess.Popen]:
    """slurmctld and each node's slurmd, each recorded in DIR/run for ``stop``."""
    ctld = daemons.spawn(cdir, "slurmctld", [need("slurmctld"), "-D", "-i", "-f", cdir.conf], env)
    daemons.record(cdir, "slurmctld", ctld.pid, "slurmctld")
    started = {"slurmctld": ctld}
    for node in (net.nodes if net else [None]):
        started[_slurmd_record(node.name if node else None)] = _spawn_slurmd(cdir, node, env)
    return started


def _wait_idle(d: str, started: Dict[str, subprocess.Popen], n_nodes: int, timeout: float) -> str:
    """Wait for sinfo to report every node idle: "" then, else why not (a daemon exited, or the timeout)."""
    deadline = time.monotonic() + timeout
    states: Dict[str, str] = {}
    while time.monotonic() < deadline:
        dead = [name for name, proc in started.items() if proc.poll() is not None]
        if dead:
            return f"{', '.join(dead)} exited early"
        states = node_states(d)
        if len(states) == n_nodes and all(s == "idle" for s in states.values()):
            return ""
        time.sleep(0.25)
    shown = ", ".join(f"{k}={v}" for k, v in states.items()) or "none"
    return f"nodes not all idle after {timeout:.0f} s (sinfo states: {shown})"


def _try_start_slurm(cdir: ClusterDir, munge_socket: Optional[str], net: Optional[Net], timeout: float) -> _Attempt:
    ctld_port, slurmd_port = pick_ports(2)
    if net is None:
        conf = write_config(cdir, ctld_port, [local_node(slurmd_port)], munge_socket)
    else:  # every slurmd has its own namespace, so they can all listen on the same port
        nodes = [Node(n.name, n.addr, slurmd_port) for n in net.nodes]
        conf = write_config(cdir, ctld_port, nodes, munge_socket, ctld_addr=net.ctld_addr,
                            slurmd_timeout=MULTI_NODE_SLURMD_TIMEOUT_S, per_node_files=True)
    started = _spawn_slurm(cdir, net, client_env(cdir.path))
    why = _wait_idle(cdir.path, started, len(net.nodes) if net else 1, timeout)
    return _Attempt({"slurmctld": ctld_port, "slurmd": slurmd_port}, conf, started, why)


def _start_slurm(cdir: ClusterDir, munge_socket: Optional[str], net: Optional[Net], timeout: float) -> _Attempt:
    """Up to PORT_ATTEMPTS tries while the logs say a port was taken; ClusterError with the log tails."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        tried = _try_start_slurm(cdir, munge_socket, net, timeout)
        if not tried.why:
            return tried
        daemons.terminate_all(tried.started.values())
        report = daemons.logs_report(cdir)
        if "Address already in use" not in report or attempt == PORT_ATTEMPTS:
            break
        daemons.clear_logs(cdir, tried.started)
        shutil.rmtree(cdir.state, ignore_errors=True)
        os.makedirs(cdir.state, exist_ok=True)
    raise ClusterError(f"Slurm test cluster in {cdir.path} did not come up: {tried.why}\n{report}")


def _make_network(cdir: ClusterDir, n_nodes: int) -> Net:
    """Plan, record (DIR/run/net.json, before anything exists), then create the nodes' network."""
    with network.subnet_lock():
        net = network.plan([f"n{i}" for i in range(1, n_nodes + 1)], short_hostname())
        network.save(cdir, net)
        network.create(net)
    for node in net.nodes:
        os.makedirs(os.path.join(cdir.spool, node.name), mode=0o755, exist_ok=True)
    return net


def _read_env(cdir: ClusterDir) -> Dict[str, object]:
    with open(cdir.env) as f:
        return json.load(f)


def _write_env(cdir: ClusterDir, info: Dict[str, object]) -> None:
    tmp = cdir.env + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, cdir.env)


def _net_fields(net: Net) -> Dict[str, object]:
    return {"nodes": [{"name": n.name, "addr": n.addr, "netns": n.netns} for n in net.nodes],
            "bridge": net.bridge, "ctld_addr": net.ctld_addr, "subnet": net.subnet}


def _stop_after_failed_start(d: str) -> None:
    """munged if we started it, the network if we made (part of) it; the start's error is the one to raise."""
    try:
        stop(d, quiet=True)
    except ClusterError as e:
        print(f"cluster.py: after the failed start: {e}", file=sys.stderr)


def start(d: str, timeout: float = STARTUP_TIMEOUT_S, nodes: Optional[int] = None) -> Dict[str, object]:
    """Start (or find running) the cluster in ``d``; returns what DIR/env.json holds.

    ``nodes=None``: one node, this host. ``nodes=N``: nodes n1..nN, each slurmd in its own network namespace
    (env.json then has "nodes", "bridge", "ctld_addr", "subnet")."""
    if nodes is not None and nodes < 1:
        raise ValueError(f"nodes={nodes}: a cluster needs at least one node (None: the one-node cluster on this host)")
    if os.geteuid() != 0:
        raise ClusterError("the test cluster runs slurmctld/slurmd as root: run as root")
    cdir = ClusterDir.at(d)
    if running(d) and os.path.exists(cdir.env):
        info = _read_env(cdir)
        if (len(info["nodes"]) if "nodes" in info else None) == nodes:  # type: ignore[arg-type]
            return info
    stop(d, quiet=True)  # a cluster of another shape, or leftovers of an earlier, half-started one in this dir
    for name in SLURM_DAEMONS + CLIENTS + (network.PROGRAMS if nodes else ()):
        need(name)
    t0 = time.monotonic()
    _fresh_dirs(cdir)
    try:
        munge_socket = None if answers(None) else start_munged(cdir)  # None: the machine's munged answers
        net = _make_network(cdir, nodes) if nodes else None
        up = _start_slurm(cdir, munge_socket, net, timeout)
    except BaseException:
        _stop_after_failed_start(d)
        raise
    info: Dict[str, object] = {
        "SLURM_CONF": cdir.conf, "partition": PARTITION, "ports": up.ports, "dir": cdir.path,
        "munge_socket": munge_socket or DEFAULT_SOCKET, "started_munged": munge_socket is not None,
        "slurm_version": slurm_version(), "pids": {name: proc.pid for name, proc in up.started.items()},
        "startup_s": round(time.monotonic() - t0, 2),
    }
    info.update(up.conf_fields)
    if net:
        info.update(_net_fields(net))
    _write_env(cdir, info)
    return info


# ----------------------------------------------------------------------------- the nodes of a several-node cluster


def network_problem() -> str:
    """"" when this machine can run a several-node cluster (network namespaces, veth pairs, a bridge, and
    the programs that make and enter them), else why not; makes and removes a probe namespace."""
    return network.usable()


def _net(d: str) -> Net:
    net = network.recorded(ClusterDir.at(d))
    if net is None:
        raise ValueError(f"no several-node cluster in {d} (no run/net.json): start it with nodes=N")
    return net


def node_command(d: str, node: str, argv: List[str]) -> List[str]:
    """``argv`` wrapped to run inside ``node`` (its network namespace, its /etc/hosts and a UTS namespace with
    its hostname, as its slurmd and jobs see them), for subprocess.Popen; the PID becomes ``argv``'s."""
    return network.in_node(_net(d).node(node), argv)


def node_exec(d: str, node: str, argv: List[str], **run_kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, **run_kwargs)`` inside ``node`` (see ``node_command``)."""
    return subprocess.run(node_command(d, node, argv), **run_kwargs)


def node_pids(d: str, node: str) -> List[int]:
    """The PIDs in ``node``'s network namespace: its slurmd, slurmstepds, jobs, node_exec'd commands."""
    return procs.in_netns(network.netns_path(_net(d).node(node)))


def set_link(d: str, node: str, up: bool) -> None:
    """Cut (``up=False``) or restore ``node``'s link to the bridge; its processes keep running.

    Restoring the link of a node slurmctld has already set DOWN does not bring it back soon (Slurm 22.05 does
    not ping DOWN, non-responding nodes; it asks them to register every 20th ping cycle): ``restart_slurmd``
    does, at once."""
    net = _net(d)
    network.set_link(net, net.node(node), up)


def restart_slurmd(d: str, node: str, kill_jobs: bool = False) -> int:
    """Stop ``node``'s slurmd and start it again; returns its new PID. ``kill_jobs``: first end everything in
    the node's namespace (its slurmstepds and their jobs), as a reboot would. Does not wait for the node to
    register: poll ``node_states``."""
    cdir, net = ClusterDir.at(d), _net(d)
    n = net.node(node)
    daemons.terminate_recorded(cdir, _slurmd_record(node))
    if kill_jobs:
        procs.kill_tree(node_pids(d, node))
    proc = _spawn_slurmd(cdir, n, client_env(d))
    if os.path.exists(cdir.env):
        info = _read_env(cdir)
        info.setdefault("pids", {})[_slurmd_record(node)] = proc.pid  # type: ignore[index]
        _write_env(cdir, info)
    return proc.pid


# ----------------------------------------------------------------------------- stop, status


def _jobs_running(squeue: str, env: Dict[str, str]) -> bool:
    res = run([squeue, "-h", "-t", "R,CG", "-o", "%i"], env=env, timeout=10)
    return res.returncode == 0 and bool(res.stdout.strip())


def _cancel_jobs(env: Dict[str, str]) -> None:
    """``scancel --full`` every job, then up to CANCEL_TIMEOUT_S for the running ones to end."""
    squeue, scancel = which("squeue"), which("scancel")
    if not squeue or not scancel:
        return
    try:
        ids = run([squeue, "-h", "-o", "%i"], env=env, timeout=10).stdout.decode().split()
        if ids:
            run([scancel, "--full"] + ids, env=env, timeout=10)
            procs.wait_until(lambda: not _jobs_running(squeue, env), CANCEL_TIMEOUT_S, poll=0.25)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _empty_namespaces(net: Net) -> None:
    """Kill what still runs in the nodes' namespaces (ours: started by our slurmd or node_exec), so the
    namespaces go with their names."""
    for node in net.nodes:  # a node_command Popen of the caller's gets its own exit status (-SIGKILL)
        procs.kill_tree(procs.in_netns(network.netns_path(node)), reap_them=False)
    procs.wait_until(lambda: not any(procs.in_netns(network.netns_path(n)) for n in net.nodes),
                     NETNS_EMPTY_TIMEOUT_S)


def stop(d: str, quiet: bool = False) -> None:
    """Cancel this cluster's jobs, stop its slurmd(s) and slurmctld (and munged if ``start`` started it):
    only the processes recorded in DIR/run, checked against their start time. With nodes, also what runs
    in their namespaces, then the namespaces, links and hosts dirs; ClusterError if any of those remains."""
    cdir = ClusterDir.at(d)
    net = network.recorded(cdir)
    names = _slurm_daemons(cdir)
    if running(d) and os.path.exists(cdir.conf):
        _cancel_jobs(client_env(d))
    # slurmstepds (and the jobs under them) outlive slurmd: end those of this cluster.
    steps = procs.spool_socket_pids(cdir.spool) if os.path.isdir(cdir.spool) else []
    for name in names[1:] + names[:1]:  # slurmd(s), then slurmctld
        daemons.terminate_recorded(cdir, name)
    procs.kill_tree(steps)
    daemons.terminate_recorded(cdir, "munged")
    daemons.forget(cdir, names + ["munged"])
    if net:
        _empty_namespaces(net)
        left = network.destroy(net)
        if left:
            raise ClusterError(f"stopped the cluster in {cdir.path} but could not remove: {', '.join(left)}")
        network.forget(cdir)
    if not quiet:
        print(f"stopped the Slurm test cluster in {cdir.path}")


def _show(cmd: List[str], env: Dict[str, str]) -> int:
    """Run a client command, print its output; its exit status (1 when it cannot run)."""
    try:
        res = run([need(cmd[0])] + cmd[1:], env=env, timeout=15)
    except (subprocess.TimeoutExpired, ClusterError) as e:
        print(f"{cmd[0]}: {e}")
        return 1
    sys.stdout.write(res.stdout.decode() + res.stderr.decode())
    return res.returncode


def status(d: str) -> int:
    cdir = ClusterDir.at(d)
    if not os.path.exists(cdir.conf):
        print(f"no cluster in {cdir.path} (no slurm.conf)")
        return 1
    up = {name: bool(daemons.recorded(cdir, name)) for name in _slurm_daemons(cdir) + ["munged"]}
    print("daemons: " + ", ".join(f"{name}={'up' if ok else 'down'}" for name, ok in up.items()))
    if os.path.exists(cdir.env):
        with open(cdir.env) as f:
            print("env.json: " + f.read().strip())
    rcs = [_show(cmd, client_env(d)) for cmd in (["sinfo", "-N", "-l"] if network.recorded(cdir) else ["sinfo"],
                                                  ["squeue"])]
    return next((rc for rc in rcs if rc), 0)


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status", "install"])
    ap.add_argument("directory", nargs="?", metavar="DIR", help="cluster directory (same as --dir)")
    ap.add_argument("--dir", default=None, help="cluster directory (conf, state, logs)")
    ap.add_argument("--timeout", type=float, default=STARTUP_TIMEOUT_S, help="seconds to wait for the nodes to be idle")
    ap.add_argument("--nodes", type=int, default=None,
                    help="start nodes n1..nN, each in its own network namespace (default: one node, this host)")
    return ap


def _act(args: argparse.Namespace, d: str) -> int:
    if args.action == "start":
        info = start(d, timeout=args.timeout, nodes=args.nodes)
        print(json.dumps(info, indent=2))
        print(f"export SLURM_CONF={info['SLURM_CONF']}")
        return 0
    if args.action == "stop":
        stop(d)
        return 0
    return status(d)


def main(argv: Optional[Iterable[str]] = None) -> int:
    ap = _parser()
    args = ap.parse_args(None if argv is None else list(argv))
    if args.dir and args.directory and os.path.abspath(args.dir) != os.path.abspath(args.directory):
        ap.error(f"two cluster directories: {args.directory} and --dir {args.dir}")
    if args.nodes is not None and args.action != "start":
        ap.error("--nodes is an option of start (stop and status read the dir's record)")
    d = args.dir or args.directory
    try:
        if args.action == "install":
            install()
            return 0
        if not d:
            ap.error("a cluster directory is required: DIR or --dir DIR")
        return _act(args, d)
    except (ClusterError, ValueError) as e:
        print(f"cluster.py {args.action}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
