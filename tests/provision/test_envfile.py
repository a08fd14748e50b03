"""Credentials into a .env file: other lines kept, replaced in place, mode 0600, read back as written."""

from __future__ import annotations

import os
import stat

import pytest
from dotenv import dotenv_values

from logto_m2m.provision.envfile import EnvFileError, update_env

BEFORE = """# my settings
LOGTO_ENDPOINT=https://tenant.logto.app

export LOGTO_APP_ID="old-id"
SHOPPING_API_URL=http://127.0.0.1:8000   # the API
"""


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_replaces_in_place_appends_the_rest_and_keeps_every_other_line(tmp_path):
    path = tmp_path / ".env"
    path.write_text(BEFORE)
    path.chmod(0o644)
    changed = update_env(path, {"LOGTO_APP_ID": "new-id", "LOGTO_APP_SECRET": "s3cr3t"})
    assert changed == ["LOGTO_APP_ID", "LOGTO_APP_SECRET"]
    assert path.read_text() == (
        "# my settings\n"
        "LOGTO_ENDPOINT=https://tenant.logto.app\n"
        "\n"
        "LOGTO_APP_ID=new-id\n"
        "SHOPPING_API_URL=http://127.0.0.1:8000   # the API\n"
        "LOGTO_APP_SECRET=s3cr3t\n"
    )
    assert mode(path) == 0o600
    assert dotenv_values(path)["LOGTO_APP_SECRET"] == "s3cr3t"


def test_new_file_is_created_0600(tmp_path):
    path = tmp_path / "sub" / ".env"
    assert update_env(path, {"A": "1"}) == ["A"]
    assert path.read_text() == "A=1\n"
    assert mode(path) == 0o600


def test_same_values_write_nothing(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nB='2'\n")
    path.chmod(0o600)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert update_env(path, {"A": "1", "B": "2"}) == []
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_a_readable_file_is_tightened_even_when_values_are_unchanged(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    path.chmod(0o644)
    assert update_env(path, {"A": "1"}) == []
    assert mode(path) == 0o600


def test_file_without_final_newline_and_values_that_need_quotes(tmp_path):
    path = tmp_path / ".env"
    path.write_text("X=1")
    update_env(path, {"S": "a b#c$d"})
    assert path.read_text() == "X=1\nS='a b#c$d'\n"
    assert dotenv_values(path) == {"X": "1", "S": "a b#c$d"}


def test_a_variable_set_twice_is_kept_once_with_the_new_value(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=new\nB=x\nA=stale\n")
    assert update_env(path, {"A": "new"}) == ["A"]
    assert path.read_text() == "A=new\nB=x\n"


def test_unwritable_value_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / ".env"
    with pytest.raises(EnvFileError, match="cannot be written"):
        update_env(path, {"A": "it's"})
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_one_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(EnvFileError, match="cannot be written"):
            update_env(locked / ".env", {"A": "1"})
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("value", ["abc\\", "x\\\\y", "cr\rhere", "tab\there", "del\x7f"])
def test_a_value_dotenv_would_read_back_otherwise_is_refused(tmp_path, value):
    """A backslash in single quotes is an escape to dotenv; a control character breaks the line."""
    env = tmp_path / ".env"
    env.write_text("KEEP=1\n")
    with pytest.raises(EnvFileError, match="LOGTO_APP_ID"):
        update_env(env, {"LOGTO_APP_ID": value, "LOGTO_APP_SECRET": "fine"})
    assert env.read_text() == "KEEP=1\n"  # nothing half-written


def test_a_carriage_return_in_a_kept_line_stays_as_it_is(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"OTHER='a\rb'\nLOGTO_APP_ID=old\n")
    update_env(env, {"LOGTO_APP_ID": "new"})
    assert env.read_bytes() == b"OTHER='a\rb'\nLOGTO_APP_ID=new\n"
