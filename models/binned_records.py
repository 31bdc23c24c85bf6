"""The binned learner's state as it runs: one record per feature and per cross.

A score or a label reads, for every feature, its running mean and scale, its weight, its bin
edges and its bins' weights. Kept in one record per feature (attributes of a slotted object,
weights in lists by bin), that is one look-up per feature; kept as tables by name, it would be
one per quantity. A saved model is the tables (`to_tables`): names a reader can follow, and the
layout every saved model has had, so a snapshot loads whichever side of this change wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


def signed_log(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def signed_exp(value: float) -> float:
    """The inverse of `signed_log`."""
    return math.copysign(math.expm1(abs(value)), value)


class FeatureRecord:
    """One feature's running statistics, weights and bins."""

    __slots__ = (
        "average_bin",
        "bin_squares",
        "bins",
        "coarse",
        "count",
        "cuts",
        "high",
        "logged",
        "low",
        "mean",
        "name",
        "scale",
        "square",
        "variance",
        "weight",
    )

    def __init__(self, name: str, logged: bool) -> None:
        self.name = name
        self.logged = logged
        self.count = 0
        self.mean = 0.0
        """The running mean, of the signed log for a ``logged`` feature."""
        self.variance = 0.0
        self.scale: float | None = None
        """1 / standard deviation once the variance is above 0: a multiplication per score."""
        self.weight = 0.0
        """The standardised value's weight."""
        self.square = 0.0
        """The standardised weight's summed squared gradients, for adaptive steps."""
        self.cuts: list[float] | None = None
        """Bin edges, once frozen: bin i is ``cuts[i-1] <= value < cuts[i]``."""
        self.bins: list[float] = []
        """Each bin's weight."""
        self.bin_squares: list[float] = []
        self.coarse: list[float] | None = None
        """Coarse edges, for a feature in a cross."""
        self.average_bin = 0
        """The bin of the feature's centre, while ``low <= centre < high``."""
        self.low = -math.inf
        self.high = math.inf

    def centre(self) -> float:
        """The mean as a value of the feature: back from the log scale for a logged one."""
        return signed_exp(self.mean) if self.logged else self.mean

    def bin_names(self) -> list[str]:
        """Each bin's weight name: ``name#i``."""
        return [f"{self.name}#{index}" for index in range(len(self.bins))]


class CrossRecord:
    """A pair of features' joint coarse bins, with a weight per cell."""

    __slots__ = (
        "average_cell",
        "columns",
        "first",
        "first_coarse",
        "rows",
        "second",
        "second_coarse",
        "squares",
        "weights",
    )

    def __init__(
        self, first: str, second: str, first_coarse: list[float], second_coarse: list[float]
    ) -> None:
        self.first, self.second = first, second
        self.first_coarse, self.second_coarse = list(first_coarse), list(second_coarse)
        self.rows, self.columns = len(first_coarse) + 1, len(second_coarse) + 1
        self.weights = [0.0] * (self.rows * self.columns)
        """Cell (i, j)'s weight at ``i * columns + j``."""
        self.squares = [0.0] * len(self.weights)
        self.average_cell = 0
        """The cell of the two features' centres."""

    def cell_names(self) -> tuple[tuple[str, ...], ...]:
        """Each cell's weight name by row and column: ``a&b#i,j``."""
        prefix = f"{self.first}&{self.second}"
        return tuple(
            tuple(f"{prefix}#{row},{column}" for column in range(self.columns))
            for row in range(self.rows)
        )


class Plan(NamedTuple):
    """A vector's order of names, the record of each and where each cross's two features sit
    in it (-1: absent): every vector of a feature set has the same order, so one plan serves
    them all."""

    names: list[str]
    features: list[FeatureRecord]
    """`UNSEEN` for a name never learned."""
    crosses: list[tuple[int, int]]
    complete: bool
    """Every name has a record of its own."""


UNSEEN = FeatureRecord("", logged=False)
"""The record of a name never learned: no scale and no bins, so its terms are 0. Learning
gives the name a record of its own first."""

SAVED_TABLES = (
    "_counts",
    "_means",
    "_variances",
    "_scales",
    "_edges",
    "_bin_names",
    "_coarse",
    "_cross_names",
    "_weights",
    "_squares",
)
"""The tables a saved model holds in place of the records, keyed by feature or weight name."""


def to_tables(
    features: Iterable[FeatureRecord], crosses: Iterable[CrossRecord], adaptive: bool
) -> dict[str, Any]:
    """The records as the saved tables (`SAVED_TABLES`); the squares only of adaptive steps."""
    records = list(features)
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    edges: dict[str, list[float]] = {}
    bin_names: dict[str, tuple[str, ...]] = {}
    coarse: dict[str, list[float]] = {}
    for feature in records:
        name = feature.name
        if feature.scale is not None:
            weights[name], squares[name] = feature.weight, feature.square
        if feature.cuts is not None:
            names = feature.bin_names()
            edges[name], bin_names[name] = list(feature.cuts), tuple(names)
            weights.update(zip(names, feature.bins, strict=True))
            squares.update(zip(names, feature.bin_squares, strict=True))
        if feature.coarse is not None:
            coarse[name] = list(feature.coarse)
    cross_names = []
    for cross in crosses:
        cells = cross.cell_names()
        names = [name for row in cells for name in row]
        weights.update(zip(names, cross.weights, strict=True))
        squares.update(zip(names, cross.squares, strict=True))
        cross_names.append((cross.first, cross.second, cells))
    return {
        "_counts": {feature.name: feature.count for feature in records},
        "_means": {feature.name: feature.mean for feature in records},
        "_variances": {feature.name: feature.variance for feature in records},
        "_scales": {f.name: f.scale for f in records if f.scale is not None},
        "_edges": edges,
        "_bin_names": bin_names,
        "_coarse": coarse,
        "_cross_names": tuple(cross_names),
        "_weights": weights,
        "_squares": squares if adaptive else {},
    }


def from_tables(
    tables: Mapping[str, Any], log_scaled: Iterable[str]
) -> tuple[dict[str, FeatureRecord], tuple[CrossRecord, ...]]:
    """The records of the saved tables (`SAVED_TABLES`); a weight missing is 0."""
    logged = set(log_scaled)
    weight, square = tables["_weights"].get, tables["_squares"].get
    edges, bin_names, coarse = tables["_edges"], tables["_bin_names"], tables["_coarse"]
    features: dict[str, FeatureRecord] = {}
    for name, count in tables["_counts"].items():
        feature = features[name] = FeatureRecord(name, name in logged)
        feature.count, feature.mean = count, tables["_means"][name]
        feature.variance, feature.scale = tables["_variances"][name], tables["_scales"].get(name)
        feature.weight, feature.square = weight(name, 0.0), square(name, 0.0)
        if name in edges:
            feature.cuts = list(edges[name])
            feature.bins = [weight(bin_, 0.0) for bin_ in bin_names[name]]
            feature.bin_squares = [square(bin_, 0.0) for bin_ in bin_names[name]]
        if name in coarse:
            feature.coarse = list(coarse[name])
    crosses = []
    for first, second, cells in tables["_cross_names"]:
        cross = CrossRecord(first, second, coarse[first], coarse[second])
        names = [name for row in cells for name in row]
        cross.weights = [weight(name, 0.0) for name in names]
        cross.squares = [square(name, 0.0) for name in names]
        crosses.append(cross)
    return features, tuple(crosses)
