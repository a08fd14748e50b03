"""Helpers for the shopping API's route tests (the token fixtures live in tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime
from itertools import count

import pytest

from shopping_api.db import get_engine
from shopping_api.models import Order, OrderItem

_skus = count(1)


def product_body(**fields) -> dict:
    body = {
        "sku": f"SKU-{next(_skus):05d}",
        "name": "Blue Mug",
        "description": "350 ml",
        "price": 1999,
        "currency": "USD",
    }
    body.update(fields)
    return body


@pytest.fixture
def auth(bearer):
    """Headers with a token holding every scope of the API."""
    return bearer()


@pytest.fixture
def new_product(client, auth):
    """``new_product(price=..., currency=...)`` -> the created product (as the API returned it)."""

    def _create(**fields) -> dict:
        response = client.post("/products", json=product_body(**fields), headers=auth)
        assert response.status_code == 201, response.json
        return response.json

    return _create


@pytest.fixture
def insert_order(app):
    """Write an order with a chosen ``created_at`` straight into the database (POST uses "now")."""

    def _insert(
        created_at: datetime,
        *,
        customer_id: str = "user-alice",
        currency: str = "USD",
        lines: tuple[tuple[int, int], ...] = ((2, 500),),
    ) -> int:
        with app.app_context(), get_engine().begin() as conn:
            order_id = conn.execute(
                Order.__table__.insert().values(
                    customer_id=customer_id,
                    currency=currency,
                    created_by="test",
                    total=sum(q * p for q, p in lines),
                    created_at=created_at,
                )
            ).inserted_primary_key[0]
            for quantity, price in lines:
                conn.execute(
                    OrderItem.__table__.insert().values(
                        order_id=order_id,
                        product_id=1,
                        sku="SKU-T",
                        name="Test item",
                        quantity=quantity,
                        unit_price=price,
                    )
                )
        return order_id

    return _insert


def walk(client, url: str, headers: dict, key: str, **params) -> tuple[list[dict], int]:
    """Follow ``next_cursor`` to the end; return every item and the number of pages."""
    items, pages, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(url, query_string=query, headers=headers)
        assert response.status_code == 200, response.json
        pages += 1
        items += response.json[key]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return items, pages
