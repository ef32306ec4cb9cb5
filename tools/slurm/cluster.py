#!/usr/bin/env python3
"""A real one-node Slurm cluster under one directory, for tests and local trials.

    python tools/slurm/cluster.py start  --dir DIR   # write DIR/slurm.conf, start daemons
    python tools/slurm/cluster.py status --dir DIR   # sinfo + squeue
    python tools/slurm/cluster.py stop   --dir DIR   # cancel jobs, stop what start started

Point client commands (sbatch, squeue, scontrol, scancel, submitit) at the cluster with
``SLURM_CONF=DIR/slurm.conf`` (also in DIR/env.json). Everything the daemons write (state,
spool, logs, pid files, munge socket when it has to start munged) lives under DIR, and the
controller and slurmd listen on free ports in 20000-30000, so a cluster already running on
the machine (default ports 6817/6818, /etc/slurm) is left alone.

Needs root and Debian's slurmctld/slurmd/slurm-client/munge (tools/slurm/install.sh).
Targets Slurm 22.05 (Debian 12). Python 3.8, standard library only; importable:

    from cluster import start, stop      # with tools/slurm on sys.path
    info = start("/tmp/c")                # dict, as in DIR/env.json
    stop("/tmp/c")
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_SH = os.path.join(HERE, "install.sh")
PARTITION = "debug"
PORT_RANGE = (20000, 30000)
DEFAULT_MUNGE_SOCKET = "/run/munge/munge.socket.2"
STARTUP_TIMEOUT_S = 60.0
CRED_EXPIRE_S = 10
DAEMONS = ("slurmctld", "slurmd", "munged")


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message says why (with log tails)."""


# ----------------------------------------------------------------------------- helpers


def _which(name: str) -> Optional[str]:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _need(name: str) -> str:
    path = _which(name)
    if not path:
        raise ClusterError(f"'{name}' not found: run tools/slurm/install.sh (as root) first")
    return path


def _paths(d: str) -> Dict[str, str]:
    d = os.path.abspath(d)
    return {
        "dir": d,
        "conf": os.path.join(d, "slurm.conf"),
        "plugstack": os.path.join(d, "plugstack.conf"),
        "env": os.path.join(d, "env.json"),
        "state": os.path.join(d, "state"),
        "spool": os.path.join(d, "spool"),
        "log": os.path.join(d, "log"),
        "run": os.path.join(d, "run"),
        "munge": os.path.join(d, "munge"),
        "munge_socket": os.path.join(d, "munge", "munge.socket.2"),
        "munge_key": os.path.join(d, "munge", "munge.key"),
    }


