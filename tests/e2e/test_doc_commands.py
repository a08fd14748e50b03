"""Every command the pages show (README.md, docs/*.md) is one a test runs.

The commands are the lines of the pages' ``sh`` blocks and the ``$ `` lines of their ``console``
blocks. Each is run either here (``RUN_HERE`` names the test or fixture of this module that runs
it) or elsewhere (``ELSEWHERE``, one table: the test, or CI's ``.ci/run``, that runs it, and words
of that place's source that show it). ``test_every_command_is_run_by_a_test`` fails for a command
in neither, naming its page and line.

Here, commands run as written, in a copy of the repository whose ``.venv`` is the tests'
environment: one bash session per copy, fed one command at a time as a user types them, so what a
command sets (``. .venv/bin/activate``, ``TOKEN=$(...)``) holds for the next, with ``.venv/bin``
on ``PATH`` as after ``. .venv/bin/activate``. What differs is where things listen and whose tenant
it is, as the pages document: the issuer and the API listen on free ports, moved there by lines in
``.env`` (the README's "Moving a port"), and ``127.0.0.1:3001``, ``localhost:3001``,
``127.0.0.1:8000`` and ``localhost:8000`` in a command become those ports; a Logto tenant's
placeholders (``https://{tenant-id}.logto.app``, the bootstrap app's ID and secret) become the
local issuer's bootstrap tenant, with the values the pages give for Logto OSS. A server that a page
starts in a terminal of its own (``local-issuer``, ``gunicorn``, ``stats-worker run``) runs in the
session's background until the test stops it with SIGTERM, and must exit cleanly. Where a page
shows what a command prints (a comment after it, the lines after it, the block after its block),
the real output is held to it.

docs/deployment.md's token request and ``curl`` run against the local issuer and gunicorn on free
ports, not against compose's nginx: tests/test_compose_stack.py sends that request through the
compose stack.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support import ROOT, Checkout, DocCommand, Fence, answers, doc_commands, fences

pytestmark = pytest.mark.slow

PAGES = ["README.md", *sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))]

ONE_DAY = (
    'curl -s "http://127.0.0.1:8000/orders?date=2026-11-20&tz=Europe/Paris&limit=1000"'
    ' -H "Authorization: Bearer $TOKEN"'
)

#: The commands this module runs: per page, per test or fixture, a piece of each command's text
#: (the command whose text it is, else the one command that contains it). A command a page shows
#: again is run where its first showing is.
RUN_HERE: dict[str, dict[str, tuple[str, ...]]] = {
    "docs/local-issuer.md": {
        "shop": (".venv/bin/local-issuer",),
        "test_the_local_issuer_page": (
            "curl -s -u m2m-stats-worker:stats-worker-local-secret",
            "local-issuer --config local_issuer/bootstrap.yaml &",
            "TOKEN=$(curl -s -u m2m-bootstrap-admin:bootstrap-admin-local-secret",
            "http://127.0.0.1:3001/api/resources -d",
            "local-issuer --host 0.0.0.0",
        ),
    },
    "docs/shopping-api.md": {
        "shop": (
            ". .venv/bin/activate",
            "flask --app shopping_api init-db",
            "flask --app shopping_api seed --orders 100000 --date 2026-11-20 --tz Europe/Paris",
            'gunicorn "shopping_api:create_app()"',
            "curl -s http://127.0.0.1:8000/healthz",
        ),
        "test_the_shopping_api_page": (
            "TOKEN=$(curl -s -u m2m-admin:admin-local-secret",
            "-X POST http://127.0.0.1:8000/products",
            "-X POST http://127.0.0.1:8000/orders",
            ONE_DAY,
            "CURSOR=$(curl",
            "&cursor=$CURSOR",
            "| grep -i etag",
            """-d '{"price": 2499}'""",
            """-d '{"price": 2599}'""",
            "DATABASE_URL=mysql://x/y",
            "X-Request-ID: my-trace-1",
        ),
    },
    "docs/deployment.md": {
        "test_the_deployment_page": (
            "cp .env.example .env",
            "TOKEN=$(curl -s -u m2m-admin:admin-local-secret http://localhost:3001",
            "http://localhost:8000/products",
        ),
    },
    "docs/stats-worker.md": {
        "test_the_stats_worker_page": (
            "stats-worker once",
            "stats-worker once --date 2026-11-20",
            "stats-worker backfill --from 2026-11-01 --to 2026-11-20",
            "stats-worker run",
            "stats-worker sync",
            "stats-worker status",
        ),
    },
    "docs/provisioning.md": {
        "test_the_provisioning_page": (
            "LOGTO_ENDPOINT=https://{tenant-id}.logto.app",
            "LOGTO_MANAGEMENT_API_RESOURCE=https://{tenant-id}.logto.app/api",
            "LOGTO_ADMIN_APP_ID=<App ID of the bootstrap app>",
            "LOGTO_ADMIN_APP_SECRET=<its App secret>",
            ".venv/bin/logto-m2m provision --env-file .env",
            "sed 's/roles:",
            ".venv/bin/logto-m2m provision --env-file .env --tenant my-tenant.yaml",
            "LOGTO_MANAGEMENT_API_RESOURCE=https://{tenant-id}.logto.app/api .venv/bin/logto-m2m",
            "--state-dir .local-issuer-bootstrap",
            "--env-file provisioned.env --with-users",
        ),
    },
}


@dataclass(frozen=True)
class Elsewhere:
    """What runs a page's command when this module does not: a test (``file::function``), a test
    file of the suite, or CI's script; how, when not to the letter; and words of that place's source
    (``(file, text)``) that show it runs the command."""

    test: str
    how: str
    evidence: tuple[tuple[str, str], ...] = ()


CI = ".ci/run"
_IN_THE_SUITE = "it is part of the suite that `make test` runs"
_MAKE_INSTALL = Elsewhere(
    CI,
    "`make check`, CI's first step, builds the install target (`.venv/.installed`) first",
    ((CI, "\nmake check\n"), ("Makefile", "install: $(STAMP)"), ("Makefile", "check: $(STAMP)")),
)
_MAKE_TEST = Elsewhere(CI, "CI runs `make test` after `make check`", ((CI, "\nmake test\n"),))


def _readme(test: str, title: str) -> Elsewhere:
    return Elsewhere(
        f"tests/e2e/test_readme.py::{test}",
        f"as written, with the rest of the README section {title!r}, in a copy of the repository",
        (("tests/e2e/test_readme.py", f'section_blocks("{title}")'),),
    )


def _bench(script: str) -> Elsewhere:
    return Elsewhere(
        "tests/test_makefile.py::test_the_benchmarks_make_runs_exist",
        f"`--help` only: the full run takes minutes and is `make bench`, which runs bench/{script} "
        "(tests/test_makefile.py::test_bench_runs_the_benchmarks_in_order_and_a_miss_stops_none)",
        (("tests/test_makefile.py", f'"{script}"'), ("Makefile", f"bench/{script}")),
    )


_RECIPE = Elsewhere(
    "tests/test_recipes.py::test_recipe_works_as_written",
    "in a copy of the repository the recipe was applied to",
    (("tests/test_recipes.py", 'if "pytest" in line'),),
)
_THREE_TERMINALS = _readme("test_three_terminals_as_written", "Run it by hand in three terminals")
_USE_WITH_LOGTO = _readme("test_use_with_logto_as_written", "Use with Logto Cloud / Logto OSS")

#: The commands run elsewhere, by page and command (its text on one line, without its comment).
ELSEWHERE: dict[tuple[str, str], Elsewhere] = {
    ("README.md", "make demo"): Elsewhere(
        "tests/e2e/test_demo.py::test_make_demo_narrates_the_flow_and_runs_twice",
        "with the tests' interpreter and a work directory of its own",
        (("tests/e2e/test_demo.py", '"demo",'),),
    ),
    ("README.md", "make test"): _MAKE_TEST,
    ("README.md", "make install"): _MAKE_INSTALL,
    **{
        ("README.md", command): _THREE_TERMINALS
        for command in (
            "cp .env.example .env",
            ".venv/bin/local-issuer",
            ".venv/bin/flask --app shopping_api init-db",
            ".venv/bin/flask --app shopping_api seed --orders 1000",
            '.venv/bin/gunicorn "shopping_api:create_app()"',
            ".venv/bin/stats-worker once",
        )
    },
    **{
        ("README.md", command): _USE_WITH_LOGTO
        for command in (
            "LOGTO_ENDPOINT=https://{tenant-id}.logto.app",
            "LOGTO_MANAGEMENT_API_RESOURCE=https://{tenant-id}.logto.app/api",
            "LOGTO_ADMIN_APP_ID=<App ID of the bootstrap app>",
            "LOGTO_ADMIN_APP_SECRET=<its App secret>",
            ".venv/bin/logto-m2m provision --env-file .env",
        )
    },
    (
        "docs/adapt-the-template.md",
        ".venv/bin/python -m pytest tests/api/test_whoami.py tests/api/test_openapi.py",
    ): _RECIPE,
    ("docs/adapt-the-template.md", ".venv/bin/python -m pytest tests/worker/test_catalog_check.py"): _RECIPE,
    ("docs/benchmarks.md", ".venv/bin/python bench/auth_overhead.py"): _bench("auth_overhead.py"),
    (
        "docs/benchmarks.md",
        "TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test "
        ".venv/bin/python bench/orders_pages.py --orders 200000 --rounds 5",
    ): _bench("orders_pages.py"),
    (
        "docs/benchmarks.md",
        ".venv/bin/python bench/worker_throughput.py --orders 200000 --customers 20000 --rounds 3",
    ): _bench("worker_throughput.py"),
    ("docs/benchmarks.md", ".venv/bin/python bench/worker_throughput.py"): _bench("worker_throughput.py"),
    ("docs/deployment.md", "docker compose up --build -d --wait"): Elsewhere(
        "tests/test_compose_stack.py::stack",
        "with a project name, host ports and a subnet of its own (skipped without a Docker engine)",
        (
            ("tests/test_compose_stack.py", 'self.compose("up", *extra, "-d", "--wait"'),
            ("tests/test_compose_stack.py", 'stack.up("--build")'),
        ),
    ),
    (
        "docs/deployment.md",
        ".venv/bin/python -c 'from tests.test_nginx import healthz_delay_under_slow_clients as d; "
        """print(d("http://127.0.0.1:8000"))'""",
    ): Elsewhere(
        "tests/test_compose_stack.py::test_slow_clients_do_not_delay_healthz",
        "the same function, at the compose stack's published API port",
        (("tests/test_compose_stack.py", "healthz_delay_under_slow_clients(stack.api_url)"),),
    ),
    ("docs/deployment.md", ".venv/bin/python -m pytest tests/test_nginx.py -q"): Elsewhere(
        "tests/test_nginx.py", _IN_THE_SUITE
    ),
    ("docs/deployment.md", ".venv/bin/python -m pytest tests/test_compose_stack.py -q"): Elsewhere(
        "tests/test_compose_stack.py", _IN_THE_SUITE
    ),
    ("docs/local-issuer.md", "make install"): _MAKE_INSTALL,
    ("docs/shopping-api.md", ".venv/bin/python -m pytest tests/api/test_schema_fuzz.py -q"): Elsewhere(
        "tests/api/test_schema_fuzz.py", _IN_THE_SUITE
    ),
    ("docs/tests.md", "make test"): _MAKE_TEST,
    (
        "docs/tests.md",
        "TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test make test",
    ): Elsewhere(
        CI,
        "it sets this TEST_DATABASE_URL unless one is set, then runs `make test`",
        ((CI, "TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test"), (CI, "\nmake test\n")),
    ),
    ("docs/tests.md", 'make test PYTEST_ARGS="tests/api -k token"'): Elsewhere(
        "tests/test_makefile.py::test_a_narrowed_test_run_is_not_held_to_the_coverage_floor",
        "real make, with stand-ins for coverage that record what it runs",
        (("tests/test_makefile.py", '"PYTEST_ARGS=tests/api -k token"'),),
    ),
    ("docs/tests.md", "bash .ci/run"): Elsewhere(CI, "CI's entry point: CI runs this script"),
}

