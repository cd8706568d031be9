"""Every process the experiment starts, each in its own process group, stopped by id."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class Processes:
    """Every process group this script starts, stopped by id at the end."""

    def __init__(self) -> None:
        self.groups: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.groups.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, first: int = signal.SIGTERM,
             grace: float = 15.0) -> None:
        """`first` to the process group, SIGKILL to whatever is left after `grace` seconds."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, first)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left in its group (a JVM), and a process that ignored the signal
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if proc in self.groups:
            self.groups.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.groups):
            self.stop(proc, grace=10.0)


def stray_pids(root: Path) -> list[int]:
    """Processes (not this one) whose command line or working folder lies under `root`: the
    party processes and local jobs of runs this script started (all of them work under it)."""
    found = []
    mark = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if mark in cmd or cwd.startswith(mark):
            found.append(int(entry.name))
    return found


def kill_strays(root: Path) -> int:
    """SIGKILL every stray process of `root` (by id); how many there were."""
    pids = stray_pids(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)
