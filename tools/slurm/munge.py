"""Munge for the test cluster: the machine's own munged when it answers, else a private one under DIR/munge.

Usage:
    socket = None if answers(None) else start_munged(cdir)    # None: the default socket works
    ...  terminate_recorded(cdir, "munged") when ``start_munged`` was needed (cluster.stop does it)

slurmctld and slurmd authenticate every message with munge; a container usually has munge installed but
not running, and the private one must not disturb a host munged (own socket, key, pid, log and seed files).
"""

from __future__ import annotations

import os
import subprocess
from typing import List, Optional

if __package__:
    from . import daemons, procs
    from .config import ClusterDir
    from .programs import ClusterError, need, run, which
else:  # cluster.py run as a script: tools/slurm is sys.path[0]
    import daemons
    import procs
    from config import ClusterDir
    from programs import ClusterError, need, run, which

DEFAULT_SOCKET = "/run/munge/munge.socket.2"
SYSTEM_KEY = "/etc/munge/munge.key"
STARTUP_TIMEOUT_S = 15.0


def answers(sock: Optional[str]) -> bool:
    """A credential made on ``sock`` (None: the default socket) decodes again: munged is up and usable."""
    munge, unmunge = which("munge"), which("unmunge")
    if not munge or not unmunge:
        return False
    extra = ["-S", sock] if sock else []
    try:
        cred = run([munge, "-n"] + extra, timeout=10)
        if cred.returncode != 0 or not cred.stdout:
            return False
        return run([unmunge] + extra, input=cred.stdout, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _write_key(cdir: ClusterDir) -> None:
    """munged running as root wants a key owned by root: copy the system key (same secret, so credentials
    interoperate with the host's munge) or make a fresh one."""
    if os.path.exists(cdir.munge_key):
        return
    fd = os.open(cdir.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        try:
            with open(SYSTEM_KEY, "rb") as k:
                f.write(k.read())
        except OSError:
            f.write(os.urandom(128))


def _command(cdir: ClusterDir) -> List[str]:
    return [need("munged"), "--foreground", "--force",  # --force: our socket dir is root-only (0700)
            f"--socket={cdir.munge_socket}", f"--key-file={cdir.munge_key}",
            f"--pid-file={cdir.run_file('munged.pid')}", f"--log-file={cdir.log_file('munged.log')}",
            f"--seed-file={cdir.file('munge', 'munged.seed')}"]


def _answers_or_exited(proc: subprocess.Popen, sock: str) -> bool:
    """Nothing more to wait for: munged answers on ``sock``, or it has exited."""
    return proc.poll() is not None or (os.path.exists(sock) and answers(sock))


def start_munged(cdir: ClusterDir) -> str:
    """Start and record a private munged; returns its socket. ClusterError with the log tails if it fails."""
    cmd = _command(cdir)
    os.makedirs(cdir.munge, exist_ok=True)
    os.chmod(cdir.munge, 0o700)
    _write_key(cdir)
    for stale in (cdir.munge_socket, cdir.munge_socket + ".lock"):
        if os.path.exists(stale):
            os.unlink(stale)
    proc = daemons.spawn(cdir, "munged", cmd, dict(os.environ))
    procs.wait_until(lambda: _answers_or_exited(proc, cdir.munge_socket), STARTUP_TIMEOUT_S)
    if proc.poll() is None and answers(cdir.munge_socket):
        daemons.record(cdir, "munged", proc.pid, cdir.munge_socket)
        return cdir.munge_socket
    daemons.terminate_all([proc])
    raise ClusterError("munged did not start:\n" + daemons.logs_report(cdir))
