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


def test_bench_runs_both_benchmarks_in_order(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "bench").mkdir()
    for name in ("auth_overhead", "worker_throughput"):
        (tmp_path / "bench" / f"{name}.py").write_text(
            "import sys\nwith open('ran.txt', 'a') as f:\n"
            f"    f.write('{name} ' + ' '.join(sys.argv[1:]) + '\\n')\n"
        )
    result = make(tmp_path, "bench")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "ran.txt").read_text().splitlines() == ["auth_overhead ", "worker_throughput "]


@pytest.mark.parametrize("script", ["auth_overhead.py", "worker_throughput.py"])
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
