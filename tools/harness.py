"""Run commands in fresh processes and measure them: the one process harness of the benchmark tools.

- :func:`run` spawns one command (any argv; :func:`streamfm_argv` builds a
  ``python -m streamfm ...`` one) with a given environment and working
  directory, optionally under an address-space limit, and returns a
  :class:`Record`: exit code, output, wall time, CPU time (user + sys of the
  process and the children it waited for, from ``os.wait4``), peak RSS
  (``ru_maxrss``; Linux keeps the spawning process's resident set at the
  spawn as its floor, so a child's own high-water mark is read in the child
  with :func:`peak_rss_mb` where the spawner is large), the whole machine's busy CPU seconds over the run
  (``/proc/stat``) and the load average before and after.
- :func:`alternate` runs several jobs in rounds, one after the other in every
  round (optionally turning their order round by round), and returns every
  job's results in round order: on a shared machine whose speed drifts, the
  rounds' results pair up.
- :func:`code_at` extracts a commit into a throwaway directory with this
  checkout's ``tools/`` copied in, so that the same measuring code runs on
  that commit's ``streamfm`` (an A/B of two commits). Each copy has its own
  numba cache next to its sources, never one compiled from other sources.
- In the measured process: :func:`peak_rss_mb` and :func:`status_mb` read
  its own ``/proc/self/status``.

Used by ``bench_throughput.py`` (and its ``throughput/`` modules),
``ab_train.py``, ``ab_kernel.py``, ``bench_ray.py``, ``bench_ray_reads.py``,
``bench_train_memory.py``, ``bench_read_memory.py`` and ``sparse_peers.py``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: where ``code_at`` extracts commits (git ignores bench-data/)
WORK = os.path.join(REPO, "bench-data", "throughput-work")


class ProcessFailed(RuntimeError):
    """A measured process exited with a non-zero code (the message ends with its stderr's tail)."""


@dataclass
class Record:
    """One process's run: what it printed and what it cost."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    started: float  # time.time() just before the spawn
    wall: float  # seconds from the spawn to the exit
    cpu: float  # user + sys seconds of the process (and the children it waited for)
    peak_rss_mb: float  # its peak resident set (ru_maxrss), MiB: at least the spawner's at the spawn
    machine_busy: float  # busy CPU seconds of every core of the machine over the run
    load_before: tuple = (float("nan"),) * 3  # 1-, 5- and 15-minute load averages
    load_after: tuple = (float("nan"),) * 3
    extra: dict = field(default_factory=dict)  # what a caller adds (a job's name, round, ...)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self, what: str | None = None, tail: int = 3000) -> "Record":
        """This record, or :class:`ProcessFailed` naming ``what`` failed with the end of its stderr."""
        if not self.ok:
            name = what or " ".join(self.argv[:4])
            raise ProcessFailed(f"{name} failed ({self.returncode}):\n{self.stderr[-tail:]}")
        return self

    def last_json(self) -> Any:
        """The last line of stdout, parsed as JSON (a measuring child prints its result there)."""
        lines = self.stdout.strip().splitlines()
        if not lines:
            raise ProcessFailed(f"{' '.join(self.argv[:4])} printed no result:\n{self.stderr[-3000:]}")
        return json.loads(lines[-1])

    def stderr_values(self, prefix: str) -> dict[str, str]:
        """``{key: value}`` of the stderr lines ``KEY VALUE`` whose key starts with ``prefix``."""
        out = {}
        for line in self.stderr.splitlines():
            if line.startswith(prefix):
                key, _, value = line.partition(" ")
                out[key] = value.strip()
        return out


def run(argv: Sequence[str], *, env: dict | None = None, cwd: str | None = None, limit_as_mb: int | None = None,
        check: bool = False, what: str | None = None) -> Record:
    """Run ``argv`` in a fresh process and measure it.

    ``env`` adds to (or overrides) this process's environment; ``cwd``
    defaults to the repository root (where ``python -m streamfm`` imports
    this checkout's package). ``limit_as_mb`` caps the process's address
    space (``RLIMIT_AS``). Output goes to temporary files, never pipes, so a
    chatty process cannot block. With ``check``, a non-zero exit raises
    :class:`ProcessFailed`.
    """
    argv = [str(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    preexec = None if limit_as_mb is None else _address_space_limit(int(limit_as_mb) * 1024 * 1024)

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load_before = loadavg()
        busy0 = machine_busy_seconds()
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd or REPO, stdout=out, stderr=err, text=True, env=full_env,
                                preexec_fn=preexec)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy = machine_busy_seconds() - busy0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        record = Record(argv=argv, returncode=proc.returncode, stdout=out.read(), stderr=err.read(),
                        started=started, wall=wall, cpu=usage.ru_utime + usage.ru_stime,
                        peak_rss_mb=usage.ru_maxrss / 1024, machine_busy=busy, load_before=load_before,
                        load_after=loadavg())
    return record.check(what) if check else record


def _address_space_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that caps the child's address space (``RLIMIT_AS``) at ``limit`` bytes."""
    def preexec():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return preexec


def streamfm_argv(*args: str, python: str = sys.executable) -> list[str]:
    """``python -m streamfm ARGS``: run with ``cwd`` at a checkout, it imports that checkout's package."""
    return [python, "-m", "streamfm", *map(str, args)]


def alternate(jobs: Sequence, rounds: int, *, rotate: bool = False,
              on_result: Callable[[int, Any, Any], None] | None = None) -> dict:
    """Run every job once per round, one after the other; ``{name: [result of round 1, 2, ...]}``.

    A job is ``(name, function of no arguments)`` (typically a function that
    calls :func:`run` and reads the record). ``jobs`` is a list of jobs, or a
    list of groups (lists of jobs) run one group after the other in every
    round. ``rotate`` starts each group's round ``i`` at its job ``i`` (mod
    its size), so no job always runs first. ``on_result(round, name,
    result)`` sees every result as it comes (``round`` from 0).
    """
    groups = [list(g) for g in jobs] if jobs and isinstance(jobs[0], list) else [list(jobs)]
    out: dict = {name: [] for group in groups for name, _ in group}
    for rnd in range(rounds):
        for group in groups:
            start = rnd % len(group) if rotate and group else 0
            for name, job in group[start:] + group[:start]:
                result = job()
                out[name].append(result)
                if on_result is not None:
                    on_result(rnd, name, result)
    return out


def code_at(ref: str, work: str = WORK, repo: str = REPO) -> str:
    """``streamfm`` as of commit ``ref``: its tree extracted under ``work`` (``code-<commit>``, once),
    with this checkout's ``tools/`` copied over its own, so that the measuring code is the same."""
    here = os.path.dirname(os.path.abspath(__file__))
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True,
                         text=True).stdout.strip() or repo
    commit = subprocess.run(["git", "rev-parse", "--short=7", "--verify", f"{ref}^{{commit}}"], cwd=top,
                            capture_output=True, text=True, check=True).stdout.strip()
    path = os.path.join(work, f"code-{commit}")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        archive = subprocess.run(["git", "archive", commit], cwd=top, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        os.replace(tmp, path)
    # copy2 keeps the files' times: numba's cache of the copied tools stays valid between calls
    shutil.copytree(here, os.path.join(path, "tools"), dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    return path


def code_version(repo: str = REPO, package: str = "streamfm") -> str:
    """The commit ``repo`` is at, ``-dirty`` when ``package/`` has uncommitted changes."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=repo, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--", package) else "")


# --------------------------------------------------------------------------- the machine


def loadavg() -> tuple:
    """The 1-, 5- and 15-minute load averages (NaN where the system has none)."""
    try:
        return tuple(os.getloadavg())
    except OSError:
        return (float("nan"),) * 3


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``: not idle, not iowait); 0 off Linux."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle, iowait = ticks[3], ticks[4]
    # fields 9-10 (guest time) are already counted in user and nice
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- in the measured process


def status_mb(key: str) -> float:
    """A ``/proc/self/status`` size (``VmHWM``, ``VmPeak``, ...) of this process in MiB; NaN if absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set so far, MiB (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    hwm = status_mb("VmHWM")
    if hwm == hwm:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
