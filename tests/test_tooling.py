"""The repository's own checks: `make test`'s coverage reaches into the programs the tests start (and
changes nothing they print); pre-commit runs the tools of `make check` at the versions pinned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import yaml

from tests.support import clean_env, script

ROOT = Path(__file__).resolve().parent.parent


def executed(report: dict, path: str, marker: str) -> bool:
    """Whether the line of ``path`` that contains ``marker`` ran."""
    lines = (ROOT / path).read_text().splitlines()
    number = next(n for n, text in enumerate(lines, 1) if marker in text)
    return number in report["files"].get(path, {}).get("executed_lines", [])


def test_console_scripts_and_python_m_children_are_measured_and_print_the_same(tmp_path):
    # A measurement of its own, independent of one `make test` may be running around this test.
    env = {name: value for name, value in clean_env().items() if not name.startswith("COVERAGE_")}
    env["COVERAGE_FILE"] = str(tmp_path / ".coverage")
    starter = tmp_path / "start_programs.py"
    starter.write_text(
        textwrap.dedent(f"""
            import subprocess, sys
            console_script = [{script("stats-worker")!r}, "--help"]
            for argv in (console_script, [sys.executable, "-m", "local_issuer", "--help"]):
                done = subprocess.run(argv, capture_output=True, text=True)
                print(repr((done.returncode, done.stderr)))
        """)
    )
    coverage = [sys.executable, "-m", "coverage"]
    rcfile = f"--rcfile={ROOT / 'pyproject.toml'}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*coverage, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    started = run("run", rcfile, str(starter))
    assert started.returncode == 0, started.stderr
    # Both programs ran normally, nothing added to their stderr (tests compare it to the letter).
    assert started.stdout.splitlines() == ["(0, '')", "(0, '')"]
    assert run("combine", rcfile, "--quiet").returncode == 0
    assert run("json", rcfile, "--fail-under=0", "-o", str(tmp_path / "coverage.json")).returncode == 0
    report = json.loads((tmp_path / "coverage.json").read_text())
    assert executed(report, "stats_worker/cli.py", "args = build_parser().parse_args(argv)")
    assert executed(report, "local_issuer/cli.py", "args = parse_args(argv, settings)")


def test_pre_commit_runs_the_tools_of_make_check_at_the_pinned_versions():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    ruff_pin = next(requirement for requirement in dev if requirement.startswith("ruff=="))
    hooks = {
        hook["id"]: hook
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    }
    assert set(hooks) == {"ruff-check", "ruff-format", "mypy"}
    for name in ("ruff-check", "ruff-format"):
        assert hooks[name]["additional_dependencies"] == [ruff_pin], name
    assert hooks["ruff-check"]["entry"].startswith("ruff check")
    assert hooks["ruff-format"]["entry"].startswith("ruff format")
    # mypy from the project's environment, over what [tool.mypy] names (not the files changed).
    assert (hooks["mypy"]["entry"], hooks["mypy"]["pass_filenames"]) == (".venv/bin/mypy", False)
