"""Child processes for the benchmark: servers that announce ``<name> listening on HOST:PORT`` on stdout,
and /proc readings (RSS, CPU time) of a pid."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


class ServerProcess:
    """A server child process; ``start()`` waits for its ``listening on`` line and sets ``address``."""

    def __init__(self, name: str, cmd: Sequence[str], *, cwd: Path, log: Path, start_timeout: float = 60.0):
        self.name = name
        self.cmd = list(cmd)
        self.cwd = cwd
        self.log = log
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self.metrics_address = ""  # host:port of its Prometheus /metrics, when it serves one
        self.stdout_tail: list[str] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ServerProcess:
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                self.cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=self.cwd
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if " listening on " in line:
                    self.address = line.split()[-1]
                    return self
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        self.stop(kill=True)
        raise RuntimeError(f"{self.name} did not start; see {self.log}: {self.log.read_text()[-2000:]}")

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> str:
        """SIGTERM (or SIGKILL), wait, and return what it printed on stdout after starting."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=timeout)
        return out or ""
