"""JSON in and out: bodies and query strings parsed into pydantic models, responses rendered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    StringConstraints,
    ValidationError,
)

from chassis.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from chassis.http._problems import validation_problem

M = TypeVar("M", bound=BaseModel)


def _integral(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; a string or a bool never is (strict below).
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Last in an integer field's `Annotated[int, Field(strict=True, ...), JSON_INTEGER]` (after its
# constraints, which the document shows only when they come first): 3 or 3.0, never "3" or true.
JSON_INTEGER = BeforeValidator(_integral)


# What str.strip() removes, spelled out so that the document's regex and Python agree on it.
_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A short text (a name, a category): 1 to 200 characters, something besides spaces in them, no
# NUL; stored without the spaces around it.
Text = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
    ),
    AfterValidator(str.strip),
]

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    # pydantic would also read "0" or 1700000000 as a date (seconds since the epoch)
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


# A date in a query string or body: YYYY-MM-DD and nothing else.
IsoDate = Annotated[date, BeforeValidator(_iso_date)]

_ISO_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt].+")


def _iso_datetime(value: object) -> object:
    # as for dates: no seconds since the epoch passed off as a time
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.fullmatch(value)):
        return value
    raise ValueError("expected an RFC 3339 date-time such as 2026-12-05T09:30:00Z")


# An instant in a query string or body: RFC 3339, with its offset.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema without pydantic's `null` branch: for a value that may be absent
    (a query parameter, a field of a partial update) but never null."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def partial_update_schema(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of a partial update's model: each field may be left out but not set
    to null, and at least one is set."""
    schema["properties"] = {
        name: without_null(prop) for name, prop in schema.get("properties", {}).items()
    }
    schema["minProperties"] = 1


async def json_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The request's JSON body as `model`: 415 if not JSON, 400 if malformed, 422 if invalid."""
    raw = await request.read()  # raises 413 past client_max_size
    if optional and not raw:
        return model()
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from exc
    return validated(model, data)


# Bytes read from an uploaded part at a time.
UPLOAD_CHUNK = 64 * 1024


async def uploaded_file(request: web.Request, field: str, *, max_bytes: int) -> bytes:
    """The one file of a form whose only part is `field`, read as it streams in (the app's
    1 MiB body limit is not this route's): 415 if the body is not `multipart/form-data`, 400 if
    it is malformed, 413 past `max_bytes`, 422 without the part or with any other."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(f"Send the file as multipart/form-data, in the field {field!r}")
    found: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("A nested multipart body is not a file")
            if part.name != field or found is not None:
                name = part.name or "(unnamed)"
                message = f"the form carries one part, {field!r}, and nothing else"
                errors = [{"field": name, "message": message}]
                raise Unprocessable("The request has invalid fields", extra={"errors": errors})
            found = await _read_part(part, field, max_bytes)
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # a malformed form
        raise BadRequest(f"Malformed multipart body: {exc}") from exc
    if found is None:
        errors = [{"field": field, "message": "a file is required"}]
        raise Unprocessable("The request has invalid fields", extra={"errors": errors})
    return found


async def _read_part(part: BodyPartReader, field: str, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The file in {field!r} is larger than {max_bytes // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def query_params(request: web.Request, model: type[M]) -> M:
    """The query string as `model` (422 on a bad or unknown parameter)."""
    return validated(model, dict(request.query))


def validated(model: type[M], data: object) -> M:
    """`data` validated as `model`, or a 422 naming every bad field."""
    nul = list(nul_fields(data))
    if nul:  # PostgreSQL text cannot hold NUL: refused here, for every field alike
        errors = [{"field": field, "message": "must not contain NUL characters"} for field in nul]
        raise Unprocessable("The request has invalid fields", extra={"errors": errors})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from exc


# The same rule in a document's words: a string without NUL.
NUL_FREE = "^[^\\u0000]*$"


def nul_fields(data: object, path: str = "") -> Iterator[str]:
    """The dotted paths of the strings (keys included) in `data` that hold a NUL character."""
    if isinstance(data, str):
        if "\x00" in data:
            yield path or "body"
    elif isinstance(data, dict):
        for key, value in data.items():
            field = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                yield field
            yield from nul_fields(value, field)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nul_fields(value, f"{path}.{index}" if path else str(index))


JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _encode(value: Any) -> str:
    # asyncpg's UUID subclasses uuid.UUID, which orjson only serializes by exact type.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> bytes:
    """JSON bytes, with UUIDs as strings and datetimes as RFC 3339 UTC (`...Z`)."""
    return orjson.dumps(data, default=_encode, option=JSON_OPTIONS)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response rendered with `dumps`."""
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def path_uuid(request: web.Request, name: str = "id") -> str:
    """A path parameter as a canonical UUID string; 404 when it is not a UUID."""
    raw = request.match_info[name]
    if _CANONICAL_UUID.fullmatch(raw):
        return raw
    try:
        return str(UUID(raw))
    except ValueError as exc:
        raise NotFound("No such resource") from exc
