"""``GET /openapi.json``: an OpenAPI 3.1 document built from the routes' ``@operation`` declarations.

Schemas come from the pydantic models that validate the requests, and each route's security entry
names the scope its ``@require_oauth`` demands, so the document describes what is enforced.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, current_app
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .schemas import Error
from .validation import Operation, operation, operation_of

bp = Blueprint("openapi", __name__)

SCHEMA_REF = "#/components/schemas/{model}"
#: What a failed token check answers (RFC 6750); added to every protected route.
AUTH_ERRORS = (401, 403)
#: What any route may answer: 400 for an unknown or repeated query parameter (all routes refuse
#: them), 414/431 from the server itself for an oversized request line or header section.
COMMON_ERRORS = (400, 414, 431)
#: What a route with a JSON body may answer besides its own errors.
BODY_ERRORS = (400, 413, 415, 422)
#: Statuses answered before the app runs: no JSON body is promised for them.
SERVER_ANSWERED = {414: "Request line too long", 431: "Request header fields too large"}
IF_MATCH = {
    "required": "The product's current ETag (from GET /products/{product_id}); 428 without it, "
    "412 if the product changed since",
    "optional": "The product's current ETag: delete only if the product is unchanged (412 otherwise)",
}
_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def operations(app: Flask) -> list[tuple[str, str, str, Operation | None]]:
    """Every (OpenAPI path, method, endpoint, Operation) served; Operation is None if undeclared."""
    found = []
    for rule in app.url_map.iter_rules():
        path = _RULE_VARIABLE.sub(r"{\1}", rule.rule)
        op = operation_of(app.view_functions[rule.endpoint])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), rule.endpoint, op))
    return found


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": where, "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def build_document(app: Flask) -> dict[str, Any]:
    declared = [
        (path, method, endpoint, op) for path, method, endpoint, op in operations(app) if op is not None
    ]
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Error, "serialization")}
    for *_route, op in declared:
        if op.body is not None:
            models.add((op.body, "validation"))
        if op.response is not None:
            models.add((op.response, "serialization"))
    refs, definitions = models_json_schema(
        sorted(models, key=lambda m: (m[0].__name__, m[1])), ref_template=SCHEMA_REF
    )

    def content(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return {"application/json": {"schema": refs[(model, mode)]}}

    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint, op in declared:
        responses: dict[str, dict[str, Any]] = {}
        success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
        if op.response is not None:
            success["content"] = content(op.response, "serialization")
        if op.headers:
            success["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in op.headers.items()
            }
        responses[str(op.status)] = success
        statuses = {*op.errors, *COMMON_ERRORS}
        if op.scope:  # protected routes check a token, then use the database (503 when it cannot)
            statuses |= {*AUTH_ERRORS, 503}
        if op.body is not None:
            statuses |= set(BODY_ERRORS)
        if op.if_match == "required":
            statuses |= {412, 428}
        elif op.if_match == "optional":
            statuses.add(412)
        for status in sorted(statuses):
            if status in SERVER_ANSWERED:
                responses[str(status)] = {"description": SERVER_ANSWERED[status]}
                continue
            responses[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": content(Error, "serialization"),
            }
        entry: dict[str, Any] = {
            "operationId": endpoint.rpartition(".")[2],
            "summary": op.summary,
            "responses": responses,
            "security": [{"bearer": [op.scope]}] if op.scope else [],
        }
        if op.description:
            entry["description"] = op.description
        parameters = []
        if op.if_match is not None:
            parameters.append(
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": op.if_match == "required",
                    "description": IF_MATCH[op.if_match],
                    "schema": {"type": "string"},
                }
            )
        if op.path is not None:
            parameters += _parameters(op.path, "path")
        if op.query is not None:
            parameters += _parameters(op.query, "query")
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": content(op.body, "validation")}
        paths.setdefault(path, {})[method] = entry

    settings = app.config["SETTINGS"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shopping API",
            "version": "1.0.0",
            "description": "The online-shopping API resource of the Logto machine-to-machine "
            f"reference. Send `Authorization: Bearer <access token>`, a token Logto "
            f"issued for the resource `{settings.shopping_api_resource}`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Logto access token (client_credentials grant from "
                    f"{settings.logto_issuer}/token with resource="
                    f"{settings.shopping_api_resource}); each route lists the scope it needs.",
                },
            },
        },
    }


@bp.get("/openapi.json")
@operation("This document (no token needed)")
def openapi_document() -> ResponseReturnValue:
    document = current_app.extensions.get("shopping_api.openapi")
    if document is None:
        document = current_app.extensions["shopping_api.openapi"] = build_document(current_app)
    return document
