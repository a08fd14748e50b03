"""The recipes of docs/adapt-the-template.md work as written.

Each ``## `` section of the page is one recipe. Its ``python title="PATH"`` blocks are new files,
its ``diff title="PATH"`` blocks edits (``-`` lines replaced by ``+`` lines, the others context
that must match exactly once), and its ``sh`` block the pytest command that covers it. The test
applies a recipe to a copy of the repository and runs that command there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import copy_of_the_repository

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "adapt-the-template.md"
BLOCK = re.compile(r"^```(\w+)(?:[ \t]+title=\"([^\"]+)\")?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Recipe:
    title: str
    files: dict[str, str] = field(default_factory=dict)
    edits: list[tuple[str, str]] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


def recipes() -> list[Recipe]:
    found = []
    for section in re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        recipe = Recipe(section.splitlines()[0].strip())
        for language, path, body in BLOCK.findall(section):
            if language == "python" and path:
                recipe.files[path] = body
            elif language == "diff" and path:
                recipe.edits.append((path, body))
            elif language == "sh":
                recipe.commands += [shlex.split(line) for line in body.splitlines() if "pytest" in line]
        found.append(recipe)
    return found


def apply_diff(text: str, diff: str, path: str) -> str:
    """Apply each ``@@`` hunk by finding its context and ``-`` lines, which must occur exactly once."""
    for hunk in re.split(r"^@@.*\n", diff, flags=re.M)[1:]:
        old, new = [], []
        for line in hunk.splitlines():
            mark, rest = (line[:1], line[1:]) if line else (" ", "")
            if mark in " -":
                old.append(rest)
            if mark in " +":
                new.append(rest)
        before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
        count = text.count(before)
        assert count == 1, f"{path}: the recipe's lines\n{before}are found {count} times, not once"
        text = text.replace(before, after)
    return text


def test_the_page_has_the_recipes():
    titles = [recipe.title for recipe in recipes()]
    assert titles == ["Add a scope and a route that needs it", "Add a scheduled job"]
    assert all(recipe.files and recipe.edits and recipe.commands for recipe in recipes())


def test_a_diff_must_match_once():
    assert apply_diff("a\nb\nc\n", "@@\n a\n-b\n+B\n", "x") == "a\nB\nc\n"
    with pytest.raises(AssertionError, match="found 0 times"):
        apply_diff("a\nb\n", "@@\n-z\n+y\n", "x")
    with pytest.raises(AssertionError, match="found 2 times"):
        apply_diff("a\na\n", "@@\n-a\n+b\n", "x")


@pytest.mark.slow
@pytest.mark.parametrize("recipe", recipes(), ids=lambda r: r.title)
def test_recipe_works_as_written(recipe, tmp_path):
    copy = copy_of_the_repository(tmp_path / "repo")
    for path, body in recipe.files.items():
        assert not (copy / path).exists(), f"{path}: the recipe would overwrite a file"
        (copy / path).write_text(body, encoding="utf-8")
    for path, diff in recipe.edits:
        (copy / path).write_text(apply_diff((copy / path).read_text(encoding="utf-8"), diff, path))
    # What the recipe writes passes the project's own checks (`make check` runs them in CI).
    changed = [*recipe.files, *(path for path, _diff in recipe.edits if path.endswith(".py"))]
    ruff = str(Path(sys.executable).parent / "ruff")
    for check in ([ruff, "check", *changed], [ruff, "format", "--check", *changed]):
        result = subprocess.run(check, cwd=copy, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TEST_DATABASE_URL"))}
    env["PYTHONPATH"] = str(copy)  # the copy's packages, not the installed checkout's
    for command in recipe.commands:
        assert command[:4] == [".venv/bin/python", "-m", "pytest", *command[3:4]], command
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *command[3:]],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
