"""The README and docs/ hold together: every link and anchor resolves, every setting is documented.

Anchors are computed the way GitHub renders headings (lower case, punctuation dropped, spaces to
hyphens, a repeated heading gets ``-1``, ``-2``...), so a link that passes here works there too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from local_issuer.cli import IssuerSettings
from logto_m2m.provision.cli import ProvisionSettings
from shopping_api.config import ApiSettings, ServingSettings
from stats_worker.config import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("README*.md"), *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
LINK = re.compile(r"(?<!!)\[(?:[^\]]|\][^(])*?\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def prose(page: Path) -> str:
    """The page without its code blocks (a link-like string in code is not a link)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for match in HEADING.finditer(prose(page)):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page)) if not re.match(r"[a-z]+:", target)]


def test_there_are_pages_to_check():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/settings.md", "docs/token-checks.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        destination = (page.parent / unquote(path)).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
        elif destination.is_relative_to(ROOT) is False:
            broken.append(f"{target}: outside the repository")
    assert not broken, broken


def test_the_slug_rules():
    assert slug("Use with Logto Cloud / Logto OSS") == "use-with-logto-cloud--logto-oss"
    assert slug("What `make demo` does") == "what-make-demo-does"
    assert slug("Step 1: get an access token (`stats_worker/token_client.py`)") == (
        "step-1-get-an-access-token-stats_workertoken_clientpy"
    )
    assert slug("クイックスタート") == "クイックスタート"


# -- settings: one table, checked against the code and .env.example ---------------------------

SETTINGS_PAGE = ROOT / "docs" / "settings.md"
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
SETTINGS_CLASSES = [ApiSettings, ServingSettings, WorkerSettings, IssuerSettings, ProvisionSettings]


def documented_settings() -> set[str]:
    """Every variable named in the first column of the settings table."""
    names: set[str] = set()
    for line in SETTINGS_PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


@pytest.mark.parametrize("settings_class", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_of_the_code_is_in_the_settings_table(settings_class):
    missing = sorted({name.upper() for name in settings_class.model_fields} - documented_settings())
    assert not missing, f"add rows for these to docs/settings.md: {missing}"


def test_every_setting_in_the_table_is_in_env_example():
    missing = sorted(
        name for name in documented_settings() if not re.search(rf"^#? ?{name}=", ENV_EXAMPLE, re.M)
    )
    assert not missing, f"add these to .env.example: {missing}"


# -- translations: the same commands, code and links as the English README --------------------

INLINE_CODE = re.compile(r"(`+)(.+?)\1")
TRANSLATIONS = ["README.ja.md", "README.ko.md"]


def code_blocks(page: Path) -> list[str]:
    return [match.group(0) for match in FENCE.finditer(page.read_text(encoding="utf-8"))]


def inline_code(page: Path) -> set[str]:
    return {match.group(2) for match in INLINE_CODE.finditer(prose(page))}


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_translation_has_the_same_code_blocks(name):
    """A command changed in one README and not in the others fails here."""
    assert code_blocks(ROOT / name) == code_blocks(ROOT / "README.md")


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_translation_names_the_same_commands_settings_and_files(name):
    english, translated = inline_code(ROOT / "README.md"), inline_code(ROOT / name)
    assert sorted(english - translated) == [], "missing in the translation"
    assert sorted(translated - english) == [], "not in the English README"


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_translation_links_to_the_same_places(name):
    english = {target for target in links(ROOT / "README.md") if not target.startswith("README")}
    translated = {target for target in links(ROOT / name) if not target.startswith("README")}
    # Anchors into the page itself differ by language; links to files and docs pages do not.
    assert {t for t in translated if not t.startswith("#")} == {t for t in english if not t.startswith("#")}


@pytest.mark.parametrize("name", ["README.md", *TRANSLATIONS])
def test_each_readme_links_to_the_others(name):
    first_lines = "\n".join((ROOT / name).read_text(encoding="utf-8").splitlines()[:4])
    for other in {"README.md", *TRANSLATIONS} - {name}:
        assert f"]({other})" in first_lines


@pytest.mark.parametrize("name", ["README.md", *TRANSLATIONS])
def test_readme_stays_a_ten_minute_read(name):
    """About 300 lines: what does not fit belongs in a page of docs/, linked from the README."""
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"{name} has {len(lines)} lines; move reference material into docs/"
