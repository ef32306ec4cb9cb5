#!/usr/bin/env python3
"""A real one-node Slurm cluster under one directory, for tests and local trials.

Usage:
    python3 tools/slurm/cluster.py start  --dir DIR   # write DIR/slurm.conf, start daemons (or: start DIR)
    python3 tools/slurm/cluster.py status --dir DIR   # daemons, env.json, sinfo + squeue
    python3 tools/slurm/cluster.py stop   --dir DIR   # cancel jobs, stop what start started
    python3 tools/slurm/cluster.py install            # tools/slurm/install.sh

    info = start("/tmp/c"); ...; stop("/tmp/c")       # info: a dict, as in DIR/env.json

Point client commands (sbatch, squeue, scontrol, scancel, submitit) at the cluster with
``SLURM_CONF=DIR/slurm.conf`` (also in DIR/env.json); ``client_env(DIR)`` is such an environment. Everything
the daemons write (state, spool, logs, pid files, the munge socket when it has to start munged) lives under
DIR, on free ports (config.py), so a cluster already running on the machine is left alone. ``stop`` ends only
what ``start`` recorded in DIR/run (daemons.py), so it works from another process, e.g. the CLI.

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
    from . import daemons, procs
    from .config import PARTITION, ClusterDir, Node, local_node, pick_ports, write_config
    from .munge import DEFAULT_SOCKET, answers, start_munged
    from .programs import CLIENTS, ClusterError, install, need, run, slurm_version, which
else:  # run as a script: tools/slurm is sys.path[0]
    import daemons
    import procs
    from config import PARTITION, ClusterDir, Node, local_node, pick_ports, write_config
    from munge import DEFAULT_SOCKET, answers, start_munged
    from programs import CLIENTS, ClusterError, install, need, run, slurm_version, which

__all__ = ["ClusterError", "client_env", "install", "logs", "main", "running", "start", "status", "stop"]

STARTUP_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3  # a port taken by someone else between the pick and the bind: pick again
CANCEL_TIMEOUT_S = 10.0
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes
SLURM_DAEMONS = ("slurmctld", "slurmd")
JOB_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")


class _Attempt(NamedTuple):
    """One try at bringing slurmctld + slurmd up on freshly picked ports."""

    ports: Dict[str, int]
    conf_fields: Dict[str, object]  # write_config's env.json fields
    started: Dict[str, subprocess.Popen]
    why: str  # "" when the node came up idle, else why not


def client_env(d: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """An environment for client commands: ``base`` (default os.environ) without the
    SLURM_*/SBATCH_*/SALLOC_*/SRUN_* variables of any enclosing job, plus SLURM_CONF."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if not k.startswith(JOB_ENV_PREFIXES)}
    env["SLURM_CONF"] = ClusterDir.at(d).conf
    return env


def running(d: str) -> bool:
    cdir = ClusterDir.at(d)
    return all(daemons.recorded(cdir, name) for name in SLURM_DAEMONS)


def logs(d: str) -> str:
    """The tail of every daemon log of the cluster in ``d``, for error messages."""
    return daemons.logs_report(ClusterDir.at(d))


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


