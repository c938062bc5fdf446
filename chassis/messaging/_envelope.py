"""Messages on the wire: one pydantic model per (`type`, `version`), its JSON as the body.

The chassis knows no message by name: a consumer or an RPC server is given the models it
accepts, and decodes with them. A body that is not JSON, names a pair none of them has, or does
not fit its model is an `UnknownContract` (the consumer dead-letters it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError


class UnknownContract(ValueError):
    """A message whose `type`/`version` no accepted model describes, or whose body does not
    fit it."""


def contract_key(model: type[BaseModel]) -> tuple[str, int]:
    """The (`type`, `version`) every message of `model` carries."""
    fields = model.model_fields
    return fields["type"].default, fields["version"].default


def type_name(model: type[BaseModel]) -> str:
    """The `type` every message of `model` carries (its routing key too)."""
    return contract_key(model)[0]


def encode(message: BaseModel) -> bytes:
    """The message body."""
    return orjson.dumps(message.model_dump(mode="json"))


def message_type(message: BaseModel) -> str:
    """The `type` a message carries."""
    return type_name(type(message))


class MessageTypes:
    """Decodes bodies into the models it was given (each must carry a distinct pair)."""

    def __init__(self, models: Iterable[type[BaseModel]]) -> None:
        self.models: dict[tuple[str, int], type[BaseModel]] = {}
        for model in models:
            key = contract_key(model)
            if key in self.models:
                raise TypeError(f"two models claim {key}")
            self.models[key] = model

    def decode(self, body: bytes) -> BaseModel:
        """The message a body holds; `UnknownContract` if no model fits it."""
        try:
            data = orjson.loads(body)
            key = (data["type"], data["version"])
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise UnknownContract(f"not a contract envelope: {exc}") from exc
        model = self.models.get(key)
        if model is None:
            raise UnknownContract(f"unknown message type {key[0]!r} version {key[1]!r}")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise UnknownContract(f"invalid {key[0]} v{key[1]}: {exc.errors()[0]['msg']}") from exc


class RpcError(BaseModel):
    """An RPC server's refusal: the caller raises it as a problem with this status, and with the
    problem type the server named (`slug`, `title`: a domain error's, raised in the handler)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["rpc.error"] = "rpc.error"
    version: Literal[1] = 1
    status: int
    detail: str
    slug: str = "remote-error"
    title: str = "The worker refused the request"
