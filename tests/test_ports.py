"""The suite runs with the ports of a user's own stack taken (tests/conftest.py holds them)."""

from __future__ import annotations

import socket

import pytest


def test_user_ports_are_taken_during_the_run(user_ports_taken):
    for port in user_ports_taken:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", port)) == 0, f"nothing listens on {port}"
        with socket.socket() as sock, pytest.raises(OSError, match="in use"):
            sock.bind(("127.0.0.1", port))  # what a test binding a fixed port would meet
