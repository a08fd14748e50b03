"""``flask --app shopping_api seed``: a sample catalog and N orders spread over one day.

Built for volume (the stats worker's benchmark reads a million orders): rows are generated in
memory and written in chunks, one transaction per chunk, with executemany (SQLite) or COPY
(PostgreSQL), and the tables' planner statistics are refreshed at the end. The same
``--random-seed`` on an empty database gives the same rows.
"""

from __future__ import annotations

import random
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask.cli import with_appcontext
from sqlalchemy import Connection, Engine, Row, Table, func, insert, select
from sqlalchemy.exc import OperationalError

from .db import create_schema, get_engine, unavailable_reason
from .models import Order, OrderItem, Product
from .orders import day_bounds
from .schemas import time_zone_names

#: Named demo customers (the local issuer's users) come first, then synthetic ids.
NAMED_CUSTOMERS = ("user-alice", "user-bob", "user-carol", "user-dave")
#: Currency -> (lowest, highest) price in its minor units (JPY has none: 1 = 1 yen).
PRICE_RANGES = {"USD": (199, 49_999), "EUR": (199, 44_999), "GBP": (199, 39_999), "JPY": (100, 50_000)}
ADJECTIVES = ("Blue", "Compact", "Classic", "Recycled", "Travel", "Deluxe", "Organic", "Wireless")
NOUNS = ("Mug", "Notebook", "Backpack", "Lamp", "Headphones", "Teapot", "Umbrella", "Keyboard")
SEED_SKU = "SEED-{:05d}"
SEEDED_BY = "seed"
CHUNK = 50_000
# From the metadata rather than ``Order.__table__``, which SQLAlchemy types as a bare FromClause.
ORDERS = Order.metadata.tables[Order.__tablename__]
ITEMS = OrderItem.metadata.tables[OrderItem.__tablename__]
#: (id, sku, name, price, currency) of a seeded product.
CatalogRow = Row[int, str, str, int, str]
PRODUCTS = Product.metadata.tables[Product.__tablename__]


@dataclass(frozen=True)
class SeedResult:
    products_created: int
    products_total: int
    orders: int
    items: int
    seconds: float


def customer_ids(count: int) -> list[str]:
    named = list(NAMED_CUSTOMERS[:count])
    return named + [f"user-{n:06d}" for n in range(len(named) + 1, count + 1)]


