"""The schema of a .vqm's metadata JSON (docs/FORMAT.md "Metadata"), checked at read time.

Readers ignore unknown keys, but a key the format lists must have the type it lists, because
code downstream indexes into it (summary() looks up every "skipped" name, inspect formats the
numbers). "layers" and "skipped" must name tensors of the file: compressed ones and raw ones.
The Java reader (VqmMetadata.java) checks the same.
"""
from __future__ import annotations

import math

_MAX_INT = 2**53  # integers a double holds exactly: what a JSON reader in another language can compare


def check_metadata(meta, fail) -> None:
    """Raise through fail(msg) unless `meta` has the types the schema lists."""
    if not isinstance(meta, dict):
        fail(f"metadata is {_describe(meta)}, not a JSON object")
    _string(meta, "format", "", fail)
    _string(meta, "producer", "", fail)
    source = _object(meta, "source", "", fail)
    if source is not None:
        for key in ("name", "sha256", "kind", "arch"):
            _string(source, key, "source.", fail, nullable=True)
    config = _object(meta, "config", "", fail)
    if config is not None:
        _string(config, "method", "config.", fail)
        _string(config, "codebook_dtype", "config.", fail, nullable=True)
        for key in ("k", "d", "stages", "rank", "seed"):
            _number(config, key, "config.", fail, integer=True)
        if config.get("rows") is not None and not isinstance(config["rows"], bool):
            _bad("config.rows", "a boolean", config["rows"], fail)
        _list_of(_list(config, "layers", "config.", fail), "config.layers", "an array of strings", _is_str, fail)
        _object(config, "overrides", "config.", fail)
    layers = _object(meta, "layers", "", fail, nullable=False)
    for name, info in (layers or {}).items():
        where = f"layers.{name}"
        if not isinstance(info, dict):
            _bad(where, "an object", info, fail)
        _string(info, "method", where + ".", fail)
        _list_of(_list(info, "shape", where + ".", fail), where + ".shape", "an array of positive integers",
                 _is_positive_int, fail)
        for key in ("bits_per_weight", "compression", "rel_error"):
            _number(info, key, where + ".", fail)
    skipped = _object(meta, "skipped", "", fail, nullable=False)
    for name, why in (skipped or {}).items():
        if not isinstance(why, str):
            _bad(f"skipped.{name}", "a string (the reason)", why, fail)
    tied = _object(meta, "tied", "", fail)
    for alias, name in (tied or {}).items():
        if not isinstance(name, str):
            _bad(f"tied.{alias}", "a string (the stored tensor's name)", name, fail)
    _list_of(_list(meta, "widened", "", fail), "widened", "an array of strings", _is_str, fail)
    _list_of(_list(meta, "labels", "", fail), "labels", "an array of strings", _is_str, fail)
    spec = _object(meta, "input", "", fail)
    if spec is not None:
        _list_of(_list(spec, "shape", "input.", fail), "input.shape", "an array of positive integers",
                 _is_positive_int, fail)
        _string(spec, "layout", "input.", fail, nullable=True)
        for key in ("mean", "std"):
            _list_of(_list(spec, key, "input.", fail), f"input.{key}", "an array of finite numbers", _is_finite, fail)
    summary = _object(meta, "summary", "", fail)
    for key in summary or {}:
        _number(summary, key, "summary.", fail)


def check_names(meta: dict, tensors, fail) -> None:
    """The names "layers" and "skipped" list must be compressed and raw tensors of the file."""
    kinds = {t.name: t.method for t in tensors}
    for name in meta.get("layers") or {}:
        if kinds.get(name, "raw") == "raw":
            fail(f'metadata "layers" names {name[:200]}, which is not a compressed tensor of the file')
    for name in meta.get("skipped") or {}:
        if kinds.get(name) != "raw":
            fail(f'metadata "skipped" names {name[:200]}, which is not a raw tensor of the file')
    halves = {t.name for t in tensors if t.method == "raw" and t.sections["raw"].dtype == "float16"}
    for name in meta.get("widened") or []:
        if name not in halves:
            fail(f'metadata "widened" names {name[:200]}, which is not a float16 raw tensor of the file')
    for alias, name in (meta.get("tied") or {}).items():
        if alias in kinds or name not in kinds:
            fail(f'metadata "tied" maps {alias[:200]} to {name[:200]}: the alias must not be stored, its '
                 "target must be")


def _describe(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (int, float)):
        return "a number"
    return "an array" if isinstance(v, list) else "an object"


def _bad(key: str, want: str, got, fail):
    fail(f'metadata "{key[:200]}" must be {want}, is {_describe(got)}')


def _string(m: dict, key: str, path: str, fail, nullable: bool = False) -> None:
    if key in m and not isinstance(m[key], str) and not (nullable and m[key] is None):
        _bad(path + key, "a string or null" if nullable else "a string", m[key], fail)


def _object(m: dict, key: str, path: str, fail, nullable: bool = True):
    """nullable=False: code indexes into it whenever the key is there (inspect, summary())."""
    v = m.get(key)
    if (v is not None or (key in m and not nullable)) and not isinstance(v, dict):
        _bad(path + key, "an object or null" if nullable else "an object", v, fail)
    return v


def _list(m: dict, key: str, path: str, fail):
    v = m.get(key)
    if v is not None and not isinstance(v, list):
        _bad(path + key, "an array or null", v, fail)
    return v


def _list_of(items, where: str, want: str, ok, fail) -> None:
    for v in items or ():
        if not ok(v):
            _bad(where, want, v, fail)


def _number(m: dict, key: str, path: str, fail, integer: bool = False) -> None:
    v = m.get(key)
    if v is not None and not (_is_int(v) if integer else _is_finite(v)):
        _bad(path + key, "an integer or null" if integer else "a finite number or null", v, fail)


def _is_str(v) -> bool:
    return isinstance(v, str)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _MAX_INT


def _is_positive_int(v) -> bool:
    return _is_int(v) and v >= 1


def _is_finite(v) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer of hundreds of digits, which no float holds (nor formats)
        return False
