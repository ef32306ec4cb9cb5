"""Processes by PID, read from /proc: is it still the one we started, end it, find what jobs left behind.

Usage:
    rec = {"pid": pid, "start": start_time(pid)}; ... start_time(pid) == rec["start"]   # not a reused PID
    terminate(pid)                                  # SIGTERM, then SIGKILL after the timeout; reaps
    kill_tree(spool_socket_pids("/tmp/c/spool"))    # slurmstepds of this cluster (any network namespace)
    in_netns("/run/netns/hmkd3fa2c1n1")              # the PIDs in one network namespace

Stopping must never touch a process that is not this cluster's, hence the start-time and spool checks.
/proc/net/unix lists only the sockets of the reader's network namespace, so the spool check reads one
/proc/PID/net/unix per namespace: a slurmd in a node's namespace keeps its slurmstepds there.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple


def wait_until(ready: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Call ``ready`` every ``poll`` s until it is true (True) or ``timeout`` s have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(poll)
    return False


def _stat_fields(pid: int) -> Optional[List[str]]:
    """/proc/PID/stat from field 3 (state) on, after the ")" that closes the command name."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def start_time(pid: int) -> Optional[str]:
    """Field 22 (starttime, clock ticks since boot): with the PID, it names one process for good."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running; a zombie (exited, not reaped yet) is not alive for our purposes."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child (no-op otherwise)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except OSError:  # ChildProcessError included: not our child
        pass


def _gone(pid: int) -> bool:
    reap(pid)
    return not alive(pid)


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, up to ``timeout`` s to exit, then SIGKILL and up to 5 s more."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: _gone(pid), wait):
            return


def _unix_socket_inodes(prefix: str, table: str = "/proc/net/unix") -> Set[str]:
    """Inodes of the unix sockets bound under ``prefix`` (from ``table``, a /proc/.../net/unix)."""
    inodes = set()
    try:
        with open(table) as f:
            next(f, None)
            for parts in (line.split() for line in f):
                if len(parts) >= 8 and parts[7].startswith(prefix):
                    inodes.add(parts[6])
    except OSError:
        pass
    return inodes


def _pids() -> List[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _holds_socket(pid: int, inodes: Set[str]) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith("socket:[") and link[8:-1] in inodes for link in links)


def _netns_id(pid: int) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _one_pid_per_netns() -> List[int]:
    seen: Dict[Tuple[int, int], int] = {}
    for pid in _pids():
        ns = _netns_id(pid)
        if ns is not None:
            seen.setdefault(ns, pid)
    return list(seen.values())


def in_netns(ns_path: str) -> List[int]:
    """PIDs whose network namespace is the one bound at ``ns_path`` (e.g. /run/netns/NAME); [] if none is."""
    try:
        st = os.stat(ns_path)
    except OSError:
        return []
    return [pid for pid in _pids() if pid != os.getpid() and _netns_id(pid) == (st.st_dev, st.st_ino)]


def spool_socket_pids(spool: str) -> List[int]:
    """PIDs holding unix sockets under our SlurmdSpoolDir (and the per-node dirs under it), in every network
    namespace: this cluster's slurmstepds."""
    prefix = spool.rstrip("/") + "/"
    inodes: Set[str] = set()
    for pid in _one_pid_per_netns():  # socket inodes are unique machine-wide
        inodes |= _unix_socket_inodes(prefix, f"/proc/{pid}/net/unix")
    if not inodes:
        return []
    return [pid for pid in _pids() if pid != os.getpid() and _holds_socket(pid, inodes)]


def _children_map() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        try:
            ppid = int(fields[1]) if fields else None
        except (ValueError, IndexError):
            ppid = None
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    return children


def descendants(pids: Iterable[int]) -> List[int]:
    children = _children_map()
    out: List[int] = []
    todo = list(pids)
    while todo:
        new = [c for c in children.get(todo.pop(), []) if c not in out]
        out += new
        todo += new
    return out


def kill_tree(pids: List[int], reap_them: bool = True) -> None:
    """SIGKILL ``pids`` and all their descendants (jobs outlive slurmd under their slurmstepd). ``reap_them``:
    collect the exit status of those that are our children; False leaves it to their Popen, if any."""
    everyone = pids + descendants(pids)
    for pid in everyone:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in everyone if reap_them else []:
        reap(pid)
