"""Fixtures a test module opts into by importing them (they would change other modules' tests if
they lived in conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import JwksServer


@pytest.fixture(scope="module", name="jwks_server")
def shared_jwks_server(signing_key):
    """One JWKS server per module: these tests check routes, not key fetching."""
    server = JwksServer(signing_key).start()
    yield server
    server.stop()


@pytest.fixture(name="database_url")
def sqlite_database_url(tmp_path):
    """SQLite only: for checks that are decided before the database is reached."""
    return f"sqlite:///{tmp_path / 'shop.sqlite'}"
