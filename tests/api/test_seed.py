"""``flask seed``: counts, several currencies, orders spread over the day in its time zone,
consistent money, determinism, and the listing route serving every seeded order."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from shopping_api import create_app
from shopping_api.db import get_engine
from shopping_api.models import Order, OrderItem, Product
from shopping_api.orders import day_bounds
from tests.api.conftest import walk
from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)

DAY, TZ = "2026-03-08", "America/New_York"  # a DST day: 23 hours
ARGS = ["seed", "--products", "12", "--orders", "300", "--date", DAY, "--tz", TZ, "--customers", "6"]


def run_seed(app, *extra: str) -> str:
    result = app.test_cli_runner().invoke(args=[*ARGS, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def dump(app) -> tuple[list, list, list]:
    """Every seeded row, without the columns that depend on when the seed ran."""
    with app.app_context(), get_engine().connect() as conn:
        products = conn.execute(
            select(Product.id, Product.sku, Product.name, Product.price, Product.currency).order_by(
                Product.id
            )
        ).all()
        orders = conn.execute(
            select(
                Order.id, Order.customer_id, Order.currency, Order.total, Order.created_at, Order.created_by
            ).order_by(Order.id)
        ).all()
        items = conn.execute(
            select(
                OrderItem.order_id,
                OrderItem.product_id,
                OrderItem.sku,
                OrderItem.quantity,
                OrderItem.unit_price,
            ).order_by(OrderItem.id)
        ).all()
    return products, orders, items


def test_seed_fills_one_day(app, client, auth):
    output = run_seed(app, "--random-seed", "7")
    assert "300 orders" in output and "12 created" in output and " s" in output.rsplit("took", 1)[1]
    products, orders, items = dump(app)

    assert len(products) == 12 and {p.sku for p in products} == {f"SEED-{n:05d}" for n in range(1, 13)}
    assert len({p.currency for p in products}) >= 3
    assert len(orders) == 300 and len({o.currency for o in orders}) >= 3

    start, end = day_bounds(date.fromisoformat(DAY), TZ)
    assert all(start <= o.created_at < end for o in orders)
    local_hours = {o.created_at.astimezone(ZoneInfo(TZ)).hour for o in orders}
    assert len(local_hours) >= 20  # spread over the (23-hour) day, not bunched

    customers = {o.customer_id for o in orders}
    assert {"user-alice", "user-bob", "user-carol", "user-dave"} <= customers
    assert customers <= {"user-alice", "user-bob", "user-carol", "user-dave", "user-000005", "user-000006"}

    by_order = defaultdict(list)
    for item in items:
        by_order[item.order_id].append(item)
    price = {p.id: (p.price, p.currency) for p in products}
    for order in orders:
        lines = by_order[order.id]
        assert 1 <= len(lines) <= 3
        assert order.total == sum(line.quantity * line.unit_price for line in lines)
        assert all(price[line.product_id] == (line.unit_price, order.currency) for line in lines)

    listed, _pages = walk(client, "/orders", auth, "orders", date=DAY, tz=TZ, limit=1000)
    assert [o["id"] for o in listed] == [o.id for o in orders]

    # Seeding again keeps the catalog and adds another day's worth; new orders get fresh ids.
    assert "0 created" in run_seed(app, "--random-seed", "8")
    products_after, orders_after, _items = dump(app)
    assert products_after == products and len(orders_after) == 600
    created = client.post(
        "/orders",
        headers=auth,
        json={"customer_id": "user-bob", "items": [{"product_id": products[0].id, "quantity": 1}]},
    )
    assert created.status_code == 201 and created.json["id"] == 601


@pytest.fixture
def second_app(api_settings, tmp_path):
    app = create_app({**api_settings, "DATABASE_URL": f"sqlite:///{tmp_path / 'second.sqlite'}"})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    return app


def test_same_random_seed_same_data(app, second_app):
    run_seed(app, "--random-seed", "42")
    run_seed(second_app, "--random-seed", "42")
    assert dump(app) == dump(second_app)


def test_other_random_seed_other_data(app, second_app):
    run_seed(app, "--random-seed", "1")
    run_seed(second_app, "--random-seed", "2")
    assert dump(app)[1] != dump(second_app)[1]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--tz", "Mars/Olympus"], "--tz"),
        (["--date", "2026-02-30"], "--date"),
        (["--orders", "-1"], "--orders"),
        (["--customers", "0"], "--customers"),
    ],
)
def test_bad_options(app, args, complaint):
    result = app.test_cli_runner().invoke(args=["seed", *args])
    assert result.exit_code == 2 and complaint in result.output
