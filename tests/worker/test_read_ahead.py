"""The download thread of the orders client: ahead of the caller, bounded, and out of its way."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

import stats_worker.api_client as api_client
from stats_worker.api_client import FETCH_SWITCH_INTERVAL, read_ahead
from stats_worker.orders import Order, decode_orders


class Source:
    """Pages 1..count, recording which ones were asked for, and from which thread."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.asked: list[int] = []
        self.threads: set[str] = set()
        self.changed = threading.Condition()

    def __iter__(self) -> Iterator[int]:
        for page in range(1, self.count + 1):
            with self.changed:
                self.asked.append(page)
                self.threads.add(threading.current_thread().name)
                self.changed.notify_all()
            if page == self.fail_at:
                raise OSError(f"page {page} failed")
            yield page

    def wait_for(self, pages: int, timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.asked) >= pages, timeout)


def test_fetches_the_next_pages_without_waiting_for_the_caller() -> None:
    source = Source(10)
    pages = read_ahead(iter(source))
    assert next(pages) == 1
    # The caller is still busy with page 1: page 2 is in, and page 3 already under way.
    assert source.wait_for(3), source.asked
    time.sleep(0.2)
    assert source.asked == [1, 2, 3]  # and no further: depth 1 waiting, one in hand
    assert list(pages) == list(range(2, 11))
    assert source.threads == {"orders-read-ahead"}


def test_a_failure_in_the_thread_is_raised_in_the_caller_after_the_pages_before_it() -> None:
    pages = read_ahead(iter(Source(5, fail_at=3)))
    assert [next(pages), next(pages)] == [1, 2]
    with pytest.raises(OSError, match="page 3 failed"):
        next(pages)


def test_stopping_early_ends_the_thread() -> None:
    before = {thread.name for thread in threading.enumerate()}
    source = Source(1000)
    pages = read_ahead(iter(source))
    assert next(pages) == 1
    source.wait_for(3)
    pages.close()
    assert "orders-read-ahead" not in {t.name for t in threading.enumerate()} - before
    assert len(source.asked) <= 4


def test_the_gil_changes_hands_quickly_while_pages_download_and_the_setting_comes_back() -> None:
    original = sys.getswitchinterval()
    seen: list[float] = []
    for _page in read_ahead(iter(Source(3))):
        seen.append(sys.getswitchinterval())
    assert seen == [FETCH_SWITCH_INTERVAL] * 3
    assert sys.getswitchinterval() == original


def test_pages_are_decoded_in_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The download thread reads only the cursor, so the next request never waits on decoding."""
    decoded_in: list[str] = []
    real = decode_orders

    def spy(body: bytes) -> list[Order]:
        decoded_in.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(api_client, "decode_orders", spy)
    client = api_client.ShoppingApiClient("http://shop.invalid", requests.Session(), requests.auth.AuthBase())
    pages = [(b'{"orders":[],"next_cursor":"a"}', "a"), (b'{"orders":[],"next_cursor":null}', None)]
    monkeypatch.setattr(client, "_get_json", lambda _path, _params: pages.pop(0))
    assert list(client.iter_order_pages(dt.date(2026, 11, 20), "UTC")) == [[], []]
    assert decoded_in == [threading.current_thread().name] * 2
