"""Fixtures shared by the whole suite.

- every test runs in its own working directory with no project setting in its environment, so a
  developer's shell or `.env` cannot change the outcome;
- ``database_url`` runs a test once on SQLite and once on PostgreSQL (when TEST_DATABASE_URL is
  set; CI sets it), each in a fresh database (a new file, or a new schema);
- token fixtures for the shopping API: a test signing key, a real JWKS server, ``make_token``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import is_setting

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _postgres_schema_url(base_url: str):
    """Create a schema of its own for one test; yield a URL whose search_path points at it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, empty database: SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.sqlite'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://user@host/db to run")
    yield from _postgres_schema_url(TEST_DATABASE_URL)
