"""Compression configs. They validate themselves when built and round-trip through dicts.

One global method config (each method declares its own, see vqexport.methods), then per-layer
overrides matched by glob (later overrides win), in the manner of coremltools' global /
per-layer configs.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from .errors import ConfigError
from .methods import registry
from .methods.base import MethodConfig
from .weights import TYPES

MIN_SIZE = 2048  # elements; smaller weights stay raw (coremltools' default threshold)

# The keys of the config record that every .vqm has carried since format 1 (each setting, with
# its default where the method does not read it), in their order; a later method's own settings
# follow them. Kept so that files stay byte-for-byte what they were.
RECORD_KEYS = ("k", "d", "rows", "stages", "rank", "codebook_dtype")


def QuantConfig(method: str = "kmeans", **settings) -> MethodConfig:
    """How one layer is compressed: the method's own config, e.g. QuantConfig("pq", k=16, d=4).

    A setting that the method does not read is an error ("k has no effect with method svd")."""
    return registry.config(method, **settings)


@dataclass(frozen=True)
class CompressConfig:
    """What to compress and how: a global QuantConfig, then per-type and per-layer overrides, which
    weights (types, a size threshold, layer globs), a seed, and how the rest is stored."""

    quant: MethodConfig = field(default_factory=QuantConfig)
    layers: tuple[str, ...] = ("*",)
    overrides: tuple[tuple[str, dict], ...] = ()
    seed: int = 0
    types: tuple[str, ...] = TYPES  # the kinds of weight compressed (vqexport.weights.TYPES)
    min_size: int = MIN_SIZE  # weights with fewer elements stay raw, as in coremltools
    type_overrides: tuple[tuple[str, dict], ...] = ()  # per type, applied before the per-layer ones
    fold_batchnorm: bool = True  # fold each BatchNorm into the conv before it, before quantizing
    raw_dtype: str = "float32"  # float16: the float32 tensors left raw are stored in half precision

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", (self.layers,))
        if not self.layers:
            raise ConfigError("layers must name at least one glob")
        if isinstance(self.overrides, dict):
            object.__setattr__(self, "overrides", tuple(self.overrides.items()))
        if not isinstance(self.quant, MethodConfig):
            raise ConfigError(f"quant must be a method's config (QuantConfig(...)), got {self.quant!r}")
        for pattern, changes in self.overrides:
            try:
                self._apply(self.quant, changes)  # validates each override on its own
            except ConfigError as e:
                raise ConfigError(f"{_override_text(pattern, changes)}: {e}") from None
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("types", "type_overrides"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value.items()) if isinstance(value, dict)
                               else (value,) if isinstance(value, str) else tuple(value))
        for kind in self.types + tuple(k for k, _ in self.type_overrides):
            if kind not in TYPES:
                raise ConfigError(f"unknown type {kind!r}; the types are {', '.join(TYPES)}")
        if not self.types:
            raise ConfigError("types must name at least one type")
        for kind, changes in self.type_overrides:
            try:
                self._apply(self.quant, changes)
            except ConfigError as e:
                raise ConfigError(f"--type-override {kind}:{_settings_text(changes)}: {e}") from None
        if self.raw_dtype not in ("float32", "float16"):
            raise ConfigError(f"raw_dtype must be float32 or float16, got {self.raw_dtype!r}")
        if not isinstance(self.min_size, int) or isinstance(self.min_size, bool) or self.min_size < 0:
            raise ConfigError(f"min_size must be a non-negative integer, got {self.min_size!r}")

    def selects(self, name: str) -> bool:
        return any(glob_matches(name, p) for p in self.layers)

    def for_layer(self, name: str, kind: str | None = None) -> MethodConfig:
        """Global, then the overrides of the layer's type (`kind`), then those matching its name."""
        q = self.quant
        for of_type, changes in self.type_overrides:
            if of_type == kind:
                q = self._apply(q, changes)
        for pattern, changes in self.overrides:
            if glob_matches(name, pattern):
                q = self._apply(q, changes)
        return q

    @staticmethod
    def _apply(q: MethodConfig, changes: dict) -> MethodConfig:
        """An override on top of q. Given a new method, the layer keeps those of q's settings that
        the new method also reads (k from kmeans to pq); any setting the override names must be read."""
        method = changes.get("method", q.method)
        own = {key: value for key, value in changes.items() if key != "method"}
        if method == q.method:
            return q.replace(**own)
        keeps = registry.get(method).Config.settings()
        return registry.config(method, **{**{k: v for k, v in q.fields().items() if k in keeps}, **own})

    def select(self, weights: dict[str, str], sizes: dict[str, int]) -> tuple[dict[str, str], dict[str, str]]:
        """({name: type} to compress, {name: why not} for the weights of the chosen types left raw).

        weights: {name: type} of the weights a method can take (vqexport.weights); sizes: their
        element counts. A layer glob that matches no weight of the chosen types is an error."""
        typed = {n: k for n, k in weights.items() if k in self.types}
        for pattern in self.layers:
            if pattern != "*" and not any(glob_matches(n, pattern) for n in typed):
                raise ConfigError(f"--layers {pattern!r} matches no layer; the layers are: " + _some(typed))
        named = {n: k for n, k in typed.items() if self.selects(n)}
        small = {n: f"{sizes[n]} weights, below --min-size {self.min_size}" for n in named
                 if sizes[n] < self.min_size}
        return {n: k for n, k in named.items() if n not in small}, small

    def check_used(self, weights: dict[str, str], sizes: dict[str, int], given: dict[str, str] | None = None) -> None:
        """Refuse what no layer would read: an override that matches no selected layer, or sets what
        its layers' method does not read, and a global setting the user gave (`given` maps its field
        to the flag's name) that no layer reads or that every reader overrides."""
        chosen, _ = self.select(weights, sizes)
        for kind, changes in self.type_overrides:
            if kind not in chosen.values():
                raise ConfigError(f"--type-override {kind}:{_settings_text(changes)}: no selected layer is of "
                                  f"type {kind}")
        for pattern, changes in self.overrides:
            text = _override_text(pattern, changes)
            matched = [n for n in chosen if glob_matches(n, pattern)]
            if not matched:
                raise ConfigError(f"{text}: {pattern!r} matches no selected layer; the selected layers are: "
                                  + (_some(chosen) or "none"))
            methods = {self.for_layer(n, chosen[n]).method for n in matched}
            for key in changes:
                if key != "method" and not any(key in registry.reads(m) for m in methods):
                    raise ConfigError(f"{text}: {key} has no effect with method {'/'.join(sorted(methods))}")
        if not chosen:
            return
        for key, flag in (given or {}).items():
            readers = [n for n in chosen if key in registry.reads(self.for_layer(n, chosen[n]).method)]
            if not readers:
                methods = "/".join(sorted({self.for_layer(n, chosen[n]).method for n in chosen}))
                raise ConfigError(f"{flag} has no effect: the layers it could apply to use {methods}")
            own = list(self.overrides) + [(f"type:{k}", c) for k, c in self.type_overrides]
            if all(any(key in c and (glob_matches(n, p) or p == f"type:{chosen[n]}") for p, c in own)
                   for n in readers):
                raise ConfigError(f"{flag} has no effect: every layer that reads it has its own {key} from an "
                                  "override")

    def to_dict(self) -> dict:
        """The record written into every .vqm: every setting, the defaults where the method does not read it."""
        defaults = registry.defaults()
        keys = RECORD_KEYS + tuple(k for k in defaults if k not in RECORD_KEYS)
        settings = {**{k: defaults[k] for k in keys}, **self.quant.fields()}
        out = {"method": self.quant.method, **settings, "layers": list(self.layers),
               "overrides": {p: dict(c) for p, c in self.overrides}, "seed": self.seed,
               "types": list(self.types), "min_size": self.min_size, "fold_batchnorm": self.fold_batchnorm}
        if self.type_overrides:
            out["type_overrides"] = {k: dict(c) for k, c in self.type_overrides}
        if self.raw_dtype != "float32":
            out["raw_dtype"] = self.raw_dtype
        return out

    @classmethod
    def from_dict(cls, d: dict) -> CompressConfig:
        """The inverse of to_dict: a setting the method does not read must hold its default."""
        d = dict(d)
        layers = tuple(d.pop("layers", ("*",)))
        overrides = tuple((d.pop("overrides", None) or {}).items())
        seed = d.pop("seed", 0)
        extra = {"types": tuple(d.pop("types", TYPES)), "min_size": d.pop("min_size", MIN_SIZE),
                 "fold_batchnorm": d.pop("fold_batchnorm", True), "raw_dtype": d.pop("raw_dtype", "float32"),
                 "type_overrides": tuple((d.pop("type_overrides", None) or {}).items())}
        method = d.pop("method", "kmeans")
        reads, defaults = registry.get(method).Config.settings(), registry.defaults()
        for key, value in d.items():
            if key not in reads and (key not in defaults or value != defaults[key]):
                raise ConfigError(f"{key} has no effect with method {method}")
        quant = registry.config(method, **{k: v for k, v in d.items() if k in reads})
        return cls(quant=quant, layers=layers, overrides=overrides, seed=seed, **extra)


def _some(names) -> str:
    names = list(names)
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")


def _override_text(pattern: str, changes: dict) -> str:
    return f"--override {pattern}:" + _settings_text(changes)


def _settings_text(changes: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in changes.items())


def glob_matches(name: str, pattern: str) -> bool:
    """A glob matches the parameter key ('fc1.weight') or its module ('fc1')."""
    module = name[: -len(".weight")] if name.endswith(".weight") else name
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(module, pattern)
