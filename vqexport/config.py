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
    """What to compress and how: a global QuantConfig, layer globs, per-layer overrides, a seed."""

    quant: MethodConfig = field(default_factory=QuantConfig)
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
        if not isinstance(self.quant, MethodConfig):
            raise ConfigError(f"quant must be a method's config (QuantConfig(...)), got {self.quant!r}")
        for pattern, changes in self.overrides:
            try:
                self._apply(self.quant, changes)  # validates each override on its own
            except ConfigError as e:
                raise ConfigError(f"{_override_text(pattern, changes)}: {e}") from None
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    def selects(self, name: str) -> bool:
        return any(glob_matches(name, p) for p in self.layers)

    def for_layer(self, name: str) -> MethodConfig:
        q = self.quant
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

    def check_used(self, dense: list[str], given: dict[str, str] | None = None) -> None:
        """Refuse what no layer would read: an override that matches no selected dense layer, or
        sets what its layers' method does not read, and a global setting the user gave (`given`
        maps its field to the flag's name) that no layer reads or that every reader overrides."""
        chosen = [n for n in dense if self.selects(n)]
        for pattern, changes in self.overrides:
            text = _override_text(pattern, changes)
            matched = [n for n in chosen if glob_matches(n, pattern)]
            if not matched:
                where = "selected dense layer" if chosen != dense else "dense layer"
                raise ConfigError(f"{text}: {pattern!r} matches no {where}; the {where}s are: "
                                  + (", ".join(chosen[:12]) + (" ..." if len(chosen) > 12 else "") or "none"))
            methods = {self.for_layer(n).method for n in matched}
            for key in changes:
                if key != "method" and not any(key in registry.reads(m) for m in methods):
                    raise ConfigError(f"{text}: {key} has no effect with method {'/'.join(sorted(methods))}")
        if not chosen:
            return
        for key, flag in (given or {}).items():
            readers = [n for n in chosen if key in registry.reads(self.for_layer(n).method)]
            if not readers:
                methods = "/".join(sorted({self.for_layer(n).method for n in chosen}))
                raise ConfigError(f"{flag} has no effect: the layers it could apply to use {methods}")
            if all(any(key in c and glob_matches(n, p) for p, c in self.overrides) for n in readers):
                raise ConfigError(f"{flag} has no effect: every layer that reads it has its own {key} from --override")

    def to_dict(self) -> dict:
        """The record written into every .vqm: every setting, the defaults where the method does not read it."""
        defaults = registry.defaults()
        keys = RECORD_KEYS + tuple(k for k in defaults if k not in RECORD_KEYS)
        settings = {**{k: defaults[k] for k in keys}, **self.quant.fields()}
        return {"method": self.quant.method, **settings, "layers": list(self.layers),
                "overrides": {p: dict(c) for p, c in self.overrides}, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> CompressConfig:
        """The inverse of to_dict: a setting the method does not read must hold its default."""
        d = dict(d)
        layers = tuple(d.pop("layers", ("*",)))
        overrides = tuple((d.pop("overrides", None) or {}).items())
        seed = d.pop("seed", 0)
        method = d.pop("method", "kmeans")
        reads, defaults = registry.get(method).Config.settings(), registry.defaults()
        for key, value in d.items():
            if key not in reads and (key not in defaults or value != defaults[key]):
                raise ConfigError(f"{key} has no effect with method {method}")
        quant = registry.config(method, **{k: v for k, v in d.items() if k in reads})
        return cls(quant=quant, layers=layers, overrides=overrides, seed=seed)


def _override_text(pattern: str, changes: dict) -> str:
    return f"--override {pattern}:" + ",".join(f"{k}={v}" for k, v in changes.items())


def glob_matches(name: str, pattern: str) -> bool:
    """A glob matches the parameter key ('fc1.weight') or its module ('fc1')."""
    module = name[: -len(".weight")] if name.endswith(".weight") else name
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(module, pattern)
