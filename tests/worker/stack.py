"""A real stack for the worker's tests: ``local-issuer`` and the shopping API under gunicorn on a
seeded SQLite database (30 products; 3,000 orders yesterday and 1,500 today, UTC)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, run_script, script

APP_ID, SECRET = "m2m-stats-worker", "stats-worker-local-secret"
TODAY = dt.datetime.now(dt.UTC).date()
DAY1 = TODAY - dt.timedelta(days=1)  # "yesterday" for a worker in UTC
NAMED = ("user-alice", "user-bob", "user-carol", "user-dave")
PRODUCTS = 30  # seeded, one catalog: all on the first page of GET /products


class Stack:
    def __init__(self, root: Path, issuer: ServerProcess, issuer_url: str, api_url: str, db: Path) -> None:
        self.root, self.issuer, self.issuer_url, self.api_url, self.db = root, issuer, issuer_url, api_url, db
        self.runs = 0
        self.products = PRODUCTS

    def token_requests(self) -> int:
        return self.issuer.log_text().count('"POST /oidc/token"')

    def env(self, **more: str) -> dict[str, str]:
        self.runs += 1
        settings = {
            "LOGTO_ENDPOINT": self.issuer_url,
            "LOGTO_APP_ID": APP_ID,
            "LOGTO_APP_SECRET": SECRET,
            "SHOPPING_API_URL": self.api_url,
            "REPORTS_DIR": str(self.root / f"reports-{self.runs}"),
            "STATS_HTTP_BACKOFF_SECONDS": "0.1",
        }
        settings.update(more)
        return clean_env(**settings)

    def orders_on(self, day: dt.date, tz: ZoneInfo) -> list[dict]:
        """The day's orders read from the database, in the API's order."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT id, customer_id, currency, total, created_at FROM orders").fetchall()
            items: dict[int, list] = {}
            for order_id, product_id, sku, name, quantity, unit_price in conn.execute(
                "SELECT order_id, product_id, sku, name, quantity, unit_price FROM order_items ORDER BY id"
            ):
                items.setdefault(order_id, []).append(
                    {
                        "product_id": product_id,
                        "sku": sku,
                        "name": name,
                        "quantity": quantity,
                        "unit_price": unit_price,
                    }
                )
        orders = []
        for order_id, customer_id, currency, total, created_at in rows:
            created = dt.datetime.fromisoformat(created_at).replace(tzinfo=dt.UTC)
            if created.astimezone(tz).date() == day:
                orders.append(
                    {
                        "id": order_id,
                        "customer_id": customer_id,
                        "currency": currency,
                        "total": total,
                        "created_at": created.isoformat(),
                        "items": items[order_id],
                    }
                )
        orders.sort(key=lambda o: (o["created_at"], o["id"]))
        return orders


def _seed(env: dict[str, str], *args: str) -> None:
    result = run_script("flask", "--app", "shopping_api", "seed", *args, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def start_stack(root: Path, issuer_config: Path | None = None) -> tuple[Stack, list[ServerProcess]]:
    issuer_port, api_port = free_port(), free_port()
    issuer_url, api_url = f"http://127.0.0.1:{issuer_port}", f"http://127.0.0.1:{api_port}"
    argv = [script("local-issuer"), "--port", str(issuer_port), "--state-dir", str(root / "issuer")]
    if issuer_config:
        argv += ["--config", str(issuer_config)]
    issuer = ServerProcess(
        argv,
        env=clean_env(),
        cwd=root,
        log_path=root / "issuer.log",
        ready_url=f"{issuer_url}/oidc/.well-known/openid-configuration",
    ).start()
    db = root / "shop.sqlite"
    api_env = clean_env(DATABASE_URL=f"sqlite:///{db}", LOGTO_ENDPOINT=issuer_url)
    _seed(
        api_env,
        "--products",
        str(PRODUCTS),
        "--customers",
        "40",
        "--orders",
        "3000",
        "--date",
        str(DAY1),
        "--random-seed",
        "1",
    )
    _seed(
        api_env,
        "--products",
        str(PRODUCTS),
        "--customers",
        "40",
        "--orders",
        "1500",
        "--date",
        str(TODAY),
        "--random-seed",
        "2",
    )
    api = ServerProcess(
        gunicorn_argv(api_port, workers=2),
        env=api_env,
        cwd=root,
        log_path=root / "api.log",
        ready_url=f"{api_url}/healthz",
    ).start()
    return Stack(root, issuer, issuer_url, api_url, db), [api, issuer]
