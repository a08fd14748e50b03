"""A deep page of ``GET /orders`` reads its own rows by the indexes, right after a bulk ``seed``.

The statements are the ones the route really ran (captured as it ran), explained on the same
database. On PostgreSQL, autovacuum is switched off for the seeded tables first: then the only
statistics the planner can have are the ones ``seed`` gathers itself, as on a server where
autovacuum has not come round yet (or never will).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from shopping_api.db import get_engine
from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)

DAY, ORDERS, LIMIT, DEEP_PAGE = "2026-11-20", 20_000, 1000, 12
TABLES = ("products", "orders", "order_items")


def deep_page_statements(app: Flask, client: FlaskClient, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """Walk to page ``DEEP_PAGE`` of the day; return what the database ran for that last page."""
    ran: list[tuple[str, Any]] = []
    with app.app_context():
        engine = get_engine()

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        ran.append((statement, parameters))

    query: dict[str, Any] = {"date": DAY, "tz": "UTC", "limit": LIMIT}
    for _ in range(DEEP_PAGE):
        ran.clear()
        event.listen(engine, "before_cursor_execute", record)
        try:
            response = client.get("/orders", query_string=query, headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        body: Any = response.json
        assert response.status_code == 200, body
        assert len(body["orders"]) == LIMIT
        query["cursor"] = body["next_cursor"]
    # Leave out BEGIN and the connection pool's liveness check: what remains is the listing itself.
    return [(sql, parameters) for sql, parameters in ran if sql.startswith("SELECT") and sql != "SELECT 1"]


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def test_a_deep_page_uses_the_indexes_right_after_seed(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    with app.app_context(), get_engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    seed = ["seed", "--orders", str(ORDERS), "--date", DAY, "--customers", "200", "--products", "50"]
    result = app.test_cli_runner().invoke(args=seed)
    assert result.exit_code == 0, result.output

    statements = deep_page_statements(app, client, auth)
    assert len(statements) == 2, statements  # the page's orders, then their items

    with app.app_context(), get_engine().connect() as conn:
        if conn.dialect.name == "postgresql":
            nodes: list[dict[str, Any]] = []
            for statement, parameters in statements:
                explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
                plan: Any = explained.scalar()
                nodes += plan_nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
            scans = {node["Relation Name"]: node for node in nodes if "Relation Name" in node}
            kinds = sorted({node["Node Type"] for node in nodes})
            assert "Seq Scan" not in kinds, kinds
            # the page's own rows (and the one that says there is more), not the rest of the day
            assert scans["orders"]["Node Type"] == "Index Scan", kinds
            assert scans["orders"]["Index Name"] == "ix_orders_created_at_id"
            assert scans["orders"]["Actual Rows"] <= LIMIT + 1
            used = {node.get("Index Name") for node in nodes if node["Node Type"].endswith("Index Scan")}
            assert "ix_order_items_order_id" in used, kinds
        else:
            details = [
                row[-1]
                for statement, parameters in statements
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
            assert any("orders USING INDEX ix_orders_created_at_id" in d for d in details), details
            assert any("order_items USING INDEX ix_order_items_order_id" in d for d in details), details
            assert not any(d.startswith(("SCAN orders", "SCAN order_items")) for d in details), details


def test_seed_leaves_planner_statistics(app: Flask) -> None:
    """``seed`` analyzes what it loaded: the planner knows the tables at once, autovacuum or not."""
    with app.app_context(), get_engine().begin() as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: SQLite's planner needs no statistics for these queries")
        for table in TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    result = app.test_cli_runner().invoke(args=["seed", "--orders", "500", "--date", DAY, "--products", "5"])
    assert result.exit_code == 0, result.output
    with app.app_context(), get_engine().connect() as conn:
        # pg_stats lists a table's columns only once ANALYZE has sampled it
        analyzed = set(
            conn.exec_driver_sql(
                "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()"
            ).scalars()
        )
    assert analyzed == set(TABLES)


def test_a_page_on_postgresql_runs_outside_a_transaction(
    app: Flask, client: FlaskClient, auth: dict[str, str], insert_order: Callable[..., int]
) -> None:
    """Reads run in autocommit on PostgreSQL: no BEGIN and ROLLBACK round trips around each page."""
    insert_order(datetime(2026, 11, 20, 12, tzinfo=UTC))
    with app.app_context():
        engine = get_engine()
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's BEGIN and ROLLBACK are calls inside this process")
    states: list[str] = []

    def record(conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        if statement.startswith("SELECT") and statement != "SELECT 1":
            states.append(conn.connection.dbapi_connection.info.transaction_status.name)

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/orders", query_string={"date": DAY}, headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    body: Any = response.json
    assert response.status_code == 200 and len(body["orders"]) == 1
    assert states == ["IDLE", "IDLE"]  # the orders, then their items; no transaction open
