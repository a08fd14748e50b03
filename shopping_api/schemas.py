"""What the API accepts and returns, as pydantic models (also the source of /openapi.json).

Bounds are chosen so that nothing a client sends can overflow a column: a price fits in 10^12
minor units, a quantity in 10,000, an order in 100 lines, so a total stays below 10^18 < 2^63.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

MAX_ID = 2**31 - 1
MAX_PRICE = 10**12
MAX_QUANTITY = 10_000
MAX_ORDER_ITEMS = 100
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Days GET /orders can be asked about (day boundaries must stay representable in every time zone).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
#: ``date`` for annotations inside OrderListQuery, where the name is one of its fields.
CalendarDay = date


#: The string rules below as JSON Schema patterns (ECMA-262 and Python read them alike), so
#: /openapi.json states them; a test checks each pattern accepts exactly what the code accepts.
_CONTROL = r"\x00-\x1f\x7f"
#: Whitespace as ``str.strip`` sees it, less the control characters already in _CONTROL.
_EDGE_SPACE = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SINGLE_LINE_PATTERN = rf"^[^{_CONTROL}{_EDGE_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_EDGE_SPACE}])?$"
NO_NUL_PATTERN = r"^[^\x00]*$"


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no database can store a lone surrogate.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _single_line(value: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(value: str) -> str:
    if value not in time_zone_names():
        raise ValueError("must be an IANA time zone name such as UTC or Europe/Paris")
    return value


def _calendar_day(value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a calendar date YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def _integral(value: object) -> object:
    # JSON has one number type: 1999.0 is the integer 1999 (JSON Schema's "integer" agrees, and
    # Python's json.dumps writes floats that way). 19.99, "1999" and true stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integral = BeforeValidator(_integral)
# Constraints first, then Integral: it must wrap them for them to show in the JSON Schema.
Id = Annotated[int, Field(ge=1, le=MAX_ID), Integral]
Sku = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"),
    Field(description="Stock keeping unit, unique: letters, digits, '.', '_', '-'", examples=["MUG-001"]),
]
ProductName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_storable),
    AfterValidator(_single_line),
    Field(
        description="One line: no control characters, no whitespace at either end",
        json_schema_extra={"pattern": SINGLE_LINE_PATTERN},
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_storable),
    Field(description="Free text without NUL characters", json_schema_extra={"pattern": NO_NUL_PATTERN}),
]
Price = Annotated[
    int,
    Field(ge=0, le=MAX_PRICE, description="Integer minor units: 1999 = 19.99 USD", examples=[1999]),
    Integral,
]
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code", examples=["USD"])
]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), Integral]
CustomerId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"),
    Field(description="The customer's Logto user id", examples=["user-alice"]),
]
Cursor = Annotated[
    str,
    StringConstraints(max_length=512, pattern=r"^[A-Za-z0-9_\-]+$"),
    Field(description="Opaque: the next_cursor of the previous page, unchanged"),
]
Timestamp = Annotated[
    datetime, Field(description="ISO 8601, UTC, with offset", examples=["2026-11-20T13:45:07.123456+00:00"])
]


class Body(BaseModel):
    """JSON bodies: exact types (no "12" for 12, no 12.5 for 12) and no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """Query strings and path values: text converted to numbers, no unknown parameters."""

    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------


class ProductCreate(Body):
    """A product; also the body of PUT, which replaces every field."""

    sku: Sku
    name: ProductName
    description: Description = ""
    price: Price
    currency: Currency


def _without_defaults(schema: dict[str, Any]) -> None:
    # "Omitted" is the only default of a PATCH field; a default of null would invite sending null.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class ProductPatch(Body):
    """Only the fields to change; none may be null (leave a field out to keep its value)."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_without_defaults)

    # Not Optional: None here only marks "not sent" (exclude_unset); a null sent is refused below.
    sku: Sku = Field(default=None)  # type: ignore[assignment]  # None: not sent, as said above
    name: ProductName = Field(default=None)  # type: ignore[assignment]  # None: not sent, as said above
    description: Description = Field(default=None)  # type: ignore[assignment]  # None: not sent, as said above
    price: Price = Field(default=None)  # type: ignore[assignment]  # None: not sent, as said above
    currency: Currency = Field(default=None)  # type: ignore[assignment]  # None: not sent, as said above

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields the client sent: omitted means "keep", null is a mistake.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class OrderLine(Body):
    product_id: Id
    quantity: Quantity


class OrderCreate(Body):
    customer_id: CustomerId
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_ITEMS)]

    @field_validator("items")
    @classmethod
    def _distinct_products(cls, items: list[OrderLine]) -> list[OrderLine]:
        ids = [item.product_id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear once; add up the quantities")
        return items


class ProductPath(Query):
    product_id: Id


class ProductListQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
    cursor: Cursor | None = None


class OrderListQuery(Query):
    date: Annotated[
        str,
        StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        Field(description="Calendar day YYYY-MM-DD, in `tz`", examples=["2026-11-20"]),
    ]
    tz: Annotated[
        str,
        StringConstraints(max_length=64),
        AfterValidator(_time_zone),
        Field(
            description="IANA time zone name",
            examples=["Europe/Paris"],
            json_schema_extra=lambda schema: schema.update(enum=sorted(time_zone_names())),
        ),
    ] = "UTC"
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
    cursor: Cursor | None = None

    @field_validator("date")
    @classmethod
    def _day(cls, value: str) -> str:
        _calendar_day(value)
        return value

    @property
    def day(self) -> CalendarDay:
        return date.fromisoformat(self.date)


# -- responses (documentation and tests; views build plain dicts for speed) ------------------


class ProductOut(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    price: Price
    currency: Currency
    created_at: Timestamp
    updated_at: Timestamp
    created_by: Annotated[str, Field(description="Client id of the M2M app that created it")]


class ProductPage(BaseModel):
    products: list[ProductOut]
    next_cursor: Annotated[
        str | None, Field(description="Pass as `cursor` for the next page; null on the last")
    ]


class OrderItemOut(BaseModel):
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Price


class OrderOut(BaseModel):
    id: int
    customer_id: str
    currency: Currency
    total: Annotated[int, Field(description="Sum of quantity x unit_price, minor units")]
    created_at: Timestamp
    created_by: str
    items: list[OrderItemOut]


class OrderPage(BaseModel):
    date: str
    tz: str
    orders: list[OrderOut]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


class Error(BaseModel):
    error: Annotated[str, Field(examples=["validation_failed"])]
    error_description: str
    fields: Annotated[
        dict[str, str] | None,
        Field(
            description="Dotted path of each bad field -> what is wrong",
            examples=[{"items.0.quantity": "Input should be greater than or equal to 1"}],
        ),
    ] = None
