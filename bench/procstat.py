"""Memory of the service's worker processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def _kib(value: str) -> float:
    return int(value.split()[0]) / 1024  # "123456 kB" -> MiB


def rss_mib(pid: int) -> float:
    """Resident set size now."""
    return _kib(_status(pid)["VmRSS"])


def peak_rss_mib(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM)."""
    return _kib(_status(pid)["VmHWM"])


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    # after the command name: state is field 3, utime 14 and stime 15 (man 5 proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """Server processes serving connections to one database (their title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, PermissionError):
            continue
        if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU used by a set of processes between start() and stop()."""

    def __init__(self) -> None:
        self._before: dict[int, float] = {}

    def start(self, pids: list[int]) -> None:
        self._before = {pid: cpu_seconds(pid) for pid in pids}

    def stop(self, pids: list[int]) -> float:
        return sum(cpu_seconds(pid) - self._before.get(pid, 0.0) for pid in pids)
