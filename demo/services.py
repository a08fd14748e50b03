"""The processes the demo starts, and the guarantee that it stops every one of them.

Each program runs in its own session (process group), so a Ctrl-C in the terminal reaches only the
demo, which then stops its children in order: SIGTERM, a grace period, SIGKILL for the group.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import requests

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A program did not start or failed; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int, option: str | None = None) -> None:
    """Fail with one clear line if something listens on 127.0.0.1:``port`` (or it cannot be bound).

    Without this, a server the demo starts fails to bind while the readiness check gets its answer
    from whatever already listens there, and the demo would run against someone else's server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ServiceError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
            if option:
                raise ServiceError(
                    f"port {port} is in use: stop what listens there or drop {option}"
                ) from None
            raise ServiceError(
                f"port {port} was free a moment ago and is in use now: run the demo again"
            ) from None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Service:
    """One long-running program, its output in ``log_path``; ready once ``ready_url`` answers."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        ready_url: str,
        port: int | None = None,
        port_option: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.ready_url = ready_url
        self.port = port  # checked free before the start; port_option: the flag that chose it
        self.port_option = port_option
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.port is not None:
            check_port_free(self.port, self.port_option)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with status {self.proc.returncode}:\n{log_tail(self.log_path)}"
                )
            try:
                ready = requests.get(self.ready_url, timeout=1).status_code == 200
            except requests.RequestException:
                ready = False
            if ready:
                # The answer must come from this program, not from another one on the same port.
                if self.proc.poll() is not None:
                    raise ServiceError(
                        f"{self.name} exited with status {self.proc.returncode}, yet {self.ready_url} "
                        f"answered: another program serves that port:\n{log_tail(self.log_path)}"
                    )
                return
            time.sleep(0.1)
        raise ServiceError(
            f"{self.name} did not answer {self.ready_url} within {READY_TIMEOUT:.0f}s:\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole group; the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


class Services:
    """Started services, stopped in reverse order however the demo ends."""

    def __init__(self) -> None:
        self.started: list[Service] = []

    def start(self, service: Service) -> Service:
        self.started.append(service)  # before start(): a half-started service is stopped too
        service.start()
        return service

    def stop_all(self) -> dict[str, int | None]:
        # A second Ctrl-C must not cut the clean-up short and leave a server running; each stop
        # is bounded anyway (SIGKILL after STOP_TIMEOUT).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            statuses = {}
            while self.started:
                service = self.started.pop()
                statuses[service.name] = service.stop()
            return statuses
        finally:
            signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()


def run_program(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion, stdout and stderr interleaved in ``stdout``.

    It gets its own session, so a Ctrl-C reaches only the demo, which then stops it.
    """
    with subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except BaseException:  # timeout or Ctrl-C: never leave it running
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, output, "")
