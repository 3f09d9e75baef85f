"""CPU time of process trees, read from /proc, for the benchmarks' CPU ms per job.

A group is a process we started (its root PID) with every descendant it has at the time of
a sample: /proc is walked at each sample, so workers forked during the run are found, and
one that appeared after the first sample counts from zero. A group's CPU time is, over its
live members, ``utime + stime`` (all threads) plus ``cutime + cstime`` (children they have
already reaped), divided by ``SC_CLK_TCK``: a member that exits and is reaped by its parent
inside the window keeps counting through its parent. One group may instead be this process
alone (``utime + stime`` of /proc/self, not the servers it started).

Linux only; resolution one clock tick (10 ms on most systems).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat the accounting needs (times in clock ticks)."""

    pid: int
    ppid: int
    start: int  # starttime: with the PID, tells a process from a later one reusing the PID
    own: int  # utime + stime
    reaped: int  # cutime + cstime


def read_stat(pid: int | str) -> Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:  # gone between the listing and the read
        return None
    # The command name is in parentheses and may hold spaces or ')': cut at the last one.
    fields = raw[raw.rfind(b")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): field k is fields[k - 3].
    return Stat(pid=int(pid), ppid=int(fields[1]), start=int(fields[19]),
                own=int(fields[11]) + int(fields[12]),
                reaped=int(fields[13]) + int(fields[14]))


def process_table() -> dict[int, Stat]:
    """Every process of the machine, right now."""
    table: dict[int, Stat] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_stat(entry)) is not None:
            table[stat.pid] = stat
    return table


def tree(root: int, table: Mapping[int, Stat]) -> list[Stat]:
    """``root`` and all its descendants in ``table`` (empty if root is gone)."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(table[pid])
            todo += children.get(pid, [])
    return found


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds of every group at one moment (``time.time()``)."""

    at: float
    seconds: dict[str, float]
    members: dict[str, list[Stat]]


@dataclass(frozen=True)
class Usage:
    """CPU seconds each group used between two snapshots."""

    wall: float
    seconds: dict[str, float]
    processes: dict[str, int]  # members of each group at the end

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def per_job_ms(self, jobs: int) -> dict[str, float]:
        return {name: 1000 * s / jobs for name, s in self.seconds.items()}


class CpuMeter:
    """Samples the CPU time of named process trees (and optionally of this process)."""

    def __init__(self, trees: Mapping[str, int | Sequence[int]],
                 this_process: str | None = None) -> None:
        """``trees``: a name for each group and its root PID (or PIDs)."""
        self.trees = {name: [roots] if isinstance(roots, int) else list(roots)
                      for name, roots in trees.items()}
        self.this_process = this_process

    def sample(self) -> Snapshot:
        at = time.time()
        table = process_table()
        seconds: dict[str, float] = {}
        members: dict[str, list[Stat]] = {}
        for name, roots in self.trees.items():
            members[name] = [stat for root in roots for stat in tree(root, table)]
            seconds[name] = sum(s.own + s.reaped for s in members[name]) / TICK
        if self.this_process:
            me = read_stat(os.getpid())
            assert me is not None
            members[self.this_process] = [me]
            seconds[self.this_process] = me.own / TICK
        return Snapshot(at, seconds, members)

    @staticmethod
    def usage(before: Snapshot, after: Snapshot) -> Usage:
        seconds = {name: max(0.0, after.seconds[name] - before.seconds.get(name, 0.0))
                   for name in after.seconds}
        processes = {name: len(members) for name, members in after.members.items()}
        return Usage(after.at - before.at, seconds, processes)


def kill_leftovers(snapshot: Snapshot, names: list[str] | None = None) -> list[int]:
    """SIGKILL, by PID, the members of a snapshot that still run (the same process: the
    PID with the same start time), e.g. pool children a stopped server left behind."""
    killed = []
    for name, members in snapshot.members.items():
        if names is not None and name not in names:
            continue
        for member in members:
            if member.pid == os.getpid():
                continue
            now = read_stat(member.pid)
            if now is not None and now.start == member.start:
                try:
                    os.kill(member.pid, signal.SIGKILL)
                    killed.append(member.pid)
                except ProcessLookupError:
                    pass
    return killed