NOT_RUN = (
    "{where}: `{key}` is run by no test. Run it as written in a test of tests/e2e/test_doc_commands.py "
    "and add it to RUN_HERE, or add it to ELSEWHERE naming the test that runs it; a command no test "
    "can run belongs in the page's prose, not in a ```sh block"
)


def place(page: str) -> tuple[list[tuple[DocCommand, str]], list[str]]:
    """Each command of ``page`` with what runs it (a test or fixture here, or ELSEWHERE's test), and
    what is wrong: commands nothing runs, entries that name no command of the page."""
    commands = doc_commands(page)
    first: dict[str, DocCommand] = {}
    for command in commands:
        first.setdefault(command.key, command)
    runner_of: dict[str, str] = {}
    problems = []
    for runner, pieces in RUN_HERE.get(page, {}).items():
        for piece in pieces:
            keys = [key for key in first if key == piece] or [key for key in first if piece in key]
            if len(keys) != 1:
                problems.append(
                    f"RUN_HERE[{page!r}][{runner!r}]: {piece!r} names {len(keys)} commands, not one"
                )
            elif keys[0] in runner_of:
                problems.append(f"RUN_HERE[{page!r}]: `{keys[0]}` is run by two tests")
            else:
                runner_of[keys[0]] = runner
    placed = []
    for command in commands:
        here, there = runner_of.get(command.key), ELSEWHERE.get((page, command.key))
        if here and there:
            problems.append(f"{command.where}: `{command.key}` is both in RUN_HERE and in ELSEWHERE")
        elif here or there:
            placed.append((command, here or (there.test if there else "")))
        else:
            problems.append(NOT_RUN.format(where=command.where, key=command.key))
    problems += [
        f"ELSEWHERE names `{key}`, a command {page} does not show"
        for listed_page, key in ELSEWHERE
        if listed_page == page and key not in first
    ]
    return placed, problems