def _node_state(env: Dict[str, str]) -> str:
    try:
        res = run([need("sinfo"), "-h", "-N", "-o", "%t"], env=env, timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return res.stdout.decode().strip() if res.returncode == 0 else ""


def _spawn_slurm(cdir: ClusterDir, node: Node, env: Dict[str, str]) -> Dict[str, subprocess.Popen]:
    """slurmctld and the node's slurmd, each recorded in DIR/run for ``stop``."""
    commands = {
        "slurmctld": [need("slurmctld"), "-D", "-i", "-f", cdir.conf],
        "slurmd": [need("slurmd"), "-D", "-N", node.name, "-f", cdir.conf],
    }
    started = {name: daemons.spawn(cdir, name, cmd, env) for name, cmd in commands.items()}
    for name, proc in started.items():
        daemons.record(cdir, name, proc.pid, name)
    return started


def _wait_idle(started: Dict[str, subprocess.Popen], env: Dict[str, str], timeout: float) -> str:
    """Wait for sinfo to report the node idle: "" then, else why not (a daemon exited, or the timeout)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        dead = [name for name, proc in started.items() if proc.poll() is not None]
        if dead:
            return f"{', '.join(dead)} exited early"
        state = _node_state(env)
        if state == "idle":
            return ""
        time.sleep(0.25)
    return f"node not idle after {timeout:.0f} s (sinfo state: {state or 'none'})"


def _try_start_slurm(cdir: ClusterDir, munge_socket: Optional[str], timeout: float) -> _Attempt:
    ctld_port, slurmd_port = pick_ports(2)
    node = local_node(slurmd_port)
    conf = write_config(cdir, ctld_port, [node], munge_socket)
    env = client_env(cdir.path)
    started = _spawn_slurm(cdir, node, env)
    why = _wait_idle(started, env, timeout)
    return _Attempt({"slurmctld": ctld_port, "slurmd": slurmd_port}, conf, started, why)


def _start_slurm(cdir: ClusterDir, munge_socket: Optional[str], timeout: float) -> _Attempt:
    """Up to PORT_ATTEMPTS tries while the logs say a port was taken; ClusterError with the log tails."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        tried = _try_start_slurm(cdir, munge_socket, timeout)
        if not tried.why:
            return tried
        daemons.terminate_all(tried.started.values())
        report = daemons.logs_report(cdir)
        if "Address already in use" not in report or attempt == PORT_ATTEMPTS:
            break
        daemons.clear_logs(cdir, SLURM_DAEMONS)
        shutil.rmtree(cdir.state, ignore_errors=True)
        os.makedirs(cdir.state, exist_ok=True)
    raise ClusterError(f"Slurm test cluster in {cdir.path} did not come up: {tried.why}\n{report}")


def _read_env(cdir: ClusterDir) -> Dict[str, object]:
    with open(cdir.env) as f:
        return json.load(f)


def start(d: str, timeout: float = STARTUP_TIMEOUT_S) -> Dict[str, object]:
    """Start (or find running) the cluster in ``d``; returns what DIR/env.json holds."""
    if os.geteuid() != 0:
        raise ClusterError("the test cluster runs slurmctld/slurmd as root: run as root")
    cdir = ClusterDir.at(d)
    if running(d) and os.path.exists(cdir.env):
        return _read_env(cdir)
    stop(d, quiet=True)  # leftovers of an earlier, half-started cluster in this dir
    for name in SLURM_DAEMONS + CLIENTS:
        need(name)
    t0 = time.monotonic()
    _fresh_dirs(cdir)
    munge_socket = None if answers(None) else start_munged(cdir)  # None: the machine's munged answers
    try:
        up = _start_slurm(cdir, munge_socket, timeout)
    except ClusterError:
        daemons.terminate_recorded(cdir, "munged")  # only there when we started it
        raise
    info: Dict[str, object] = {
        "SLURM_CONF": cdir.conf, "partition": PARTITION, "ports": up.ports, "dir": cdir.path,
        "munge_socket": munge_socket or DEFAULT_SOCKET, "started_munged": munge_socket is not None,
        "slurm_version": slurm_version(), "pids": {name: proc.pid for name, proc in up.started.items()},
        "startup_s": round(time.monotonic() - t0, 2),
    }
    info.update(up.conf_fields)
    with open(cdir.env, "w") as f:
        json.dump(info, f, indent=2)
    return info


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


def stop(d: str, quiet: bool = False) -> None:
    """Cancel this cluster's jobs, stop its slurmd and slurmctld (and munged if ``start``
    started it): only the processes recorded in DIR/run, checked against their start time."""
    cdir = ClusterDir.at(d)
    if running(d) and os.path.exists(cdir.conf):
        _cancel_jobs(client_env(d))
    # slurmstepds (and the jobs under them) outlive slurmd: end those of this cluster.
    steps = procs.spool_socket_pids(cdir.spool) if os.path.isdir(cdir.spool) else []
    for name in ("slurmd", "slurmctld"):
        daemons.terminate_recorded(cdir, name)
    procs.kill_tree(steps)
    daemons.terminate_recorded(cdir, "munged")
    daemons.forget(cdir, daemons.DAEMONS)
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
    up = {name: bool(daemons.recorded(cdir, name)) for name in daemons.DAEMONS}
    print("daemons: " + ", ".join(f"{name}={'up' if ok else 'down'}" for name, ok in up.items()))
    if os.path.exists(cdir.env):
        with open(cdir.env) as f:
            print("env.json: " + f.read().strip())
    rcs = [_show(cmd, client_env(d)) for cmd in (["sinfo"], ["squeue"])]
    return next((rc for rc in rcs if rc), 0)


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status", "install"])
    ap.add_argument("directory", nargs="?", metavar="DIR", help="cluster directory (same as --dir)")
    ap.add_argument("--dir", default=None, help="cluster directory (conf, state, logs)")
    ap.add_argument("--timeout", type=float, default=STARTUP_TIMEOUT_S, help="seconds to wait for the node to be idle")
    return ap


def _act(action: str, d: str, timeout: float) -> int:
    if action == "start":
        info = start(d, timeout=timeout)
        print(json.dumps(info, indent=2))
        print(f"export SLURM_CONF={info['SLURM_CONF']}")
        return 0
    if action == "stop":
        stop(d)
        return 0
    return status(d)


def main(argv: Optional[Iterable[str]] = None) -> int:
    ap = _parser()
    args = ap.parse_args(None if argv is None else list(argv))
    if args.dir and args.directory and os.path.abspath(args.dir) != os.path.abspath(args.directory):
        ap.error(f"two cluster directories: {args.directory} and --dir {args.dir}")
    d = args.dir or args.directory
    try:
        if args.action == "install":
            install()
            return 0
        if not d:
            ap.error("a cluster directory is required: DIR or --dir DIR")
        return _act(args.action, d, args.timeout)
    except ClusterError as e:
        print(f"cluster.py {args.action}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
