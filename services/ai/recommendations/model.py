"""Item-item collaborative filtering on baskets: "customers who bought this also bought".

Each paid order is a basket (the set of products it bought). Two products are related by the
cosine similarity of their columns in the binary basket x product matrix: how often they were
bought together, over the geometric mean of how often each was bought. A pair seen together
only once or twice is shrunk towards 0 (`shrink`), so chance co-purchases of rare products do
not outrank pairs that recur. The model is each product's `partners` best partners.

Item-item similarity rather than implicit-feedback ALS: it needs no hyper-parameter search and
no iteration, is exact on a shop's scale (the sparse product of the matrix with itself), can
say why a product is suggested (bought together), and retrains in a fraction of a second per
hundred thousand orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
from scipy import sparse

K = TypeVar("K")


def train(
    baskets: Iterable[Sequence[K]], *, partners: int = 20, shrink: float = 2.0
) -> dict[K, list[tuple[K, float]]]:
    """Each product's best partners by shrunk cosine similarity, best first."""
    ids: dict[K, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    count = 0
    for basket in baskets:
        unique = {ids.setdefault(product, len(ids)) for product in basket}
        if len(unique) < 2:  # a single product says nothing about pairs
            continue
        rows.extend([count] * len(unique))
        columns.extend(unique)
        count += 1
    if not count:
        return {}
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, columns)), shape=(count, len(ids))
    )
    together = (matrix.T @ matrix).tocsr()  # products x products: orders with both
    bought = together.diagonal()
    together.setdiag(0)
    together.eliminate_zeros()
    coo = together.tocoo()
    cosine = coo.data / np.sqrt(bought[coo.row] * bought[coo.col])
    scores = sparse.csr_matrix(
        (cosine * coo.data / (coo.data + shrink), (coo.row, coo.col)), shape=together.shape
    )
    products = list(ids)
    model: dict[K, list[tuple[K, float]]] = {}
    for row in range(scores.shape[0]):
        start, end = scores.indptr[row], scores.indptr[row + 1]
        if start == end:
            continue
        data, cols = scores.data[start:end], scores.indices[start:end]
        best = np.argsort(-data, kind="stable")[:partners]
        model[products[row]] = [(products[cols[i]], float(data[i])) for i in best]
    return model