def test_the_pages_have_commands():
    assert "docs/shopping-api.md" in PAGES and "README.md" in PAGES
    assert all(doc_commands(page) for page in RUN_HERE)


def test_every_command_is_run_by_a_test():
    problems = [problem for page in PAGES for problem in place(page)[1]]
    problems += [f"RUN_HERE names {page}, which is not a page" for page in RUN_HERE if page not in PAGES]
    assert not problems, "\n".join(problems)


def test_every_runner_named_runs_what_it_is_said_to():
    """RUN_HERE names tests and fixtures of this module; ELSEWHERE names tests that exist, whose
    source holds the words of the command it is said to run."""
    problems = [
        f"RUN_HERE[{page!r}] names {runner}, which is no test or fixture of this module"
        for page, runners in RUN_HERE.items()
        for runner in runners
        if runner not in globals()
    ]
    for (page, key), place_ in ELSEWHERE.items():
        path, _, function = place_.test.partition("::")
        if not (ROOT / path).is_file():
            problems.append(f"{page}: `{key}`: {path} does not exist")
        elif function and not re.search(rf"^def {function}\(", (ROOT / path).read_text(), re.M):
            problems.append(f"{page}: `{key}`: {path} has no {function}")
        elif path.startswith("tests/") and not re.fullmatch(r"test_\w+\.py", Path(path).name):
            problems.append(f"{page}: `{key}`: {path} is not a test file pytest collects")
        for file, words in place_.evidence:
            if words not in (ROOT / file).read_text(encoding="utf-8"):
                problems.append(f"{page}: `{key}`: {file} does not say {words!r}")
    assert not problems, "\n".join(problems)


