"""A real Slurm cluster under one directory, for the launcher tests and local trials: one node on this host,
or several (``--nodes N``), each slurmd in a network namespace of its own with its own address and hostname.

Usage:
    python3 tools/slurm/cluster.py start|status|stop --dir DIR     # the CLI (see cluster.py)
    python3 tools/slurm/cluster.py start --dir DIR --nodes 2       # nodes n1, n2 on a bridge
    tests/launcher/conftest.py loads this folder as a package by path (its module names, e.g. ``config``,
    would clash with tests/config on sys.path), so the modules import each other relatively; run as a
    script, cluster.py has tools/slurm as sys.path[0] and they import each other by plain name.

    programs.py  finding and running the Slurm/munge binaries, install.sh, ClusterError
    config.py    the cluster directory's layout, free ports, the node(s), slurm.conf
    network.py   the several-node cluster's bridge, namespaces, veth pairs and hosts files
    procs.py     /proc: is a PID still the process we started, terminate, leftovers of jobs, namespaces
    daemons.py   spawning daemons, their pid records, log tails
    munge.py     a private munged when the machine has none answering
    cluster.py   start / stop / status, the nodes' helpers (node_exec, set_link, restart_slurmd) and the CLI

Standard library only and Python 3.8: it runs before any virtual environment exists.
"""
