"""Compression configs. They validate themselves when built and round-trip through dicts.

One global QuantConfig, then per-layer overrides matched by glob (later overrides win),
in the manner of coremltools' global / per-layer configs.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field

from .errors import ConfigError

METHODS = ("binary", "kmeans", "pq", "rq", "svd")
CODEBOOK_DTYPES = ("float32", "float16")
# The settings each method reads; a setting given for a layer whose method does not read it is an
# error, not a silent no-op. The seed is a CompressConfig field, read by every method that samples.
READS = {"binary": {"codebook_dtype"}, "kmeans": {"k", "codebook_dtype", "seed"},
         "pq": {"k", "d", "rows", "codebook_dtype", "seed"}, "rq": {"k", "stages", "codebook_dtype", "seed"},
         "svd": {"rank", "seed"}}


@dataclass(frozen=True)
class QuantConfig:
    """How one layer is compressed. Only the fields its method reads matter."""

    method: str = "kmeans"
    k: int = 16
    d: int = 4
    rows: bool = False
    stages: int = 2
    rank: int = 32
    codebook_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name in ("k", "d", "stages", "rank"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not 2 <= self.k <= 65536:
            raise ConfigError(f"k must be between 2 and 65536, got {self.k}")
        if self.d < 1:
            raise ConfigError(f"d must be at least 1, got {self.d}")
        if not 1 <= self.stages <= 255:
            raise ConfigError(f"stages must be between 1 and 255, got {self.stages}")
        if self.rank < 1:
            raise ConfigError(f"rank must be at least 1, got {self.rank}")
        if self.codebook_dtype not in CODEBOOK_DTYPES:
            raise ConfigError(f"codebook_dtype must be float32 or float16, got {self.codebook_dtype!r}")

    def replace(self, **changes) -> "QuantConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        return cls().replace(**d)


@dataclass(frozen=True)
class CompressConfig:
    """What to compress and how: a global QuantConfig, layer globs, per-layer overrides, a seed."""

    quant: QuantConfig = field(default_factory=QuantConfig)
    layers: tuple[str, ...] = ("*",)
    overrides: tuple[tuple[str, dict], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", (self.layers,))
        if not self.layers:
            raise ConfigError("layers must name at least one glob")
        if isinstance(self.overrides, dict):
            object.__setattr__(self, "overrides", tuple(self.overrides.items()))
        for pattern, changes in self.overrides:
            self.quant.replace(**changes)  # validates each override on its own
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    def selects(self, name: str) -> bool:
        return any(glob_matches(name, p) for p in self.layers)

    def for_layer(self, name: str) -> QuantConfig:
        q = self.quant
        for pattern, changes in self.overrides:
            if glob_matches(name, pattern):
                q = q.replace(**changes)
        return q

    def check_used(self, dense: list[str], given: dict[str, str] | None = None) -> None:
        """Refuse what no layer would read: an override that matches no selected dense layer, or
        sets what its layers' method does not read, and a global setting the user gave (`given`
        maps its field to the flag's name) that no layer reads or that every reader overrides."""
        chosen = [n for n in dense if self.selects(n)]
        for pattern, changes in self.overrides:
            text = f"--override {pattern}:" + ",".join(f"{k}={v}" for k, v in changes.items())
            matched = [n for n in chosen if glob_matches(n, pattern)]
            if not matched:
                where = "selected dense layer" if chosen != dense else "dense layer"
                raise ConfigError(f"{text}: {pattern!r} matches no {where}; the {where}s are: "
                                  + (", ".join(chosen[:12]) + (" ..." if len(chosen) > 12 else "") or "none"))
            methods = {self.for_layer(n).method for n in matched}
            for key in changes:
                if key != "method" and not any(key in READS[m] for m in methods):
                    raise ConfigError(f"{text}: {key} has no effect with method {'/'.join(sorted(methods))}")
        if not chosen:
            return
        for key, flag in (given or {}).items():
            readers = [n for n in chosen if key in READS[self.for_layer(n).method]]
            if not readers:
                methods = "/".join(sorted({self.for_layer(n).method for n in chosen}))
                raise ConfigError(f"{flag} has no effect: the layers it could apply to use {methods}")
            if all(any(key in c and glob_matches(n, p) for p, c in self.overrides) for n in readers):
                raise ConfigError(f"{flag} has no effect: every layer that reads it has its own {key} from --override")

    def to_dict(self) -> dict:
        return {**self.quant.to_dict(), "layers": list(self.layers),
                "overrides": {p: dict(c) for p, c in self.overrides}, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "CompressConfig":
        d = dict(d)
        layers = tuple(d.pop("layers", ("*",)))
        overrides = tuple((d.pop("overrides", None) or {}).items())
        seed = d.pop("seed", 0)
        return cls(quant=QuantConfig.from_dict(d), layers=layers, overrides=overrides, seed=seed)


def glob_matches(name: str, pattern: str) -> bool:
    """A glob matches the parameter key ('fc1.weight') or its module ('fc1')."""
    module = name[: -len(".weight")] if name.endswith(".weight") else name
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(module, pattern)