def test_a_command_no_test_runs_is_named_with_its_line(monkeypatch):
    monkeypatch.delitem(ELSEWHERE, ("docs/tests.md", "bash .ci/run"))
    problems = place("docs/tests.md")[1]
    assert re.match(r"docs/tests\.md:\d+: `bash \.ci/run` is run by no test\. Run it as written", problems[0])
    assert "ELSEWHERE" in problems[0] and "prose" in problems[0]


# -- running the pages' commands -----------------------------------------------------------


class Walk:
    """The commands of a page that RUN_HERE gives to one test or fixture: each taken once, by a
    piece of its text, and all of them by the end (``done``)."""

    def __init__(self, request: pytest.FixtureRequest, page: str) -> None:
        self.page = page
        self.runner = request.fixturename or request.function.__name__
        placed, problems = place(page)
        assert not problems, "\n".join(problems)
        assert self.runner in RUN_HERE[page], f"RUN_HERE gives {self.runner} nothing of {page}"
        seen: set[str] = set()
        self.left = []
        for command, runner in placed:
            if runner == self.runner and command.key not in seen:
                seen.add(command.key)
                self.left.append(command)

    def take(self, piece: str) -> DocCommand:
        found = [c for c in self.left if c.key == piece] or [c for c in self.left if piece in c.key]
        assert len(found) == 1, f"{piece!r} names {len(found)} of the commands of {self.page} left to run"
        self.left.remove(found[0])
        return found[0]

    def done(self) -> None:
        assert not self.left, f"{self.runner} did not run: " + ", ".join(c.where for c in self.left)


@dataclass
class Ran:
    """A command run in a Shell: its status and its output (still growing for a background job)."""

    command: str
    status: int
    out: Path
    err: Path
    job: int | None = None

    @property
    def stdout(self) -> str:
        return self.out.read_bytes().decode(errors="replace")  # as printed: HTTP's \r\n kept

    @property
    def stderr(self) -> str:
        return self.err.read_bytes().decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.stdout)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