def client_env(d: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """An environment for client commands: ``base`` (default os.environ) without the
    SLURM_*/SBATCH_*/SALLOC_*/SRUN_* variables of any enclosing job, plus SLURM_CONF."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))}
    env["SLURM_CONF"] = _paths(d)["conf"]
    return env


def _run(cmd: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 30.0,
         input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return f"  (no {path}: {e.strerror})"
    return "\n".join("  " + line for line in lines[-n:]) or "  (empty)"


def _logs_report(p: Dict[str, str]) -> str:
    out = []
    if os.path.isdir(p["log"]):
        for name in sorted(os.listdir(p["log"])):
            path = os.path.join(p["log"], name)
            out.append(f"--- {path} (tail)\n{_tail(path)}")
    return "\n".join(out)


def _port_free(port: int) -> bool:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET, "127.0.0.1")):
        s = socket.socket(fam, socket.SOCK_STREAM)
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
    for _ in range(500):
        port = rng.randrange(lo, hi)
        if port in chosen or port in (6817, 6818, 6819):
            continue
        if _port_free(port):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise ClusterError(f"no {n} free TCP ports found in {lo}-{hi}")


def _proc_start_time(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22 (starttime), after the ")" that closes the command name.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped yet) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rfind(")") + 2:].split()[0] != "Z"
    except OSError:
        return False


def _record_pid(p: Dict[str, str], name: str, pid: int, marker: str) -> None:
    rec = {"pid": pid, "start": _proc_start_time(pid), "marker": marker}
    with open(os.path.join(p["run"], f"{name}.json"), "w") as f:
        json.dump(rec, f)


def _recorded(p: Dict[str, str], name: str) -> Optional[dict]:
    """The process ``start`` recorded as ``name``, if it is still that same process."""
    try:
        with open(os.path.join(p["run"], f"{name}.json")) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    pid = int(rec.get("pid", 0))
    if pid <= 0 or not _alive(pid):
        return None
    if rec.get("start") and _proc_start_time(pid) != rec["start"]:
        return None  # the PID was reused by something else
    if rec.get("marker") and rec["marker"] not in _proc_cmdline(pid):
        return None
    return rec


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pid)
        if not _alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def _spawn(p: Dict[str, str], name: str, cmd: List[str], env: Dict[str, str]) -> subprocess.Popen:
    out = open(os.path.join(p["log"], f"{name}.out"), "ab")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=p["dir"], start_new_session=True, close_fds=True)
    finally:
        out.close()
    return proc


# ----------------------------------------------------------------------------- munge


def _munge_ok(sock: Optional[str]) -> bool:
    munge, unmunge = _which("munge"), _which("unmunge")
    if not munge or not unmunge:
        return False
    extra = ["-S", sock] if sock else []
    try:
        cred = _run([munge, "-n"] + extra, timeout=10)
        if cred.returncode != 0 or not cred.stdout:
            return False
        back = _run([unmunge] + extra, input=cred.stdout, timeout=10)
        return back.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_munged(p: Dict[str, str]) -> None:
    munged = _need("munged")
    os.makedirs(p["munge"], exist_ok=True)
    os.chmod(p["munge"], 0o700)
    # munged running as root wants a key owned by root: copy the system key (same secret,
    # so credentials interoperate with the host's munge) or make a fresh one.
    if not os.path.exists(p["munge_key"]):
        system_key = "/etc/munge/munge.key"
        fd = os.open(p["munge_key"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            try:
                with open(system_key, "rb") as k:
                    f.write(k.read())
            except OSError:
                f.write(os.urandom(128))
    for stale in (p["munge_socket"], p["munge_socket"] + ".lock"):
        if os.path.exists(stale):
            os.unlink(stale)
    cmd = [munged, "--foreground", "--force",  # --force: our socket dir is root-only (0700)
           f"--socket={p['munge_socket']}", f"--key-file={p['munge_key']}",
           f"--pid-file={os.path.join(p['run'], 'munged.pid')}",
           f"--log-file={os.path.join(p['log'], 'munged.log')}",
           f"--seed-file={os.path.join(p['munge'], 'munged.seed')}"]
    proc = _spawn(p, "munged", cmd, dict(os.environ))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(p["munge_socket"]) and _munge_ok(p["munge_socket"]):
            _record_pid(p, "munged", proc.pid, p["munge_socket"])
            return
        time.sleep(0.1)
    if proc.poll() is None:
        _terminate(proc.pid)
    raise ClusterError("munged did not start:\n" + _logs_report(p))


# ----------------------------------------------------------------------------- config


def slurm_version() -> str:
    exe = _which("slurmctld") or _which("sbatch")
    if not exe:
        return "unknown"
    try:
        out = _run([exe, "-V"], timeout=10).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.split()[-1] if out else "unknown"


def _node_hardware() -> Dict[str, int]:
    """CPU topology and memory (MB) of this machine, as slurmd reports them."""
    hw: Dict[str, int] = {}
    slurmd = _which("slurmd")
    if slurmd:
        try:
            out = _run([slurmd, "-C"], timeout=20).stdout.decode()
            for tok in out.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    if v.isdigit():
                        hw[k] = int(v)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if "CPUs" not in hw:
        hw = {"CPUs": os.cpu_count() or 1}
    if "RealMemory" not in hw:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    hw["RealMemory"] = int(line.split()[1]) // 1024
    return hw


def write_config(d: str, ctld_port: int, slurmd_port: int, munge_socket: Optional[str],
                 cluster_name: Optional[str] = None) -> Dict[str, object]:
    p = _paths(d)
    host = socket.gethostname().split(".")[0]
    hw = _node_hardware()
    mem = max(64, int(hw["RealMemory"] * 0.9))
    topo = ["CPUs=%d" % hw["CPUs"]]
    for key in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
        if key in hw:
            topo.append(f"{key}={hw[key]}")
    cluster_name = cluster_name or "hmkd%06x" % random.randrange(16 ** 6)
    lines = [
        "# One-node test cluster written by tools/slurm/cluster.py (Slurm 22.05 options).",
        f"ClusterName={cluster_name}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
    ]
    # cred_expire also sets how long a requeued job waits before it may start again
    # (default 120 s); 10 s keeps requeue tests short.
    auth_info = [f"socket={munge_socket}"] if munge_socket else []
    lines.append("AuthInfo=" + ",".join(auth_info + [f"cred_expire={CRED_EXPIRE_S}"]))
    lines += [
        f"StateSaveLocation={p['state']}",
        f"SlurmdSpoolDir={p['spool']}",
        f"SlurmctldPidFile={os.path.join(p['run'], 'slurmctld.pid')}",
        f"SlurmdPidFile={os.path.join(p['run'], 'slurmd.pid')}",
        f"SlurmctldLogFile={os.path.join(p['log'], 'slurmctld.log')}",
        f"SlurmdLogFile={os.path.join(p['log'], 'slurmd.log')}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "MailProg=/bin/true",
        f"PlugStackConfig={p['plugstack']}",
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
        f"NodeName={host} NodeAddr=127.0.0.1 {' '.join(topo)} RealMemory={mem} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
    ]
    with open(p["conf"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(p["plugstack"], "w") as f:
        f.write("# no SPANK plugins in the test cluster\n")
    return {"cluster_name": cluster_name, "node": host, "cpus": hw["CPUs"], "real_memory_mb": mem}


# ----------------------------------------------------------------------------- lifecycle


def install() -> None:
    """Run tools/slurm/install.sh (no-op when the binaries are there). Raises ClusterError."""
    res = subprocess.run(["bash", INSTALL_SH], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise ClusterError(f"{INSTALL_SH} failed (rc={res.returncode}):\n"
                           + res.stdout.decode("utf-8", "replace"))


def _node_state(env: Dict[str, str]) -> str:
    try:
        res = _run([_need("sinfo"), "-h", "-N", "-o", "%t"], env=env, timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return res.stdout.decode().strip() if res.returncode == 0 else ""


def running(d: str) -> bool:
    p = _paths(d)
    return bool(_recorded(p, "slurmctld") and _recorded(p, "slurmd"))


def start(d: str, timeout: float = STARTUP_TIMEOUT_S) -> Dict[str, object]:
    """Start (or find running) the cluster in ``d``; returns what DIR/env.json holds."""
    if os.geteuid() != 0:
        raise ClusterError("the test cluster runs slurmctld/slurmd as root: run as root")
    p = _paths(d)
    if running(d) and os.path.exists(p["env"]):
        with open(p["env"]) as f:
            return json.load(f)
    stop(d, quiet=True)  # leftovers of an earlier, half-started cluster in this dir
    slurmctld, slurmd = _need("slurmctld"), _need("slurmd")
    for name in ("sinfo", "sbatch", "squeue", "scontrol", "scancel"):
        _need(name)
    t0 = time.monotonic()
    os.makedirs(p["dir"], exist_ok=True)
    # A fresh cluster each start: new name, empty state, logs of this run only.
    shutil.rmtree(p["state"], ignore_errors=True)
    shutil.rmtree(p["log"], ignore_errors=True)
    if len(p["munge_socket"]) > 100:
        raise ClusterError(f"cluster dir {p['dir']} is too long for unix socket paths: "
                           "use a shorter one")
    for key in ("state", "spool", "log", "run"):
        os.makedirs(p[key], exist_ok=True)
    for key in ("state", "spool", "run"):
        os.chmod(p[key], 0o755)

    started_munged = False
    if _munge_ok(None):
        munge_socket = None  # the machine's munged answers on the default socket
    else:
        _start_munged(p)
        munge_socket = p["munge_socket"]
        started_munged = True

    last_err = ""
    for attempt in range(3):  # a port taken between the pick and the bind: pick again
        ctld_port, slurmd_port = pick_ports(2)
        info = write_config(d, ctld_port, slurmd_port, munge_socket)
        env = client_env(d)
        procs = {
            "slurmctld": _spawn(p, "slurmctld", [slurmctld, "-D", "-i", "-f", p["conf"]], env),
            "slurmd": _spawn(p, "slurmd", [slurmd, "-D", "-f", p["conf"]], env),
        }
        for name, proc in procs.items():
            _record_pid(p, name, proc.pid, name)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            dead = [n for n, pr in procs.items() if pr.poll() is not None]
            if dead:
                last_err = f"{', '.join(dead)} exited early"
                break
            state = _node_state(env)
            if state == "idle":
                break
            time.sleep(0.25)
        if state == "idle":
            result: Dict[str, object] = {
                "SLURM_CONF": p["conf"],
                "partition": PARTITION,
                "ports": {"slurmctld": ctld_port, "slurmd": slurmd_port},
                "dir": p["dir"],
                "munge_socket": munge_socket or DEFAULT_MUNGE_SOCKET,
                "started_munged": started_munged,
                "slurm_version": slurm_version(),
                "pids": {n: pr.pid for n, pr in procs.items()},
                "startup_s": round(time.monotonic() - t0, 2),
            }
            result.update(info)
            with open(p["env"], "w") as f:
                json.dump(result, f, indent=2)
            return result
        if not last_err:
            last_err = f"node not idle after {timeout:.0f} s (sinfo state: {state or 'none'})"
        report = _logs_report(p)
        for proc in procs.values():
            if proc.poll() is None:
                _terminate(proc.pid)
        address_in_use = "Address already in use" in report
        if not address_in_use or attempt == 2:
            break
        for name in ("slurmctld", "slurmd"):
            for suffix in (".log", ".out"):
                try:
                    os.unlink(os.path.join(p["log"], name + suffix))
                except OSError:
                    pass
        shutil.rmtree(p["state"], ignore_errors=True)
        os.makedirs(p["state"], exist_ok=True)
    report = _logs_report(p)
    if started_munged:
        rec = _recorded(p, "munged")
        if rec:
            _terminate(int(rec["pid"]))
    raise ClusterError(f"Slurm test cluster in {p['dir']} did not come up: {last_err}\n{report}")


def _spool_socket_pids(spool: str) -> List[int]:
    """PIDs holding unix sockets under our SlurmdSpoolDir: this cluster's slurmstepds."""
    inodes = set()
    try:
        with open("/proc/net/unix") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7].startswith(spool.rstrip("/") + "/"):
                    inodes.add(parts[6])
    except OSError:
        return []
    if not inodes:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.append(int(entry))
                    break
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


