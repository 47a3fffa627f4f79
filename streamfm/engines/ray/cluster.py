"""Ray itself: the import, an ``--address`` checked before any work, the connection, the actors' CPUs.

A run joins the cluster at ``--address`` or starts a local Ray instance sized
to the machine; a process already connected (a notebook, the tests) is used
as it is. The worker actors import this streamfm: from its directory on this
machine, shipped with the job to a cluster.
"""
from __future__ import annotations

import logging
import os
import socket

from ...errors import InputError

INSTALL_HINT = 'pip install "streamfm[ray]"'

#: what a worker actor reserves of a CPU: a token, see worker_cpus
ACTOR_CPU_TOKEN = 0.01


def import_ray():
    """``ray`` with Ray Data, or an InputError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed here. Install the extra: "
                         f"{INSTALL_HINT}") from None
    return ray


def check_address(address: str) -> None:
    """Refuse, quickly and in one line, an --address where no Ray cluster can be.

    ``ray.init`` would otherwise wait a long time for a cluster that is not
    there. Accepted: ``auto``, ``HOST:PORT`` and ``ray://HOST:PORT``; the port
    must accept a TCP connection.
    """
    if address == "auto":
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--address {address!r} is not a Ray cluster address; give HOST:PORT (the head "
                         "node's port, 6379 by default), ray://HOST:PORT (Ray Client) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                         "`ray start --head` on the head node, or check --address") from None


def preflight(address: str | None, source=None) -> None:
    """Everything that can fail before any work: Ray installed, the address, Parquet input."""
    import_ray()
    if source is not None and source.format != "parquet":
        raise InputError(f"--engine ray reads Parquet shards, and the data is {source.format}; convert it "
                         f"first: streamfm convert DATA... -o shards/ (then train shards/)")
    if address:
        check_address(address)


def connect(ray, address: str | None, quiet: bool) -> bool:
    """Join ``address`` or start a local instance sized to the machine; True if this call did.

    A process already connected (a notebook, the tests) is used as it is.
    """
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=not quiet,
                  runtime_env=runtime_env(address))
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError ...
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise InputError(f"could not start or join {where}: {exc}") from None
    return True


def runtime_env(address: str | None) -> dict:
    """How the actors import this streamfm: from this directory on this machine, shipped to a
    cluster (Ray uploads a local package only for a whole job, so this goes to ``ray.init``)."""
    import streamfm

    package = os.path.dirname(os.path.abspath(streamfm.__file__))
    if address:
        return {"py_modules": [package], "excludes": ["__pycache__"]}
    root = os.path.dirname(package)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def worker_cpus(cluster_cpus: float, workers: int) -> float:
    """CPUs each worker actor reserves: a token share, leaving every CPU to Ray Data's reads.

    A reservation is a scheduling promise, not a limit: the actors compute on
    whole cores either way. What it changes is how many read tasks Ray Data
    can run: actors holding every CPU leave none, and the stream stalls
    forever; actors holding all but one leave one read task at a time, and
    reading, not training, sets the pace (docs/scaling.md). So the actors
    reserve a token (``ACTOR_CPU_TOKEN``, and together at most 5% of the
    cluster's CPUs), which still places them on nodes that have CPUs, and they
    are spread over the nodes; the operating system shares each core between
    reading and training.

    >>> worker_cpus(2, 2), worker_cpus(2, 1), worker_cpus(64, 8), worker_cpus(0.5, 5)
    (0.01, 0.01, 0.01, 0.005)
    """
    return float(min(ACTOR_CPU_TOKEN, 0.05 * cluster_cpus / max(workers, 1)))