class Shell:
    """One bash session in a checkout, fed commands one at a time the way a user types them."""

    def __init__(self, checkout: Checkout, logs: Path) -> None:
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed: the pages' commands use it")
        self.checkout = checkout
        self.logs = logs
        logs.mkdir(parents=True)
        self.count = 0
        self.jobs: dict[int, Ran] = {}
        path = f"{checkout.root / '.venv' / 'bin'}{os.pathsep}{checkout.env.get('PATH', '')}"
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=checkout.root,
            env={**checkout.env, "PATH": path},
            text=True,
            start_new_session=True,
        )

    def run(self, command: DocCommand | str, *, background: bool = False, timeout: float = 60) -> Ran:
        """Run ``command`` (a page's, localized), or one of the test's own; wait for its status."""
        text = self.checkout.localized(command.text) if isinstance(command, DocCommand) else command
        if background:
            text += " &"
        self.count += 1
        out, err, status = (self.logs / f"{self.count}.{name}" for name in ("out", "err", "status"))
        assert self.bash.stdin is not None
        self.bash.stdin.write(
            f"{{\n{text}\n}} >'{out}' 2>'{err}' </dev/null\n"
            f"echo \"$? $!\" >'{status}.new' && mv '{status}.new' '{status}'\n"
        )
        self.bash.stdin.flush()
        deadline = time.monotonic() + timeout
        while not status.exists():
            if time.monotonic() > deadline or self.bash.poll() is not None:
                raise AssertionError(
                    f"{text}\ndid not finish in {timeout} s:\n{out.read_text()}{err.read_text()}"
                )
            time.sleep(0.02)
        code, _, job = status.read_text().strip().partition(" ")
        ran = Ran(text, int(code), out, err)
        if text.endswith("&"):
            ran.job = int(job)
            self.jobs[ran.job] = ran
        return ran

    def check(self, command: DocCommand | str, **kwargs: Any) -> Ran:
        ran = self.run(command, **kwargs)
        assert ran.status == 0, f"{ran.command}\nexit status {ran.status}\n{ran.stdout}{ran.stderr}"
        return ran

    def serve(
        self, command: DocCommand | str, *, url: str = "", says: str = "", background: bool = True
    ) -> Ran:
        """Start a server in the background; return once ``url`` answers, or its log ``says`` so."""
        job = self.run(command, background=background)
        assert job.job is not None
        pid, deadline = job.job, time.monotonic() + 30
        if url:
            ready = answers(url, 30, running=lambda: running(pid))
        else:
            while says not in job.stderr and running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            ready = says in job.stderr
        assert ready, f"{job.command}: not ready\n{job.stdout}{job.stderr}"
        return job

    def stop(self, job: Ran) -> int:
        """SIGTERM a background job; its exit status."""
        assert job.job is not None
        del self.jobs[job.job]
        return self.run(f"kill -TERM {job.job}; wait {job.job}", timeout=30).status

    def close(self) -> dict[str, int]:
        """Stop what still runs in the background, then the shell; the jobs' exit statuses."""
        statuses: dict[str, int] = {}
        try:
            for job in list(self.jobs.values()):
                statuses[job.command] = self.stop(job)
            assert self.bash.stdin is not None
            self.bash.stdin.write("exit\n")
            self.bash.stdin.flush()
            self.bash.wait(10)
        finally:
            if self.bash.poll() is None:
                os.killpg(self.bash.pid, signal.SIGKILL)
                self.bash.wait()
            self.bash.stdin.close()
        return statuses


def shown_after(command: DocCommand) -> Fence:
    """The block a page shows right after the command's block (its output)."""
    page = fences(command.fence.page)
    following = page[page.index(command.fence) + 1]
    lines = (ROOT / command.fence.page).read_text(encoding="utf-8").splitlines()
    between = lines[command.fence.line + len(command.fence.lines) + 1 : following.line - 1]
    assert not any(line.strip() for line in between), f"{command.where}: no block right after it"
    return following


def shown_block(page: str, start: str) -> Fence:
    """The block of ``page`` whose first line starts with ``start``."""
    return next(fence for fence in fences(page) if fence.lines and fence.lines[0].startswith(start))


def matches(shown: str, real: str) -> bool:
    """Whether a line a page shows is the real one: ``...`` at its start stands for what precedes
    (a log line's time and process), a word with ``...`` for any word (a key id)."""
    words = []
    for word in shown.removeprefix("... ").split(" "):
        _, dots, after = word.partition("...")
        words.append(r"\S*" + re.escape(after) if dots else re.escape(word))
    return re.fullmatch((".* " if shown.startswith("... ") else "") + " ".join(words), real) is not None


