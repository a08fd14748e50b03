"""Orders: create one (atomically), and list those of one calendar day, one page at a time.

The listing is the stats worker's hot path (a million orders a day in under a minute), so it runs
two plain queries per page - the orders, by the (created_at, id) index, then their items - and
builds dicts from rows instead of ORM objects.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from .auth import current_token, require_oauth
from .db import get_session
from .models import Order, OrderItem, Product, utcnow
from .pagination import OrderCursor, bad_cursor, decode_cursor, encode_cursor
from .schemas import OrderCreate, OrderListQuery, OrderOut, OrderPage
from .validation import invalid, operation

bp = Blueprint("orders", __name__)

READ, WRITE = "read:orders", "write:orders"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ORDERS = Order.__table__
ITEMS = OrderItem.__table__


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` starts and ends in ``tz`` (23 or 25 hours apart on DST days)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def order_json(
    id_: int,
    customer_id: str,
    currency: str,
    total: int,
    created_at: datetime,
    created_by: str,
    items: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": id_,
        "customer_id": customer_id,
        "currency": currency,
        "total": total,
        "created_at": created_at.isoformat(timespec="microseconds"),
        "created_by": created_by,
        "items": items,
    }


def of_orders(session: Session, order_ids: list[int]) -> ColumnElement[bool]:
    """``order_items.order_id`` is one of ``order_ids`` (a page's worth: up to a thousand).

    PostgreSQL takes the ids as one array parameter: as a thousand parameters they cost more to
    render, send and plan than the query costs to run.
    """
    if session.get_bind().dialect.name == "postgresql":
        return ITEMS.c.order_id == any_(bindparam("order_ids", order_ids, type_=ARRAY(BigInteger)))
    return ITEMS.c.order_id.in_(order_ids)


@bp.get("/orders")
@require_oauth(READ)
@operation(
    "List the orders created on one calendar day, in (created_at, id) order",
    query=OrderListQuery,
    response=OrderPage,
    errors=(400,),
    description="The day runs from midnight to midnight in `tz` (23 or 25 hours on DST days).",
)
def list_orders(query: OrderListQuery) -> ResponseReturnValue:
    start, end = day_bounds(query.day, query.tz)
    after = None
    if query.cursor:
        position = decode_cursor(query.cursor, OrderCursor)
        if (position.date, position.tz) != (query.date, query.tz):
            bad_cursor("belongs to another date or tz; start again without a cursor")
        if not to_micros(start) <= position.created_us < to_micros(end):
            bad_cursor("points outside the requested day; pass next_cursor back unchanged")
        after = EPOCH + timedelta(microseconds=position.created_us)
    # The index range starts at the cursor's instant (not at midnight), so page 1,000 costs what
    # page 1 does; the row comparison then skips the orders of that instant already seen.
    stmt = (
        select(
            ORDERS.c.id,
            ORDERS.c.customer_id,
            ORDERS.c.currency,
            ORDERS.c.total,
            ORDERS.c.created_at,
            ORDERS.c.created_by,
        )
        .where(ORDERS.c.created_at >= (after or start), ORDERS.c.created_at < end)
        .order_by(ORDERS.c.created_at, ORDERS.c.id)
        .limit(query.limit + 1)
    )
    if after is not None:
        stmt = stmt.where(tuple_(ORDERS.c.created_at, ORDERS.c.id) > tuple_(after, position.id))

    session = get_session()
    rows = session.execute(stmt).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]

    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        # An order and its items are written in one transaction, so these ids find all their items.
        item_rows = session.execute(
            select(
                ITEMS.c.order_id,
                ITEMS.c.product_id,
                ITEMS.c.sku,
                ITEMS.c.name,
                ITEMS.c.quantity,
                ITEMS.c.unit_price,
            )
            .where(of_orders(session, [row[0] for row in rows]))
            .order_by(ITEMS.c.order_id, ITEMS.c.id)
        ).all()
        for order_id, product_id, sku, name, quantity, unit_price in item_rows:
            items[order_id].append(
                {
                    "product_id": product_id,
                    "sku": sku,
                    "name": name,
                    "quantity": quantity,
                    "unit_price": unit_price,
                }
            )

    orders = [order_json(*row, items[row[0]]) for row in rows]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(
            OrderCursor(date=query.date, tz=query.tz, created_us=to_micros(last.created_at), id=last.id)
        )
    body = {"date": query.date, "tz": query.tz, "orders": orders, "next_cursor": next_cursor}
    # A 1,000-order page is the hot path of the stats worker: msgspec writes the same compact JSON
    # as json.dumps(separators=(",", ":"), ensure_ascii=False), in a fifth of the time.
    return current_app.response_class(msgspec.json.encode(body), mimetype="application/json")


@bp.post("/orders")
@require_oauth(WRITE)
@operation(
    "Create an order; prices are taken from the catalog at this moment",
    body=OrderCreate,
    status=201,
    response=OrderOut,
    errors=(400, 413, 415, 422),
)
def create_order(body: OrderCreate) -> ResponseReturnValue:
    session = get_session(write=True)
    wanted = [line.product_id for line in body.items]
    products = {
        product.id: product for product in session.scalars(select(Product).where(Product.id.in_(wanted)))
    }
    problems = {
        f"items.{n}.product_id": "there is no such product"
        for n, line in enumerate(body.items)
        if line.product_id not in products
    }
    if not problems:
        currency = products[wanted[0]].currency
        problems = {
            f"items.{n}.product_id": f"is priced in {products[line.product_id].currency}, "
            f"the order in {currency}; one currency per order"
            for n, line in enumerate(body.items)
            if products[line.product_id].currency != currency
        }
    if problems:
        invalid(422, "validation_failed", "some items cannot be ordered", problems)

    order = Order(
        customer_id=body.customer_id, currency=currency, created_at=utcnow(), created_by=current_token["sub"]
    )
    for line in body.items:
        product = products[line.product_id]
        order.items.append(
            OrderItem(
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                quantity=line.quantity,
                unit_price=product.price,
            )
        )
    order.total = sum(item.quantity * item.unit_price for item in order.items)
    session.add(order)
    session.commit()  # the order and all its lines, or nothing
    lines = [
        {
            "product_id": item.product_id,
            "sku": item.sku,
            "name": item.name,
            "quantity": item.quantity,
            "unit_price": item.unit_price,
        }
        for item in order.items
    ]
    return order_json(
        order.id, order.customer_id, order.currency, order.total, order.created_at, order.created_by, lines
    ), 201
