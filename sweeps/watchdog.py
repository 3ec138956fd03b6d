"""Reap what a killed ``sweep run`` leaves behind: its embedded Ray's processes.

``ray.init()`` in the driver starts Ray's GCS, raylet, agents and workers as the driver's
descendants. ``ray.shutdown()`` stops them when the driver ends normally (also after Ctrl-C);
a driver killed with ``kill -9`` cannot, and they linger. :func:`start` launches this module as
a small separate process that watches the driver: every second it notes the driver's
descendants (pid and start time, read from /proc), and once the driver is gone it kills those
still alive. Linux only (elsewhere it does nothing); it ignores SIGINT, so a Ctrl-C in the
terminal reaches only the driver, which then shuts Ray down itself.

    python -m sweeps.watchdog DRIVER_PID
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")


def start(driver_pid: int | None = None) -> subprocess.Popen | None:
    """Launch the watchdog for ``driver_pid`` (default: this process); None off Linux."""
    if not (PROC / "self" / "stat").exists():
        return None
    pid = os.getpid() if driver_pid is None else driver_pid
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.watchdog", str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, state) of a process, None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19]), fields[0]


def descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every descendant of ``root``."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        info = _stat(int(entry.name))
        if info is not None:
            parents.setdefault(info[0], []).append(int(entry.name))
            starts[int(entry.name)] = info[1]
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out and child in starts:
                out[child] = starts[child]
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    info = _stat(pid)
    return info is not None and info[2] != "Z"


def watch(driver: int, interval: float = 1.0) -> list[int]:
    """Wait for ``driver`` to end, then kill the descendants it had; return the killed pids."""
    me = os.getpid()
    seen: dict[int, int] = {}
    while alive(driver):
        seen.update({p: s for p, s in descendants(driver).items() if p != me})
        time.sleep(interval)
    killed = []
    for pid, start_time in seen.items():
        info = _stat(pid)
        if info is None or info[1] != start_time or info[2] == "Z":
            continue  # ended already, or the pid now belongs to another process
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
