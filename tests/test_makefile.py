"""The Makefile's targets, run by real make on a copy of it: `bench` runs both benchmarks,
`clean` removes what the project makes in the repository root and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import clean_env

ROOT = Path(__file__).resolve().parent.parent


def make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("make")
    if binary is None:
        pytest.skip("make is not installed")
    # -o: never (re)build the virtualenv; BIN: the interpreter running the tests.
    return subprocess.run(
        [
            binary,
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            f"BIN={Path(sys.executable).parent}",
            *args,
        ],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("database", ["", "postgresql+psycopg://postgres@127.0.0.1:1/none"])
def test_bench_runs_the_benchmarks_in_order_and_a_miss_stops_none(tmp_path, database):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "bench").mkdir()
    for name in ("auth_overhead", "worker_throughput", "orders_pages"):
        (tmp_path / "bench" / f"{name}.py").write_text(
            "import sys\nwith open('ran.txt', 'a') as f:\n"
            f"    f.write('{name} ' + ' '.join(sys.argv[1:]) + '\\n')\n"
            "sys.exit(1)  # a missed target\n"
        )
    env = {k: v for k, v in clean_env().items() if k != "TEST_DATABASE_URL"}
    if database:
        env["TEST_DATABASE_URL"] = database
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            f"BIN={Path(sys.executable).parent}",
            "bench",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ran = (tmp_path / "ran.txt").read_text().splitlines()
    if database:  # bench/orders_pages.py needs PostgreSQL: it runs last, and its miss is the status
        assert ran == ["auth_overhead ", "worker_throughput ", "orders_pages "]
        assert result.returncode != 0
    else:
        assert ran == ["auth_overhead ", "worker_throughput "]
        assert "bench/orders_pages.py skipped: set TEST_DATABASE_URL" in result.stdout
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["auth_overhead.py", "worker_throughput.py", "orders_pages.py"])
def test_the_benchmarks_make_runs_exist(script):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_clean_removes_what_the_project_makes_and_nothing_else(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    made = [
        ".demo/.demo-workdir",
        ".demo/shop.sqlite",
        "instance/shopping.sqlite",
        "reports/2026-01-01.json",
        ".local-issuer/signing-keys.json",
        "logto_m2m_reference.egg-info/PKG-INFO",
    ]
    kept = ["README.md", "bench/reports/keep.txt", "src/other.egg-info/PKG-INFO", "notes/instance/keep.txt"]
    for name in made + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    result = make(tmp_path, "clean")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in made:
        assert not (tmp_path / name.split("/")[0]).exists(), name
    for name in kept:
        assert (tmp_path / name).read_text() == "x", name


def test_clean_leaves_a_demo_directory_the_demo_did_not_mark(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".demo").mkdir()
    (tmp_path / ".demo" / "mine.txt").write_text("x")
    result = make(tmp_path, "clean")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / ".demo" / "mine.txt").read_text() == "x"


def fake_tools(tmp_path: Path, failing: str = "") -> Path:
    """A BIN directory whose ruff, mypy and coverage only log their arguments (and ``failing`` fails)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for tool in ("ruff", "mypy", "coverage"):
        (bin_dir / tool).write_text(
            "#!/bin/sh\n"
            f'echo "{tool} $* (stale data files: $(ls -a | grep -c "^.coverage"))" >> calls.txt\n'
            f'[ "{tool} $1" = "{failing}" ] && exit 1\n'
            "exit 0\n"
        )
        (bin_dir / tool).chmod(0o755)
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    return bin_dir


def make_with(cwd: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("make")
    if binary is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        [binary, "--no-print-directory", "-o", ".venv/.installed", f"BIN={bin_dir}", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(cwd: Path) -> list[str]:
    return [line.split(" (stale")[0].rstrip() for line in (cwd / "calls.txt").read_text().splitlines()]


def test_check_runs_lint_format_and_types(tmp_path):
    result = make_with(tmp_path, fake_tools(tmp_path), "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["ruff check .", "ruff format --check .", "mypy"]


@pytest.mark.parametrize("failing", ["ruff check", "ruff format", "mypy "], ids=["lint", "format", "types"])
def test_check_fails_on_any_finding(tmp_path, failing):
    result = make_with(tmp_path, fake_tools(tmp_path, failing=failing), "check")
    assert result.returncode != 0
    assert calls(tmp_path)[-1].startswith(failing.strip())  # and stops there


def test_test_runs_the_suite_under_coverage_then_combines_and_reports(tmp_path):
    bin_dir = fake_tools(tmp_path)
    (tmp_path / ".coverage.host.1234.Xstale").write_text("from an earlier run")
    result = make_with(tmp_path, bin_dir, "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["coverage run -m pytest", "coverage combine --quiet", "coverage report"]
    # Data files of an earlier run are removed first: they would be combined into this one's figure.
    assert "(stale data files: 0)" in (tmp_path / "calls.txt").read_text().splitlines()[0]


def test_a_narrowed_test_run_is_not_held_to_the_coverage_floor(tmp_path):
    # docs/tests.md's example of a part of the suite
    result = make_with(tmp_path, fake_tools(tmp_path), "test", "PYTEST_ARGS=tests/api -k token")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == [
        "coverage run -m pytest tests/api -k token",
        "coverage combine --quiet",
        "coverage report --fail-under=0",
    ]


def test_a_failing_suite_fails_make_test(tmp_path):
    result = make_with(tmp_path, fake_tools(tmp_path, failing="coverage run"), "test")
    assert result.returncode != 0
    assert calls(tmp_path) == ["coverage run -m pytest"]
