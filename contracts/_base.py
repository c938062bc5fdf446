"""The base of every contract: an immutable pydantic model whose body carries `type` and
`version`; no two contracts claim the same pair."""

from __future__ import annotations

from typing import ClassVar

import orjson
from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every message: immutable, no unknown fields, `type` and `version` in the body."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    registry: ClassVar[dict[tuple[str, int], type[Contract]]] = {}

    type: str
    version: int

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: object) -> None:
        fields = cls.model_fields
        key = (fields["type"].default, fields["version"].default)
        if key in Contract.registry:
            raise TypeError(f"two contracts claim {key}")
        Contract.registry[key] = cls

    @classmethod
    def type_name(cls) -> str:
        """The `type` every message of this contract carries (its routing key too)."""
        name: str = cls.model_fields["type"].default
        return name

    def encode(self) -> bytes:
        """The message body."""
        return orjson.dumps(self.model_dump(mode="json"))