def _descendants(pids: List[int]) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: List[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def stop(d: str, quiet: bool = False) -> None:
    """Cancel this cluster's jobs, stop its slurmd and slurmctld (and munged if ``start``
    started it): only the processes recorded in DIR/run, checked against their start time."""
    p = _paths(d)
    ctld, slurmd_rec = _recorded(p, "slurmctld"), _recorded(p, "slurmd")
    if ctld and slurmd_rec and os.path.exists(p["conf"]):
        env = client_env(d)
        scancel = _which("scancel")
        squeue = _which("squeue")
        try:
            ids = _run([squeue, "-h", "-o", "%i"], env=env, timeout=10).stdout.decode().split()
            if ids and scancel:
                _run([scancel, "--full"] + ids, env=env, timeout=10)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    res = _run([squeue, "-h", "-t", "R,CG", "-o", "%i"], env=env, timeout=10)
                    if res.returncode != 0 or not res.stdout.strip():
                        break
                    time.sleep(0.25)
        except (OSError, subprocess.TimeoutExpired, TypeError):
            pass
    # slurmstepds (and the jobs under them) outlive slurmd: end those of this cluster.
    steps = _spool_socket_pids(p["spool"]) if os.path.isdir(p["spool"]) else []
    for name in ("slurmd", "slurmctld"):
        rec = _recorded(p, name)
        if rec:
            _terminate(int(rec["pid"]))
    leftovers = steps + _descendants(steps)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in leftovers:
        _reap(pid)
    rec = _recorded(p, "munged")
    if rec:
        _terminate(int(rec["pid"]))
    for name in DAEMONS:
        try:
            os.unlink(os.path.join(p["run"], f"{name}.json"))
        except OSError:
            pass
    if not quiet:
        print(f"stopped the Slurm test cluster in {p['dir']}")


def status(d: str) -> int:
    p = _paths(d)
    if not os.path.exists(p["conf"]):
        print(f"no cluster in {p['dir']} (no slurm.conf)")
        return 1
    env = client_env(d)
    alive = {n: bool(_recorded(p, n)) for n in DAEMONS}
    print("daemons: " + ", ".join(f"{n}={'up' if up else 'down'}" for n, up in alive.items()))
    if os.path.exists(p["env"]):
        with open(p["env"]) as f:
            print("env.json: " + f.read().strip())
    rc = 0
    for cmd in (["sinfo"], ["squeue"]):
        try:
            res = _run([_need(cmd[0])] + cmd[1:], env=env, timeout=15)
        except (subprocess.TimeoutExpired, ClusterError) as e:
            print(f"{cmd[0]}: {e}")
            rc = 1
            continue
        sys.stdout.write(res.stdout.decode() + res.stderr.decode())
        rc = rc or res.returncode
    return rc


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status", "install"])
    ap.add_argument("--dir", default=None, help="cluster directory (conf, state, logs)")
    ap.add_argument("--timeout", type=float, default=STARTUP_TIMEOUT_S,
                    help="seconds to wait for the node to be idle")
    args = ap.parse_args(argv)
    try:
        if args.action == "install":
            install()
            return 0
        if not args.dir:
            ap.error("--dir is required")
        if args.action == "start":
            info = start(args.dir, timeout=args.timeout)
            print(json.dumps(info, indent=2))
            print(f"export SLURM_CONF={info['SLURM_CONF']}")
            return 0
        if args.action == "stop":
            stop(args.dir)
            return 0
        return status(args.dir)
    except ClusterError as e:
        print(f"cluster.py {args.action}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