def agree(real: Any, shown: Any, where: str = "", *, generated: tuple[str, ...] = ()) -> None:
    """``real`` is what the page shows: the same keys and values, where the page's ``"..."`` is any
    string, ``"abc..."`` any string starting so, a timestamp any timestamp, and a key of
    ``generated`` (an id the server makes) any value of the same type."""
    if isinstance(shown, dict):
        assert isinstance(real, dict) and set(real) == set(shown), (
            f"{where}: {real} has not the keys of {shown}"
        )
        for key, value in shown.items():
            if key in generated:
                assert type(real[key]) is type(value), f"{where}.{key}: {real[key]!r}"
            else:
                agree(real[key], value, f"{where}.{key}", generated=generated)
    elif isinstance(shown, list):
        assert isinstance(real, list) and len(real) == len(shown), f"{where}: {real} against {shown}"
        for index, (real_item, shown_item) in enumerate(zip(real, shown, strict=True)):
            agree(real_item, shown_item, f"{where}[{index}]", generated=generated)
    elif isinstance(shown, str) and shown.endswith("..."):
        assert isinstance(real, str) and real.startswith(shown[:-3]), f"{where}: {real!r} against {shown!r}"
    elif isinstance(shown, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:", shown):
        assert isinstance(real, str) and dt.datetime.fromisoformat(real), f"{where}: {real!r} is no timestamp"
    else:
        assert real == shown, f"{where}: {real!r}, the page shows {shown!r}"


def shown_answer(command: DocCommand) -> tuple[int, Any]:
    """The status and JSON body a page shows after a command, as ``# 201 {...}`` lines."""
    status, _, body = " ".join(command.output).partition(" ")
    return int(status), json.loads(body)


# -- the shop: the local issuer and the API, started and seeded as the pages say -------------


@dataclass
class Shop:
    checkout: Checkout
    shell: Shell
    issuer: Ran
    api: Ran

    def statuses(self, request: str) -> list[int]:
        """The statuses of the API's access log lines for ``request`` ("PATCH /products/1")."""
        return [int(s) for s in re.findall(rf'"{re.escape(request)} HTTP/1\.1" (\d{{3}})', self.api.stderr)]

    def answered(self, command: DocCommand, request: str) -> tuple[Ran, int]:
        """Run a page's command that sends ``request`` to the API; the status the API answered."""
        before = len(self.statuses(request))
        ran = self.shell.check(command)
        deadline = time.monotonic() + 5
        while len(self.statuses(request)) <= before and time.monotonic() < deadline:
            time.sleep(0.02)  # the access line follows the answer
        statuses = self.statuses(request)
        assert len(statuses) > before, f"{request} is not in the API's log:\n{self.api.stderr}"
        return ran, statuses[-1]


@pytest.fixture(scope="module")
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """docs/local-issuer.md's issuer and docs/shopping-api.md's first block: the API's tables, a
    seeded day, gunicorn and its health; in a copy of the repository with the README's `.env`."""
    workdir = tmp_path_factory.mktemp("shop")
    checkout = Checkout(workdir / "repo")
    shutil.copy(checkout.root / ".env.example", checkout.root / ".env")  # the README's `cp`
    checkout.move_issuer()
    checkout.move_api()
    shell = Shell(checkout, workdir / "shell")
    try:
        pages = Walk(request, "docs/local-issuer.md")
        start = pages.take(".venv/bin/local-issuer")
        discovery = f"http://127.0.0.1:{checkout.issuer_port}/oidc/.well-known/openid-configuration"
        issuer = shell.serve(start, url=discovery)
        (started,) = shown_after(start).lines
        log = (issuer.stdout + issuer.stderr).splitlines()
        assert any(matches(f"... {checkout.localized(started)}", line) for line in log), log
        pages.done()

        page = "docs/shopping-api.md"
        pages = Walk(request, page)
        shell.check(pages.take(". .venv/bin/activate"))
        assert "schema ready" in shell.check(pages.take("init-db")).stdout
        seeded = shell.check(pages.take("seed --orders 100000"), timeout=120).stdout.strip()
        (shown,) = shown_block(page, "seeded ").lines  # "The `seed` at the top of this page"
        assert re.sub(r"took [\d.]+ s", "took ... s", seeded) == re.sub(r"took [\d.]+ s", "took ... s", shown)
        api = shell.serve(
            pages.take('gunicorn "shopping_api:create_app()"'),
            url=f"http://127.0.0.1:{checkout.api_port}/readyz",
        )
        healthz = pages.take("/healthz")
        assert shell.check(healthz).stdout.strip() == healthz.comment
        pages.done()
        yield Shop(checkout, shell, issuer, api)
    finally:
        statuses = shell.close()
    assert set(statuses.values()) <= {0}, statuses  # SIGTERM: both stop cleanly


def test_the_shopping_api_page(request, shop):
    pages = Walk(request, "docs/shopping-api.md")
    shell = shop.shell
    shell.check(pages.take("TOKEN=$(curl -s -u m2m-admin:admin-local-secret"))

    for path in ("/products", "/orders"):  # the answers the page shows after each
        command = pages.take(f"-X POST http://127.0.0.1:8000{path}")
        ran, status = shop.answered(command, f"POST {path}")
        shown_status, shown = shown_answer(command)
        assert status == shown_status
        agree(ran.json(), shown, f"{command.where}: POST {path}")

    day = shell.check(pages.take(ONE_DAY)).json()
    assert (day["date"], day["tz"], len(day["orders"])) == ("2026-11-20", "Europe/Paris", 1000)
    paris = ZoneInfo("Europe/Paris")
    days = {
        dt.datetime.fromisoformat(order["created_at"]).astimezone(paris).date() for order in day["orders"]
    }
    assert days == {dt.date(2026, 11, 20)}
    shell.check(pages.take("CURSOR=$(curl"))
    following = shell.check(pages.take("&cursor=$CURSOR")).json()  # the next page of the same day

    def position(order: dict) -> tuple[str, int]:
        return order["created_at"], order["id"]

    assert len(following["orders"]) == 1000 and following["next_cursor"]
    assert position(following["orders"][0]) > position(day["orders"][-1])

    etag = pages.take("| grep -i etag")
    assert shell.check(etag).stdout.strip() == etag.comment  # ETag: "1"
    first, second = pages.take("""-d '{"price": 2499}'"""), pages.take("""-d '{"price": 2599}'""")
    ran, status = shop.answered(first, "PATCH /products/1")
    shown_status, shown_etag = first.comment.split(", ")  # 200, ETag: "2"
    assert (str(status), ran.json()["price"]) == (shown_status, 2499)
    assert shell.check(etag).stdout.strip() == shown_etag
    ran, status = shop.answered(second, "PATCH /products/1")
    assert str(status) == second.comment and ran.json()["error"] == "precondition_failed"  # 412

    refused = pages.take("DATABASE_URL=mysql://x/y")
    ran = shell.check(refused)
    real = (ran.stderr + ran.stdout).splitlines()
    for shown_line in refused.output:
        assert any(matches(shown_line, line) for line in real), f"{shown_line!r} not in {real}"

    traced = pages.take("X-Request-ID: my-trace-1")
    assert shell.check(traced).stdout.strip() == traced.output[0]  # X-Request-ID: my-trace-1
    pages.done()


def test_the_local_issuer_page(request, shop, tmp_path):
    page = "docs/local-issuer.md"
    pages = Walk(request, page)
    token = pages.take("curl -s -u m2m-stats-worker:stats-worker-local-secret")
    agree(shop.shell.check(token).json(), json.loads("\n".join(shown_after(token).lines)), token.where)

    # The bootstrap tenant, in a copy of its own (its state in that copy's .local-issuer/).
    checkout = Checkout(tmp_path / "repo")
    checkout.move_issuer()
    shell = Shell(checkout, tmp_path / "shell")
    try:
        discovery = f"http://127.0.0.1:{checkout.issuer_port}/oidc/.well-known/openid-configuration"
        shell.serve(
            pages.take("local-issuer --config local_issuer/bootstrap.yaml &"), url=discovery, background=False
        )
        shell.check(pages.take("TOKEN=$(curl -s -u m2m-bootstrap-admin:bootstrap-admin-local-secret"))
        create = pages.take("/api/resources -d")
        shown = json.loads("\n".join(shown_after(create).lines))
        agree(shell.check(create).json(), shown, create.where, generated=("id",))
        assert shell.check(create).json() == {  # "The same request again answers 422 ..."
            "code": "resource.resource_identifier_in_use",
            "message": "The API identifier https://shopping.api is already in use",
        }
        refused = pages.take("local-issuer --host 0.0.0.0")
        ran = shell.run(refused)
        assert (ran.status, ran.stdout + ran.stderr) == (2, "\n".join(refused.output) + "\n")  # exit status 2
    finally:
        statuses = shell.close()
    assert list(statuses.values()) == [0]
    pages.done()


def test_the_deployment_page(request, shop, tmp_path):
    """The compose page's first steps; its request goes to the local issuer and gunicorn here."""
    pages = Walk(request, "docs/deployment.md")
    copy = Checkout(tmp_path / "repo")
    copy.run(pages.take("cp .env.example .env").text)
    assert "COMPOSE_PROFILES=local" in (copy.root / ".env").read_text().splitlines()  # its comment

    shop.shell.check(pages.take("TOKEN=$(curl -s -u m2m-admin:admin-local-secret http://localhost:3001"))
    ran, status = shop.answered(pages.take("http://localhost:8000/products"), "GET /products")
    head, _, body = ran.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK") and status == 200 and "products" in json.loads(body)
    request_id = re.search(r"^X-Request-ID: (\S+?)\r?$", head, re.M | re.I)
    assert request_id, head  # and the API's log lines for the request carry it
    assert f'[{request_id.group(1)}] 127.0.0.1 "GET /products HTTP/1.1" 200' in shop.api.stderr
    pages.done()


def test_the_stats_worker_page(request, shop):
    pages = Walk(request, "docs/stats-worker.md")
    shell, reports = shop.shell, shop.checkout.root / "reports"

    def report(day: dt.date) -> dict:
        return json.loads((reports / f"{day}.json").read_text(encoding="utf-8"))

    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)  # STATS_TIMEZONE=UTC
    once = shell.check(pages.take("stats-worker once")).stdout
    assert f"{yesterday} (UTC): {report(yesterday)['orders']:,} orders" in once
    seed_day = dt.date(2026, 11, 20)
    once = shell.check(pages.take("stats-worker once --date 2026-11-20"), timeout=120).stdout
    assert f"2026-11-20 (UTC): {report(seed_day)['orders']:,} orders" in once
    shell.check(pages.take("stats-worker backfill --from 2026-11-01 --to 2026-11-20"), timeout=120)
    assert {f"2026-11-{day:02}.json" for day in range(1, 21)} <= {path.name for path in reports.iterdir()}
    # The seeded Paris day is the UTC day before's last hour and the rest of the UTC day.
    assert report(seed_day - dt.timedelta(days=1))["orders"] + report(seed_day)["orders"] == 100_000

    worker = shell.serve(pages.take("stats-worker run"), says="stats worker started")
    assert shell.stop(worker) == 0  # SIGTERM
    assert "SIGTERM received: stopping" in worker.stderr and "stats worker stopped" in worker.stderr

    synced = shell.check(pages.take("stats-worker sync")).stdout  # the sync is off in .env.example
    assert synced.strip() == "no custom data is pending: nothing to sync"
    status = shell.check(pages.take("stats-worker status")).stdout.splitlines()
    shown = shown_block("docs/stats-worker.md", "report    ").lines
    assert status[-1] == "healthy"
    assert {line.split()[0] for line in status[:-1]} <= {line.split()[0] for line in shown if line[:1] != " "}
    pages.done()


