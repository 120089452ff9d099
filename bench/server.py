"""The API as the README starts it (`cmar serve`), in its own process, for the benchmarks."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from core.errors import CmarError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # benchmarks only ever talk to this machine
START_TIMEOUT_S = 600.0


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM) in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get_json(port: int, path: str, timeout: float = 5.0) -> dict[str, object]:
    """GET a JSON document from the server."""
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as response:
        return dict(json.loads(response.read()))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A running `cmar serve` process: its port, how long it took to be ready, its memory."""

    process: subprocess.Popen[bytes]
    port: int
    startup_s: float

    def rss_mb(self) -> float:
        """Resident memory now (MiB)."""
        return rss_mb(self.process.pid)

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far."""
        return cpu_s(self.process.pid)

    def peak_rss_mb(self) -> float:
        """Peak resident memory so far (MiB)."""
        return rss_mb(self.process.pid, "VmHWM")

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bare(log_file: Path, env: dict[str, str] | None = None) -> Server:
    """The neutral ceiling (`bench.bare`) in its own process, with `cmar serve`'s server settings (and `env`'s)."""
    port = free_port()
    with open(log_file, "ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        if process.poll() is not None:
            raise CmarError(f"the bare ceiling server exited with code {process.returncode}; see {log_file}")
        try:
            get_json(port, "/", timeout=1.0)
            return Server(process, port, time.perf_counter() - started)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise CmarError(f"the bare ceiling server was not ready after 60 s; see {log_file}")


def start(
    model: Path, index: Path, log_file: Path, env: dict[str, str] | None = None, port: int = 0, quiet: bool = True
) -> Server:
    """Start `cmar serve` on a free port (or `port`) and wait until /healthz answers; raise CmarError if it does not.

    `env` adds CMAR_* settings (an API key, a write database); `quiet` logs warnings only.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "cli.main", *(["-q"] if quiet else []), "serve"]
    command += ["--model", str(model), "--index", str(index)]
    command += ["--host", HOST, "--port", str(port)]
    env = {**os.environ, "CMAR_ACCESS_LOG": "false", **(env or {})}
    with open(log_file, "ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    started = time.perf_counter()
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise CmarError(f"the server exited with code {process.returncode}; see {log_file}")
        try:
            get_json(port, "/healthz", timeout=1.0)  # needs no key, even when reads do
            startup_s = time.perf_counter() - started
            log.info("server ready on port %d after %.1f s", port, startup_s)
            return Server(process, port, startup_s)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise CmarError(f"the server was not ready after {START_TIMEOUT_S:.0f} s; see {log_file}")
