"""The methods, each registered once: its name, its code in the .vqm tensor table, its module.

Each method module defines:
    NAME                         the name users type (--method NAME)
    TABLE                        the tensor-table fields it uses (docs/FORMAT.md); the others are 0
    Config                       a frozen dataclass of the settings it reads, validated when built
    check(shape, q)              raise ConfigError if q does not fit a weight of this shape
    fit(w, q, seed)              -> CompressedTensor (name left empty)
    fit_many(items, seed)        optional: fit() of each (w, q) in items, fitted together (faster)
    decode(t, rows=None)         -> float32 W[rows] (all of W by default): THE reference decode
    layout(t)                    -> {role: shape} of the sections decode reads; ValueError if the
                                    tensor-table fields are inconsistent
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import ConfigError
from . import binary, kmeans, pq, rq, svd, vq
from .base import MethodConfig

RAW = "raw"  # code 0: a tensor stored as it is
# The file code of each method: fixed forever, since files carry it (docs/FORMAT.md "Tensor table").
CODES: dict[int, ModuleType] = {1: binary, 2: kmeans, 3: pq, 4: rq, 5: svd, 6: vq}

_BY_NAME = {m.NAME: m for m in CODES.values()}
NAMES = tuple(_BY_NAME)
CODE_OF = {RAW: 0, **{m.NAME: code for code, m in CODES.items()}}
NAME_OF = {code: name for name, code in CODE_OF.items()}


def get(method: str) -> ModuleType:
    try:
        return _BY_NAME[method]
    except KeyError:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(NAMES)}") from None


def config(method: str = "kmeans", **settings) -> MethodConfig:
    """The method's own config: config("pq", k=16, d=4). A setting it does not read is an error."""
    cls = get(method).Config
    unknown = [key for key in settings if key not in cls.settings()]
    if unknown:
        raise ConfigError(f"{unknown[0]} has no effect with method {method}")
    return cls(**settings)


def reads(method: str) -> set[str]:
    """The settings a method reads, the seed included when it samples."""
    cls = get(method).Config
    return set(cls.settings()) | ({"seed"} if cls.SEEDED else set())


def defaults() -> dict:
    """{setting: default} over every method; a setting means the same in every method that has it."""
    out: dict = {}
    for m in _BY_NAME.values():
        for key, value in m.Config().fields().items():
            if out.setdefault(key, value) != value:
                raise AssertionError(f"{key} has two defaults: {out[key]!r} and {value!r}")
    return out


def decode(t, rows: slice | None = None) -> np.ndarray:
    """The reference decode of any tensor of the IR: the whole tensor in its own shape, or with
    rows (a step-1 slice) the rows of its m x n matrix (ir.matrix_shape), so big layers can be
    read in blocks."""
    if t.method == RAW:
        full = t.sections["raw"].data.reshape(t.shape)
        return full if rows is None else full.reshape(t.matrix)[rows]
    w = get(t.method).decode(t, rows)
    return w.reshape(t.shape) if rows is None else w
