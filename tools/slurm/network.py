"""The network of a several-node test cluster: a bridge in this namespace, one network namespace per node.

Usage:
    net = plan(["n1", "n2"], ctld_host="vm")  # fresh names and a /24 no interface or route here uses
    save(cdir, net); create(net)              # DIR/run/net.json first, so a crashed start can be undone
    argv = in_node(net.nodes[0], ["hostname"])   # runs inside n1 (its network, mount and UTS namespaces)
    procs.in_netns(netns_path(net.nodes[0]))     # the PIDs in n1's network namespace
    destroy(net); forget(cdir)                # links, namespaces and /etc/netns/<ns>; what is gone is skipped

Each node is a network namespace (``ip netns add``) joined to the bridge by a veth pair (the namespace's end
is eth0), with its own address in 10.213.X.0/24; the bridge holds .1, slurmctld's address. Names resolve in
every namespace through /etc/netns/<ns>/hosts, bind-mounted over /etc/hosts in a mount namespace of the
node's slurmd (``in_node``), so every job it starts sees them; ``ip netns exec <ns>`` does the same mount.
Interface names must fit 15 characters: the bridge is hb<id>, node n<i>'s root-side veth hv<id>n<i>, its
namespace hmkd<id>n<i> (id: 6 random hex digits).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import random
import shutil
import subprocess
from contextlib import contextmanager
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

if __package__:
    from .config import ClusterDir
    from .programs import ClusterError, need, run, which
else:  # cluster.py run as a script: tools/slurm is sys.path[0]
    from config import ClusterDir
    from programs import ClusterError, need, run, which

SUBNET_FIRST_OCTETS = "10.213"
FIRST_NODE_HOST = 11  # node i (from 0) is .11+i; the bridge (slurmctld) is .1
MAX_IFNAME = 15
NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"
LOCK_FILE = "/run/lock/hmkd-slurm-net.lock"  # two starts at once must not pick the same /24
IP_TIMEOUT_S = 20.0
PROGRAMS = ("ip", "nsenter", "unshare", "mount", "hostname")


class NetNode(NamedTuple):
    """One node: its NodeName (and hostname), address, network namespace and the veth end on the bridge."""

    name: str
    addr: str
    netns: str
    veth: str


class Net(NamedTuple):
    """The whole network: what ``create`` makes and ``destroy`` removes."""

    id: str
    bridge: str
    subnet: str  # "10.213.X.0/24"
    ctld_addr: str  # the bridge's address: slurmctld's, as every node reaches it
    ctld_host: str  # slurmctld's host name, mapped to ctld_addr in every node's hosts file
    nodes: List[NetNode]

    def node(self, name: str) -> NetNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ValueError(f"no node {name!r} in this cluster: its nodes are {', '.join(n.name for n in self.nodes)}")

    def to_json(self) -> Dict[str, object]:
        d = self._asdict()
        d["nodes"] = [n._asdict() for n in self.nodes]
        return d

    @classmethod
    def from_json(cls, d: Dict[str, object]) -> Net:
        fields = dict(d)
        fields["nodes"] = [NetNode(**n) for n in d["nodes"]]  # type: ignore[union-attr]
        return cls(**fields)  # type: ignore[arg-type]


def netns_path(node: NetNode) -> str:
    return os.path.join(NETNS_DIR, node.netns)


def hosts_dir(node: NetNode) -> str:
    return os.path.join(ETC_NETNS, node.netns)


# ----------------------------------------------------------------------------- plan


def _ip(*args: str, check: bool = True, netns: Optional[str] = None) -> subprocess.CompletedProcess:
    cmd = [need("ip")] + (["-n", netns] if netns else []) + list(args)
    res = run(cmd, timeout=IP_TIMEOUT_S)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.decode().strip()}")
    return res


def _networks_in_use() -> List[ipaddress.IPv4Network]:
    """Every IPv4 network of an address or a route in this namespace (all routing tables)."""
    out = _ip("-o", "-4", "addr", "show").stdout.decode().split()
    out += _ip("-4", "route", "show", "table", "all").stdout.decode().split()
    nets = []
    for tok in out:
        if tok[:1].isdigit():
            try:
                nets.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A 10.213.X.0/24 that overlaps no address or route here (Docker's 172.17/16, another cluster's bridge)."""
    used = _networks_in_use()
    candidates = list(range(256))
    rng.shuffle(candidates)
    for x in candidates:
        net = ipaddress.ip_network(f"{SUBNET_FIRST_OCTETS}.{x}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise ClusterError(f"no free {SUBNET_FIRST_OCTETS}.X.0/24: every one overlaps an address or route here")


def plan(names: Sequence[str], ctld_host: str, rng: Optional[random.Random] = None) -> Net:
    """Names (unique on this machine: a random id) and addresses for ``names``; creates nothing.

    Call it with ``subnet_lock`` held until ``create`` has given the bridge its address."""
    rng = rng or random.Random()
    for _ in range(100):
        net_id = "%06x" % rng.randrange(16 ** 6)
        if not os.path.exists(os.path.join("/sys/class/net", "hb" + net_id)):
            break
    subnet = free_subnet(rng)
    hosts = list(subnet.hosts())
    if FIRST_NODE_HOST - 1 + len(names) > len(hosts):
        raise ValueError(f"{len(names)} nodes do not fit in a /24 from .{FIRST_NODE_HOST}")
    nodes = [NetNode(name, str(hosts[FIRST_NODE_HOST - 1 + i]), f"hmkd{net_id}{name}", f"hv{net_id}{name}")
             for i, name in enumerate(names)]
    too_long = [n.veth for n in nodes if len(n.veth) > MAX_IFNAME]
    if too_long:
        raise ValueError(f"node names too long for interface names (at most {MAX_IFNAME} chars): {too_long}")
    return Net(net_id, "hb" + net_id, str(subnet), str(hosts[0]), ctld_host, nodes)


@contextmanager
def subnet_lock() -> Iterator[None]:
    """Machine-wide, across processes; not reentrant (a second flock in the same process waits)."""
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    with open(LOCK_FILE, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- record


def _record_path(cdir: ClusterDir) -> str:
    return cdir.run_file("net.json")


def save(cdir: ClusterDir, net: Net) -> None:
    with open(_record_path(cdir), "w") as f:
        json.dump(net.to_json(), f, indent=2)


def recorded(cdir: ClusterDir) -> Optional[Net]:
    """The network ``start`` planned in this dir (it may be partly or not at all created), or None."""
    try:
        with open(_record_path(cdir)) as f:
            return Net.from_json(json.load(f))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def forget(cdir: ClusterDir) -> None:
    try:
        os.unlink(_record_path(cdir))
    except OSError:
        pass


# ----------------------------------------------------------------------------- create, destroy


def hosts_text(net: Net) -> str:
    """localhost on loopback (so a node's own name resolves to its bridge address, not 127.x), the nodes,
    and slurmctld's host."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{net.ctld_addr}\t{net.ctld_host}"]
    lines += [f"{n.addr}\t{n.name}" for n in net.nodes]
    return "# written by tools/slurm/network.py for the test cluster\n" + "\n".join(lines) + "\n"


def _create_node(net: Net, node: NetNode, prefix_len: int) -> None:
    os.makedirs(hosts_dir(node), exist_ok=True)
    with open(os.path.join(hosts_dir(node), "hosts"), "w") as f:
        f.write(hosts_text(net))
    _ip("netns", "add", node.netns)
    _ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    _ip("link", "set", node.veth, "master", net.bridge, "up")
    _ip("link", "set", "lo", "up", netns=node.netns)
    _ip("addr", "add", f"{node.addr}/{prefix_len}", "dev", "eth0", netns=node.netns)
    _ip("link", "set", "eth0", "up", netns=node.netns)


def create(net: Net) -> None:
    """The bridge with slurmctld's address, then each node's namespace, veth pair and hosts file."""
    prefix_len = ipaddress.ip_network(net.subnet).prefixlen
    _ip("link", "add", net.bridge, "type", "bridge")
    _ip("addr", "add", f"{net.ctld_addr}/{prefix_len}", "dev", net.bridge)
    _ip("link", "set", net.bridge, "up")
    for node in net.nodes:
        _create_node(net, node, prefix_len)


def _link_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/sys/class/net", name))


def destroy(net: Net) -> List[str]:
    """Remove what ``create`` made (end the processes in the namespaces first); returns what is still there."""
    for node in net.nodes:
        if _link_exists(node.veth):
            _ip("link", "del", node.veth, check=False)  # takes eth0 in the namespace with it
        if os.path.exists(netns_path(node)):
            _ip("netns", "del", node.netns, check=False)
        shutil.rmtree(hosts_dir(node), ignore_errors=True)
    if _link_exists(net.bridge):
        _ip("link", "del", net.bridge, check=False)
    with subnet_lock():  # no other start between its makedirs of /etc/netns/<ns> and this
        try:
            os.rmdir(ETC_NETNS)  # only when empty: ours were the last namespaces with a hosts file
        except OSError:
            pass
    return leftovers(net)


def leftovers(net: Net) -> List[str]:
    """The links, namespaces and hosts dirs of ``net`` that exist."""
    left = [f"link {name}" for name in [net.bridge] + [n.veth for n in net.nodes] if _link_exists(name)]
    left += [f"netns {n.netns}" for n in net.nodes if os.path.exists(netns_path(n))]
    return left + [f"dir {hosts_dir(n)}" for n in net.nodes if os.path.exists(hosts_dir(n))]


def set_link(net: Net, node: NetNode, up: bool) -> None:
    """Cut (``up=False``) or restore the node's cable: its veth end on the bridge goes down or up."""
    _ip("link", "set", node.veth, "up" if up else "down")


# ----------------------------------------------------------------------------- run inside a node


def in_node(node: NetNode, argv: Sequence[str]) -> List[str]:
    """``argv`` inside the node: its network namespace, a mount namespace where /etc/netns/<ns>/hosts is
    /etc/hosts, and a UTS namespace whose hostname is the node's name (so gethostname() in a job is the
    NodeName). Each program execs the next, so the PID stays that of ``argv``.

    Not ``ip netns exec``: it also mounts a fresh /sys, which lacks the host's /sys/fs/cgroup, and slurmd
    22.05 will not start without its cgroup plugin even with proctrack/linuxproc."""
    script = 'mount --bind "$0" /etc/hosts && hostname "$1" && shift && exec "$@"'
    return [need("nsenter"), f"--net={netns_path(node)}", "--", need("unshare"), "--mount", "--propagation",
            "slave", "--uts", "--", "/bin/sh", "-c", script, os.path.join(hosts_dir(node), "hosts"),
            node.name] + list(argv)


def usable() -> str:
    """"" when network namespaces, veth pairs and bridges can be made here, else why not."""
    missing = [prog for prog in PROGRAMS if not which(prog)]
    if missing:
        return f"{', '.join(missing)} not found (packages iproute2, util-linux, mount, hostname)"
    probe: Optional[Net] = None
    try:
        with subnet_lock():
            probe = plan(["p"], "probe")
            create(probe)
    except (ClusterError, OSError) as e:
        return f"cannot make a network namespace, veth pair and bridge: {e}"
    finally:
        left = destroy(probe) if probe else []  # destroy takes the lock: flock does not nest
    return f"could not remove the probe's {', '.join(left)}" if left else ""
