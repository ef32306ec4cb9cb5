"""Finding and running the Slurm and munge programs, and installing them when missing.

Usage:
    path = need("slurmctld")                # ClusterError naming install.sh when it is missing
    res = run([path, "-V"], timeout=10)     # CompletedProcess, stdout/stderr captured
    install(); slurm_version()              # tools/slurm/install.sh; "22.05.8" or "unknown"

The sbin programs are looked up in /usr/sbin etc. too, because a non-login root PATH often lacks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, List, Optional

INSTALL_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "install.sh")
SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin")
CLIENTS = ("sinfo", "sbatch", "squeue", "scontrol", "scancel")


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message says why (with log tails)."""


def which(name: str) -> Optional[str]:
    """``name`` on PATH or in the sbin folders, or None."""
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


def need(name: str) -> str:
    """Like ``which``, but a missing program is a ClusterError that says how to install it."""
    path = which(name)
    if not path:
        raise ClusterError(f"'{name}' not found: run tools/slurm/install.sh (as root) first")
    return path


def run(cmd: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 30.0,
        input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def install() -> None:
    """Run tools/slurm/install.sh (no-op when the binaries are there). Raises ClusterError."""
    res = subprocess.run(["bash", INSTALL_SH], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise ClusterError(f"{INSTALL_SH} failed (rc={res.returncode}):\n" + res.stdout.decode("utf-8", "replace"))


def slurm_version() -> str:
    exe = which("slurmctld") or which("sbatch")
    if not exe:
        return "unknown"
    try:
        out = run([exe, "-V"], timeout=10).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.split()[-1] if out else "unknown"
