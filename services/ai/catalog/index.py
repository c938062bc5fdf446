"""The search index in memory: every live product's unit-length embedding in one float32
matrix, with the facts search filters on beside it.

Search is exact: one matrix-vector product over the whole catalog (10,000 products x 384
dimensions is 15 MB and a millisecond or two), so no approximate index can miss a product and
a change is searchable the moment it is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import numpy as np

from services.ai.embeddings import DIMENSIONS


@dataclass(frozen=True)
class Entry:
    """A product as the index holds it."""

    product_id: UUID
    name: str
    category: str
    price_cents: int
    vector: np.ndarray


@dataclass(frozen=True)
class Hit:
    """A product found, and its cosine similarity to the query."""

    product_id: UUID
    name: str
    score: float


class VectorIndex:
    """Live products' embeddings, searchable by cosine similarity with filters."""

    def __init__(self, capacity: int = 1024) -> None:
        self._vectors = np.zeros((capacity, DIMENSIONS), np.float32)
        self._prices = np.zeros(capacity, np.int64)
        self._categories: list[str] = []
        self._names: list[str] = []
        self._ids: list[UUID] = []
        self._rows: dict[UUID, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._rows

    def upsert(self, entry: Entry) -> None:
        """Add a product, or replace what the index holds of it."""
        row = self._rows.get(entry.product_id)
        if row is None:
            row = len(self._ids)
            if row == len(self._vectors):  # full: double (amortised O(1) per insert)
                self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
                self._prices = np.concatenate([self._prices, np.zeros_like(self._prices)])
            self._ids.append(entry.product_id)
            self._names.append(entry.name)
            self._categories.append(entry.category)
            self._rows[entry.product_id] = row
        else:
            self._names[row], self._categories[row] = entry.name, entry.category
        self._vectors[row] = entry.vector
        self._prices[row] = entry.price_cents

    def remove(self, product_id: UUID) -> None:
        """Forget a product (nothing if the index does not hold it): the last row takes its
        place."""
        row = self._rows.pop(product_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row], self._names[row] = moved, self._names[last]
            self._categories[row] = self._categories[last]
            self._vectors[row], self._prices[row] = self._vectors[last], self._prices[last]
            self._rows[moved] = row
        self._ids.pop()
        self._names.pop()
        self._categories.pop()

    def vector_of(self, product_id: UUID) -> np.ndarray | None:
        """A product's embedding (a copy), None if the index does not hold it."""
        row = self._rows.get(product_id)
        return None if row is None else self._vectors[row].copy()

    def search(
        self,
        query: np.ndarray,
        limit: int,
        *,
        category: str | None = None,
        min_price: int | None = None,
        max_price: int | None = None,
        exclude: UUID | None = None,
    ) -> list[Hit]:
        """The `limit` products most similar to `query` that pass the filters, best first."""
        count = len(self._ids)
        if count == 0:
            return []
        scores = self._vectors[:count] @ query
        keep = np.ones(count, bool)
        if category is not None:
            keep &= np.fromiter((c == category for c in self._categories), bool, count)
        if min_price is not None:
            keep &= self._prices[:count] >= min_price
        if max_price is not None:
            keep &= self._prices[:count] <= max_price
        if exclude is not None and exclude in self._rows:
            keep[self._rows[exclude]] = False
        candidates = np.flatnonzero(keep)
        if len(candidates) > limit:
            top = np.argpartition(-scores[candidates], limit - 1)[:limit]
            candidates = candidates[top]
        best = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [Hit(self._ids[row], self._names[row], float(scores[row])) for row in best]
