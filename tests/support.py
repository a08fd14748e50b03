"""Helpers for tests that run real programs: free ports, clean environments, server processes,
and the pages' commands (README.md, docs/*.md), read from their code blocks and run in a copy of
the repository the way the pages say."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def run_script(
    name: str, *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one of the project's console scripts to its end; its output is captured as text."""
    return subprocess.run(
        [script(name), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def issue_token(issuer_url: str, client: tuple[str, str], resource: str, scope: str) -> dict[str, Any]:
    """The issuer's answer to a client_credentials request with HTTP Basic, which must be a 200."""
    response = requests.post(
        f"{issuer_url}/oidc/token",
        data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
        auth=client,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


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


def answers(url: str, timeout: float, *, running: Callable[[], bool]) -> bool:
    """Wait until ``url`` answers below 500: True. False once ``running()`` is false, or at ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running():
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return False


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
        assert self.proc is not None and self.ready_url is not None
        proc = self.proc
        if answers(self.ready_url, self.timeout, running=lambda: proc.poll() is None):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{self.argv[0]} exited with {proc.returncode}:\n{self.log_text()}")
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


class Checkout:
    """A copy of the repository whose commands run the way the pages say, from its root.

    Its ``.venv`` is the running tests' environment (what ``make install`` would have made), and
    its programs import the copy's packages. ``issuer_port`` and ``api_port`` are free ports the
    programs move to through ``.env``, as the README's "Moving a port" says.
    """

    def __init__(self, root: Path) -> None:
        self.root = copy_of_the_repository(root)
        (self.root / ".venv").symlink_to(Path(sys.prefix))
        self.env = clean_env(PYTHONPATH=str(self.root))  # the copy's packages, not the checkout's
        self.issuer_port = free_port()
        self.api_port = free_port()

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", line], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        return result

    def add_to_dotenv(self, text: str) -> None:
        with (self.root / ".env").open("a", encoding="utf-8") as dotenv:
            dotenv.write(text)

    def move_issuer(self, *, endpoint: bool = True) -> None:
        """The issuer on ``issuer_port``; with ``endpoint``, every program told its new URL."""
        self.add_to_dotenv(f"LOCAL_ISSUER_PORT={self.issuer_port}\n")
        if endpoint:
            self.add_to_dotenv(f"LOGTO_ENDPOINT=http://127.0.0.1:{self.issuer_port}\n")

    def move_api(self) -> None:
        """The API on ``api_port``, and the worker told so."""
        self.add_to_dotenv(
            f"SHOPPING_API_BIND=127.0.0.1:{self.api_port}\nSHOPPING_API_URL=http://127.0.0.1:{self.api_port}\n"
        )

    def localized(self, text: str) -> str:
        """A page's text as it runs here: the documented ports (3001, 8000) are this checkout's,
        and a Logto tenant's placeholders are the local issuer's bootstrap tenant (the values the
        pages give for Logto OSS, and the app local_issuer/bootstrap.yaml holds)."""
        tenant = {
            "https://{tenant-id}.logto.app/api": "https://default.logto.app/api",
            "https://{tenant-id}.logto.app": f"http://127.0.0.1:{self.issuer_port}",
            "<App ID of the bootstrap app>": "m2m-bootstrap-admin",
            "<its App secret>": "bootstrap-admin-local-secret",
        }
        for placeholder, value in tenant.items():
            text = text.replace(placeholder, value)
        text = re.sub(r"(?<=127\.0\.0\.1|localhost):3001\b", f":{self.issuer_port}", text)
        return re.sub(r"(?<=127\.0\.0\.1|localhost):8000\b", f":{self.api_port}", text)

    def server(self, line: str, ready_url: str) -> ServerProcess:
        return ServerProcess(["bash", "-c", f"exec {line}"], env=self.env, cwd=self.root, ready_url=ready_url)


# -- the pages' code blocks ------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    """A fenced code block of a page."""

    page: str  # relative to the repository root: "README.md", "docs/shopping-api.md"
    line: int  # the line of its opening fence, from 1
    language: str  # "sh", "console", "json", "" ...
    section: str  # the "## " heading it stands under ("" before the first one)
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DocCommand:
    """A command a page shows: a line of an ``sh`` block (with the lines it continues onto with
    a backslash), or a console block's ``$ `` line."""

    fence: Fence
    line: int  # its first line in the page, from 1
    text: str  # as written, continued lines kept, without its trailing comment
    comment: str  # the comment after it on its last line: what the page says it prints
    output: tuple[str, ...]  # the lines shown after it: comment lines (sh), output lines (console)

    @property
    def key(self) -> str:
        """The command on one line, blanks folded: how tables name it."""
        return " ".join(self.text.replace("\\\n", " ").split())

    @property
    def where(self) -> str:
        return f"{self.fence.page}:{self.line}"


def fences(page: str) -> list[Fence]:
    """Every fenced code block of ``page`` (a path relative to the repository root), in order."""
    found: list[Fence] = []
    section, opened, language = "", 0, ""
    body: list[str] = []
    for number, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1):
        if not opened:
            if line.startswith("```"):
                opened, language, body = number, (line[3:].split() or [""])[0], []
            elif line.startswith("## "):
                section = line[3:].strip()
        elif line.startswith("```"):
            found.append(Fence(page, opened, language, section, tuple(body)))
            opened = 0
        else:
            body.append(line)
    return found


def split_comment(line: str) -> tuple[str, str]:
    """``line`` without its shell comment, and the comment's text (a ``#`` in quotes is no comment)."""
    quote, escaped = "", False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def doc_commands(page: str) -> list[DocCommand]:
    """The commands of ``page``'s ``sh`` and ``console`` blocks, in order."""
    found: list[DocCommand] = []
    for fence in fences(page):
        if fence.language in ("sh", "console"):
            found += _commands(fence)
    return found


def _commands(fence: Fence) -> list[DocCommand]:
    console = fence.language == "console"
    commands: list[tuple[int, list[str], str, list[str]]] = []  # line, its lines, comment, output
    lines = list(fence.lines)
    index = 0
    while index < len(lines):
        line, number = lines[index], fence.line + 1 + index
        index += 1
        if not line.strip():
            continue
        if (not line.startswith("$ ")) if console else line.lstrip().startswith("#"):
            if commands:  # what the page shows it prints
                commands[-1][3].append(line if console else line.lstrip()[1:].strip())
            continue
        code, comment = split_comment(line[2:] if console else line)
        text = [code]
        while code.endswith("\\") and index < len(lines):
            code, comment = split_comment(lines[index])
            text.append(code)
            index += 1
        commands.append((number, text, comment, []))
    return [
        DocCommand(fence, number, "\n".join(text), comment, tuple(output))
        for number, text, comment, output in commands
    ]