def catalog(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` products; currencies take turns so every currency has some."""
    currencies = list(PRICE_RANGES)
    products = []
    for n in range(1, count + 1):
        currency = currencies[(n - 1) % len(currencies)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {n}"
        products.append(
            {
                "sku": SEED_SKU.format(n),
                "name": name,
                "description": f"Sample product {n} of the seeded catalog",
                "price": rng.randint(*PRICE_RANGES[currency]),
                "currency": currency,
            }
        )
    return products


def seed_catalog(engine: Engine, count: int, rng: random.Random) -> tuple[int, Sequence[CatalogRow]]:
    """Insert the seed products that are missing; return (created, all seed products)."""
    wanted = catalog(count, rng)
    with engine.begin() as conn:
        existing = set(conn.scalars(select(Product.sku).where(Product.sku.like("SEED-%"))))
        now = datetime.now(UTC)
        new = [
            dict(product, version=1, created_at=now, updated_at=now, created_by=SEEDED_BY)
            for product in wanted
            if product["sku"] not in existing
        ]
        if new:
            conn.execute(insert(Product), new)
        rows = conn.execute(
            select(Product.id, Product.sku, Product.name, Product.price, Product.currency)
            .where(Product.sku.like("SEED-%"))
            .order_by(Product.id)
        ).all()
    return len(new), rows


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany, or on PostgreSQL ``COPY``, its bulk path (several times faster than INSERT)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    cursor = conn.connection.cursor()  # psycopg 3, inside this transaction
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def refresh_statistics(engine: Engine) -> None:
    """``ANALYZE`` the seeded tables on PostgreSQL, so the next query is planned for what they hold.

    A bulk load leaves PostgreSQL with no statistics until autovacuum gets round to the tables
    (never, where it is off). Planning blind, it reads each deep page of ``GET /orders`` as a
    bitmap scan of the rest of the day plus a sort, and the items by a sequential scan: hundreds of
    times the work of the index walk. SQLite needs nothing: without statistics its planner already
    prefers the indexes these queries use.
    """
    if engine.dialect.name != "postgresql":
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE " + ", ".join(quote(table.name) for table in (PRODUCTS, ORDERS, ITEMS)))


def seed(
    engine: Engine, *, products: int, orders: int, day: date, tz: str, customers: int, random_seed: int
) -> SeedResult:
    started = clock.perf_counter()
    create_schema(engine)
    rng = random.Random(random_seed)  # noqa: S311 -- reproducible sample data, not a secret
    created, catalog_rows = seed_catalog(engine, products, rng)
    by_currency: dict[str, list[CatalogRow]] = {}
    for row in catalog_rows:
        by_currency.setdefault(row.currency, []).append(row)
    currencies = sorted(by_currency)
    people = customer_ids(customers)

    start, end = day_bounds(day, tz)
    span_us = (end - start) // timedelta(microseconds=1)
    # Sorted, so ids grow with created_at like real traffic; distinct instants keep order stable.
    offsets = sorted(rng.randrange(span_us) for _ in range(orders))

    with engine.connect() as conn:
        next_order = (conn.scalar(select(func.max(Order.id))) or 0) + 1
        next_item = (conn.scalar(select(func.max(OrderItem.id))) or 0) + 1
    item_count = 0
    for first in range(0, orders, CHUNK):
        order_rows: list[dict[str, Any]] = []
        item_rows: list[dict[str, Any]] = []
        for offset in offsets[first : first + CHUNK]:
            currency = rng.choice(currencies)
            shelf = by_currency[currency]
            lines = rng.sample(shelf, k=min(len(shelf), rng.choice((1, 1, 1, 2, 2, 3))))
            total = 0
            for product in lines:
                quantity = rng.randint(1, 5)
                total += quantity * product.price
                item_rows.append(
                    {
                        "id": next_item,
                        "order_id": next_order,
                        "product_id": product.id,
                        "sku": product.sku,
                        "name": product.name,
                        "quantity": quantity,
                        "unit_price": product.price,
                    }
                )
                next_item += 1
            order_rows.append(
                {
                    "id": next_order,
                    "customer_id": rng.choice(people),
                    "currency": currency,
                    "total": total,
                    "created_at": start + timedelta(microseconds=offset),
                    "created_by": SEEDED_BY,
                }
            )
            next_order += 1
        with engine.begin() as conn:  # one transaction per chunk
            bulk_insert(conn, ORDERS, order_rows)
            bulk_insert(conn, ITEMS, item_rows)
        item_count += len(item_rows)

    if engine.dialect.name == "postgresql" and orders:
        # Ids were given explicitly; move the sequences past them for later POST /orders.
        with engine.begin() as conn:
            for table in (ORDERS, ITEMS):
                sequence = func.pg_get_serial_sequence(table.name, "id")
                conn.execute(select(func.setval(sequence, select(func.max(table.c.id)).scalar_subquery())))
    refresh_statistics(engine)
    return SeedResult(created, len(catalog_rows), orders, item_count, clock.perf_counter() - started)


def _time_zone(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value not in time_zone_names():
        raise click.BadParameter("must be an IANA time zone name such as UTC or Europe/Paris")
    return value


@click.command("seed")
@click.option(
    "--products",
    type=click.IntRange(1, 100_000),
    default=100,
    show_default=True,
    help="Catalog size (products SEED-00001...; existing ones are kept).",
)
@click.option(
    "--orders",
    type=click.IntRange(0, 10_000_000),
    default=1000,
    show_default=True,
    help="Orders to add for the day.",
)
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Day the orders fall on, YYYY-MM-DD in --tz.  [default: yesterday]",
)
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    callback=_time_zone,
    help="IANA time zone the day is counted in.",
)
@click.option(
    "--customers",
    type=click.IntRange(1, 1_000_000),
    default=50,
    show_default=True,
    help="Distinct customers: user-alice, user-bob, user-carol, user-dave, then user-000005...",
)
@click.option(
    "--random-seed",
    type=int,
    default=1,
    show_default=True,
    help="Same seed, same data (on an empty database).",
)
@with_appcontext
def seed_command(
    products: int, orders: int, day: datetime | None, tz: str, customers: int, random_seed: int
) -> None:
    """Fill the database with a sample catalog and ORDERS orders spread over one day."""
    when = day.date() if day else datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
    try:
        result = seed(
            get_engine(),
            products=products,
            orders=orders,
            day=when,
            tz=tz,
            customers=customers,
            random_seed=random_seed,
        )
    except OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {unavailable_reason(exc)}") from None
    click.echo(
        f"seeded {when} ({tz}): {result.orders:,} orders with {result.items:,} items; "
        f"products: {result.products_created:,} created, {result.products_total:,} in the "
        f"seed catalog; {customers:,} customers; took {result.seconds:.1f} s"
    )
