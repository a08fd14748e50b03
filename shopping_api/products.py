"""The catalog: list, read, create, replace, patch and delete products.

Writes never lose an update: every product has a version, sent as its ``ETag``. PUT and PATCH must
carry ``If-Match`` with the ETag the client last saw (428 without it); if someone else wrote in
between, the answer is 412 and nothing changes. SQLAlchemy's ``version_id_col`` makes the UPDATE
itself conditional (``WHERE id = ? AND version = ?``), so two writers racing past the check still
cannot both win. DELETE honours ``If-Match`` when it is sent.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Blueprint, Response, abort, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from .auth import current_token, require_oauth
from .db import get_session
from .errors import error_response
from .models import Product, utcnow
from .pagination import ProductCursor, decode_cursor, encode_cursor
from .schemas import ProductCreate, ProductListQuery, ProductOut, ProductPage, ProductPatch, ProductPath
from .validation import operation

bp = Blueprint("products", __name__)

READ, WRITE = "read:products", "write:products"


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": product.price,
        "currency": product.currency,
        "created_at": product.created_at.isoformat(timespec="microseconds"),
        "updated_at": product.updated_at.isoformat(timespec="microseconds"),
        "created_by": product.created_by,
    }


def product_response(product: Product, status: int = 200) -> Response:
    response = jsonify(product_json(product))
    response.status_code = status
    response.set_etag(str(product.version))
    return response


def load_product(product_id: int) -> Product:
    product = get_session().get(Product, product_id)
    if product is None:
        abort(error_response(404, "not_found", f"there is no product {product_id}"))
    return product


def check_if_match(product: Product, *, required: bool) -> None:
    """412 unless ``If-Match`` names the product's current ETag (RFC 9110 section 13.1.1)."""
    if "If-Match" not in request.headers:
        if required:
            abort(
                error_response(
                    428,
                    "precondition_required",
                    "send If-Match with the product's ETag (from GET /products/<id>)",
                )
            )
        return
    if not request.if_match.contains(str(product.version)):  # strong comparison; "*" matches
        stale(product)


def stale(product: Product) -> NoReturn:
    response = error_response(
        412, "precondition_failed", "the product changed since you read it; GET it again and retry"
    )
    response.set_etag(str(product.version))
    abort(response)


def sku_taken(sku: str) -> NoReturn:
    abort(
        error_response(
            409,
            "conflict",
            f"another product already has the SKU {sku}",
            fields={"sku": "is already used by another product"},
        )
    )


def save(product: Product) -> None:
    """Commit, turning a SKU clash into 409 and a lost race into 412."""
    session = get_session()
    sku = product.sku  # read now: a rollback reloads the stored values
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        sku_taken(sku)
    except StaleDataError:
        session.rollback()
        stale(load_product(product.id))


@bp.get("/products")
@require_oauth(READ)
@operation(
    "List products, by id, one page at a time",
    scope=READ,
    query=ProductListQuery,
    response=ProductPage,
    errors=(400,),
)
def list_products(query: ProductListQuery) -> ResponseReturnValue:
    after = decode_cursor(query.cursor, ProductCursor).after_id if query.cursor else 0
    rows = (
        get_session()
        .scalars(select(Product).where(Product.id > after).order_by(Product.id).limit(query.limit + 1))
        .all()
    )
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "products": [product_json(product) for product in page],
        "next_cursor": encode_cursor(ProductCursor(after_id=page[-1].id)) if more else None,
    }


@bp.get("/products/<product_id>")
@require_oauth(READ)
@operation(
    "Read one product (its ETag is the version to send in If-Match)",
    scope=READ,
    path=ProductPath,
    response=ProductOut,
    errors=(400, 404),
    headers={"ETag": "current version"},
)
def get_product(path: ProductPath) -> ResponseReturnValue:
    return product_response(load_product(path.product_id))


@bp.post("/products")
@require_oauth(WRITE)
@operation(
    "Create a product",
    scope=WRITE,
    body=ProductCreate,
    status=201,
    response=ProductOut,
    errors=(400, 409, 413, 415, 422),
    headers={"ETag": "version", "Location": "the new product"},
)
def create_product(body: ProductCreate) -> ResponseReturnValue:
    session = get_session(write=True)
    now = utcnow()
    product = Product(**body.model_dump(), created_at=now, updated_at=now, created_by=current_token["sub"])
    session.add(product)
    save(product)
    response = product_response(product, 201)
    response.headers["Location"] = url_for(".get_product", product_id=product.id)
    return response


def change(product_id: int, values: dict[str, Any]) -> Response:
    session = get_session(write=True)
    product = load_product(product_id)
    check_if_match(product, required=True)
    for name, value in values.items():
        setattr(product, name, value)
    if session.is_modified(product):
        product.updated_at = utcnow()
        save(product)
    return product_response(product)


@bp.put("/products/<product_id>")
@require_oauth(WRITE)
@operation(
    "Replace a product (needs If-Match)",
    scope=WRITE,
    path=ProductPath,
    body=ProductCreate,
    response=ProductOut,
    errors=(400, 404, 409, 412, 413, 415, 422, 428),
    headers={"ETag": "new version"},
    if_match="required",
)
def replace_product(path: ProductPath, body: ProductCreate) -> ResponseReturnValue:
    return change(path.product_id, body.model_dump())


@bp.patch("/products/<product_id>")
@require_oauth(WRITE)
@operation(
    "Change some fields of a product (needs If-Match)",
    scope=WRITE,
    path=ProductPath,
    body=ProductPatch,
    response=ProductOut,
    errors=(400, 404, 409, 412, 413, 415, 422, 428),
    headers={"ETag": "new version"},
    if_match="required",
)
def patch_product(path: ProductPath, body: ProductPatch) -> ResponseReturnValue:
    return change(path.product_id, body.model_dump(exclude_unset=True))


@bp.delete("/products/<product_id>")
@require_oauth(WRITE)
@operation(
    "Delete a product (orders keep their copy of it)",
    scope=WRITE,
    path=ProductPath,
    status=204,
    errors=(400, 404, 412),
    if_match="optional",
)
def delete_product(path: ProductPath) -> ResponseReturnValue:
    session = get_session(write=True)
    product = load_product(path.product_id)
    check_if_match(product, required=False)
    session.delete(product)
    save(product)
    return "", 204