def test_the_provisioning_page(request, tmp_path):
    """The page's "Run it" on one bootstrap tenant (then "Try it offline"'s run on it), and the
    tenant file without the Management API role on another; each started as "Try it offline" says."""
    page = "docs/provisioning.md"
    pages = Walk(request, page)
    settings = [  # "Before you start": the bootstrap app's settings, into .env
        pages.take("LOGTO_ENDPOINT=https://{tenant-id}.logto.app"),
        pages.take("LOGTO_MANAGEMENT_API_RESOURCE=https://{tenant-id}.logto.app/api"),
        pages.take("LOGTO_ADMIN_APP_ID=<App ID of the bootstrap app>"),
        pages.take("LOGTO_ADMIN_APP_SECRET=<its App secret>"),
    ]
    issuer = pages.take("--state-dir .local-issuer-bootstrap")
    shells: list[Shell] = []
    try:
        for name in ("run-it", "no-sync"):
            checkout = Checkout(tmp_path / name)
            checkout.move_issuer(endpoint=False)  # the page's LOGTO_ENDPOINT line says where
            for line in settings:  # "keep LOGTO_MANAGEMENT_API_RESOURCE out" for the worker without sync
                if name == "run-it" or "LOGTO_MANAGEMENT_API_RESOURCE" not in line.key:
                    checkout.add_to_dotenv(checkout.localized(line.text) + "\n")
            shell = Shell(checkout, tmp_path / f"{name}-shell")
            shells.append(shell)
            discovery = f"http://127.0.0.1:{checkout.issuer_port}/oidc/.well-known/openid-configuration"
            shell.serve(issuer, url=discovery)
        run_it, no_sync = shells

        provision = pages.take(".venv/bin/logto-m2m provision --env-file .env")
        first = run_it.check(provision).stdout.splitlines()
        shown = shown_block(page, "Provisioning the packaged tenant file").lines
        assert first == [run_it.checkout.localized(line) for line in shown]
        again = run_it.check(provision).stdout.splitlines()
        assert again[-2:] == list(shown_block(page, "Nothing to change").lines)
        dotenv = run_it.checkout.root / ".env"
        assert "LOGTO_APP_SECRET=" in dotenv.read_text() and dotenv.stat().st_mode & 0o777 == 0o600
        offline = run_it.check(pages.take("--env-file provisioned.env --with-users")).stdout.splitlines()
        assert offline[-1] == "created 4, updated 0, unchanged 12, conflicts 0"  # the users
        assert "LOGTO_APP_ID=" in (run_it.checkout.root / "provisioned.env").read_text()

        no_sync.check(pages.take("sed 's/roles:"))
        assert "roles: [Shopping reader]\n" in (no_sync.checkout.root / "my-tenant.yaml").read_text()
        without = pages.take(".venv/bin/logto-m2m provision --env-file .env --tenant my-tenant.yaml")
        first = no_sync.check(without).stdout.splitlines()
        assert 'created       app "Stats worker": machine-to-machine, roles Shopping reader' in first
        assert first[-1] == "created 9, updated 0, unchanged 3, conflicts 0"
        cloud = no_sync.check(
            pages.take("LOGTO_MANAGEMENT_API_RESOURCE=https://{tenant-id}.logto.app/api .venv")
        )
        assert cloud.stdout.splitlines()[-1] == "created 0, updated 0, unchanged 12, conflicts 0"
    finally:
        statuses = [status for shell in shells for status in shell.close().values()]
    assert statuses == [0, 0]
    pages.done()
