"""The cluster's daemons as processes: spawn one, record it, find it again, end it, show its logs.

Usage:
    proc = spawn(cdir, "slurmd", [slurmd, "-D", "-f", cdir.conf], env)    # output in log/slurmd.out
    record(cdir, "slurmd", proc.pid, marker="slurmd")                      # run/slurmd.json
    recorded(cdir, "slurmd")      # the record while it is still that process (PID, start time, cmdline)
    terminate_recorded(cdir, "slurmd"); forget(cdir, DAEMONS)
    logs_report(cdir)             # the tail of every log, for error messages

``stop`` may run in another process than ``start`` (the CLI), so what start started is written to
DIR/run/<name>.json; a record only counts while its PID still runs the same program started at the same time.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Dict, Iterable, List, Optional

if __package__:
    from . import procs
    from .config import ClusterDir
else:  # cluster.py run as a script: tools/slurm is sys.path[0]
    import procs
    from config import ClusterDir

DAEMONS = ("slurmctld", "slurmd", "munged")
TAIL_BYTES = 64 * 1024


def spawn(cdir: ClusterDir, name: str, cmd: List[str], env: Dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so a test's Ctrl-C does not reach it), output to log/<name>.out."""
    out = open(cdir.log_file(f"{name}.out"), "ab")
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=cdir.path, start_new_session=True, close_fds=True)
    finally:
        out.close()


def record(cdir: ClusterDir, name: str, pid: int, marker: str) -> None:
    """Remember ``pid`` as ``name``; ``marker`` must appear in its command line for the record to count."""
    rec = {"pid": pid, "start": procs.start_time(pid), "marker": marker}
    with open(cdir.run_file(f"{name}.json"), "w") as f:
        json.dump(rec, f)


def recorded(cdir: ClusterDir, name: str) -> Optional[dict]:
    """The process ``start`` recorded as ``name``, if it is still that same process."""
    try:
        with open(cdir.run_file(f"{name}.json")) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    pid = int(rec.get("pid", 0))
    if pid <= 0 or not procs.alive(pid):
        return None
    if rec.get("start") and procs.start_time(pid) != rec["start"]:
        return None  # the PID was reused by something else
    if rec.get("marker") and rec["marker"] not in procs.cmdline(pid):
        return None
    return rec


def terminate_recorded(cdir: ClusterDir, name: str) -> None:
    rec = recorded(cdir, name)
    if rec:
        procs.terminate(int(rec["pid"]))


def terminate_all(running: Iterable[subprocess.Popen]) -> None:
    for proc in running:
        if proc.poll() is None:
            procs.terminate(proc.pid)


def forget(cdir: ClusterDir, names: Iterable[str]) -> None:
    for name in names:
        try:
            os.unlink(cdir.run_file(f"{name}.json"))
        except OSError:
            pass


def tail(path: str, n: int = 25) -> str:
    """The last ``n`` lines of ``path``, indented; a missing file says so instead of raising."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return f"  (no {path}: {e.strerror})"
    return "\n".join("  " + line for line in lines[-n:]) or "  (empty)"


def logs_report(cdir: ClusterDir) -> str:
    if not os.path.isdir(cdir.log):
        return ""
    paths = [cdir.log_file(name) for name in sorted(os.listdir(cdir.log))]
    return "\n".join(f"--- {path} (tail)\n{tail(path)}" for path in paths)


def clear_logs(cdir: ClusterDir, names: Iterable[str]) -> None:
    """Remove log/<name>.log and .out, so a retry's report shows only the retry."""
    for name in names:
        for suffix in (".log", ".out"):
            try:
                os.unlink(cdir.log_file(name + suffix))
            except OSError:
                pass
