#!/usr/bin/env bash
# Install Debian's Slurm (slurmctld, slurmd, client tools) and munge, if missing.
# Idempotent and non-interactive: does nothing when the binaries are already there.
# Debian 12 ships Slurm 22.05. `slurm-wlm` is only a metapackage for the three slurm
# packages installed here. Services are NOT started by the install (tools/slurm/cluster.py
# starts its own daemons on its own ports).
set -euo pipefail

need=(slurmctld slurmd sbatch squeue scontrol scancel sinfo munged munge unmunge)
missing=()
for b in "${need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "tools/slurm/install.sh: missing ${missing[*]} and not root: cannot apt-get install" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tools/slurm/install.sh: missing ${missing[*]} and no apt-get on this machine" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
pkgs=(slurmctld slurmd slurm-client munge)
log="$(mktemp -t hmkd-slurm-install.XXXXXX.log)"

# Keep package scripts from starting the system's munge/slurm services (they would use
# the default ports and /etc/slurm); Docker images already ship such a policy-rc.d.
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
    if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi
    if [ -n "${log:-}" ]; then rm -f "$log"; fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi

echo "tools/slurm/install.sh: installing ${pkgs[*]} (missing: ${missing[*]})" >&2
# Another apt/dpkg run (a colleague's install, unattended-upgrades) may hold the locks:
# wait for them instead of failing.
apt_retry() {
    local i
    for i in 1 2 3 4 5 6; do
        if "$@" >"$log" 2>&1; then return 0; fi
        grep -qiE 'could not get lock|unable to lock|is another process using it' "$log" || return 1
        sleep 10
    done
    return 1
}
lock_opt=(-o DPkg::Lock::Timeout=120)

if ! apt_retry apt-get "${lock_opt[@]}" update -qq; then
    echo "tools/slurm/install.sh: 'apt-get update' failed (is Debian's mirror reachable?):" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
if ! apt_retry apt-get "${lock_opt[@]}" install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${pkgs[@]}"; then
    echo "tools/slurm/install.sh: 'apt-get install ${pkgs[*]}' failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
rm -f "$log"

for b in "${need[@]}"; do
    if ! command -v "$b" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$b" ]; then
        echo "tools/slurm/install.sh: installed ${pkgs[*]} but '$b' is still missing" >&2
        exit 1
    fi
done
echo "tools/slurm/install.sh: $(slurmctld -V 2>/dev/null || echo slurm) and munge installed" >&2
