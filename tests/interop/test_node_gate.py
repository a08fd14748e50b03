"""Without Node.js the interop tests skip with a hint, except under CI, where they fail."""

from __future__ import annotations

import shutil

import pytest

from . import conftest


@pytest.fixture
def no_node(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)


def test_missing_node_skips_with_how_to_enable(no_node, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"node is not on PATH; to enable.*npm ci"):
        conftest.require_node()


def test_missing_node_fails_under_ci(no_node, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        conftest.require_node()


def test_missing_node_modules_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(conftest, "INTEROP_DIR", tmp_path)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(pytest.skip.Exception, match="node_modules has no oidc-provider"):
        conftest.require_node()
