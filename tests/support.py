"""Helpers for tests that run real programs: free ports, clean environments, server processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

#: Environment variables the project's programs read; stripped from test subprocesses so a
#: developer's shell or .env cannot change what a test sees.
SETTING_PREFIXES = ("LOGTO_", "SHOPPING_", "STATS_", "TOKEN_", "JWKS_", "LOCAL_ISSUER_")
SETTING_NAMES = {
    "DATABASE_URL",
    "REPORTS_DIR",
    "WEB_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
    "LOG_FORMAT",
    "LOG_LEVEL",
}

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
#: The API's gunicorn settings (serving, logging, the settings check), as the README runs it.
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_setting(name: str) -> bool:
    return name in SETTING_NAMES or name.startswith(SETTING_PREFIXES)


def clean_env(**settings: str) -> dict[str, str]:
    """The current environment without any project setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not is_setting(k)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in settings.items()})
    return env


def script(name: str) -> str:
    """Path of a console script installed in the running interpreter's environment."""
    return str(BIN / name)


def gunicorn_argv(
    port: int, *, workers: int = 2, app: str = "shopping_api:create_app()", extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(GUNICORN_CONF),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "5",
        *extra,
        app,
    ]


class ServerProcess:
    """A real server run as a subprocess; ready once ``ready_url`` answers, stopped on exit.

    Output goes to ``log_path`` so a failing test can show it (``log_text()``).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        ready_url: str | None,
        cwd: Path,
        log_path: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.argv = argv
        self.env = env
        self.ready_url = ready_url
        self.cwd = cwd
        self.log_path = log_path or cwd / f"{Path(argv[0]).name}-{id(self)}.log"
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        log = open(self.log_path, "wb")  # noqa: SIM115 -- the child writes to it after start() returns
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if self.ready_url:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.ready_url, timeout=1).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.argv} not ready after {self.timeout}s:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig``, wait for the exit, kill the group if it hangs; return the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def copy_of_the_repository(destination: Path) -> Path:
    """The repository's files (tracked, and untracked but not ignored) copied to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination
