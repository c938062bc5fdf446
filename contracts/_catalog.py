"""Catalog facts that core announces (exchange `relais.events`, routing key = type), and the AI
worker's RPCs over the catalog: semantic search and recommendations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from contracts._base import Contract

MAX_QUERY = 500
MAX_RESULTS = 50


class ProductFacts(BaseModel):
    """What a product event says of the product: what search embeds and filters on.
    `updated_at` orders the events of one product (a later one wins)."""

    product_id: UUID
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    updated_at: datetime


class ProductCreated(Contract, ProductFacts):
    """A product joined the catalog."""

    type: Literal["product.created"] = "product.created"
    version: Literal[1] = 1


class ProductUpdated(Contract, ProductFacts):
    """A product changed (its facts as they are now)."""

    type: Literal["product.updated"] = "product.updated"
    version: Literal[1] = 1


class ProductDeleted(Contract):
    """A product left the catalog."""

    type: Literal["product.deleted"] = "product.deleted"
    version: Literal[1] = 1
    product_id: UUID
    updated_at: datetime


class SearchRequest(Contract):
    """The catalog's products nearest in meaning to `query`, filtered."""

    type: Literal["ai.search"] = "ai.search"
    version: Literal[1] = 1
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY)]
    limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 10
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None


class SearchHit(BaseModel):
    """A product found, and its cosine similarity to the query."""

    product_id: UUID
    name: str
    score: float


class SearchResults(Contract):
    """Hits, best first."""

    type: Literal["ai.search.results"] = "ai.search.results"
    version: Literal[1] = 1
    items: list[SearchHit]


class RecommendationsRequest(Contract):
    """Products to suggest beside `product_id`."""

    type: Literal["ai.recommend"] = "ai.recommend"
    version: Literal[1] = 1
    product_id: UUID
    limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 5


class Recommendation(BaseModel):
    """A product to suggest: bought together with the product (from paid orders), or, for a
    product without that history, similar to it (its nearest neighbours by embedding)."""

    product_id: UUID
    score: float
    reason: Literal["bought_together", "similar"]


class Recommendations(Contract):
    """Suggestions, best first."""

    type: Literal["ai.recommendations"] = "ai.recommendations"
    version: Literal[1] = 1
    items: list[Recommendation]
