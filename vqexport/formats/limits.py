"""Resource caps for model files from strangers, shared by every reader (docs/SECURITY.md).

A file can declare far more than it carries: PQ with k=2 and d=n describes a 32 GiB weight in
528 KiB, and 100,000 nested '[' in its JSON overflow a recursive parser's stack. So a reader checks
what a file declares against these caps before it allocates or parses anything. The Java reader
(android-demo, VqmLimits.java) uses the same numbers.

The decoded-size cap is the smaller of DEFAULT_MAX_DECODED and MAX_DECODED_RATIO times the file's
size. A user who trusts a bigger model replaces both with one size: `--max-decoded-size 16GiB` on
the command line, which sets VQEXPORT_MAX_DECODED_SIZE for this process and its children (bench
measures in a child), or `max_decoded_size=` in the Python readers.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from fractions import Fraction

import numpy as np

from ..errors import VqexportError, first_line

DEFAULT_MAX_DECODED = 4 * 2**30  # bytes of decoded float32
MAX_DECODED_RATIO = 4096  # decoded bytes per file byte; 1-bit k-means is 32, real PQ/RQ files a few hundred
MAX_METADATA_BYTES = 16 * 2**20  # labels and configs are kilobytes
MAX_JSON_DEPTH = 64  # the writer's deepest value (config.overrides.GLOB.KEY) is 3 levels down
ENV = "VQEXPORT_MAX_DECODED_SIZE"

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_size(text: str) -> int:
    """'8GiB', '512MiB', '1GB', '1.5g' or plain bytes '1048576' -> bytes (binary units are 1024-based)."""
    m = _SIZE.fullmatch(str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size like 8GiB, 512MiB, 1GB or a number of bytes")
    n = int(Fraction(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return n


def configured() -> int | None:
    """The user's --max-decoded-size for this process (via VQEXPORT_MAX_DECODED_SIZE), or None."""
    raw = os.environ.get(ENV)
    if raw is None or raw == "":
        return None
    try:
        return parse_size(raw)
    except ValueError as e:
        raise VqexportError(f"{ENV}: {e}") from None


@contextlib.contextmanager
def max_decoded_size(size: int | None):
    """Within the block, every reader in this process and its children uses `size` as the cap."""
    if size is None:
        yield
        return
    old = os.environ.get(ENV)
    os.environ[ENV] = str(int(size))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def decoded_cap(file_size: int, max_decoded: int | None = None) -> tuple[int, str]:
    """(bytes a file of `file_size` bytes may decode to, which cap that is, in words)."""
    if max_decoded is None:
        max_decoded = configured()
    if max_decoded is not None:
        return int(max_decoded), f"the --max-decoded-size of {_human(max_decoded)}"
    by_ratio = MAX_DECODED_RATIO * int(file_size)
    if by_ratio < DEFAULT_MAX_DECODED:
        return by_ratio, f"{MAX_DECODED_RATIO}x the file's {_human(file_size)}"
    return DEFAULT_MAX_DECODED, f"the default cap of {_human(DEFAULT_MAX_DECODED)}"


def over_cap_message(what: str, decoded: int, file_size: int, max_decoded: int | None = None) -> str | None:
    """None when `decoded` bytes fit the cap; else the sentence to report (without the file name)."""
    cap, which = decoded_cap(file_size, max_decoded)
    if decoded <= cap:
        return None
    return (f"{what} {_human(decoded)} of decoded float32 weights, over {which}; "
            f"if you trust the file, raise the cap with --max-decoded-size")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects in `raw` nest deeper than `limit`. Runs before json.loads, which
    recurses once per level and would overflow on deep input; vectorised, because a metadata
    region of 16 MiB of brackets must not take seconds."""
    text = np.frombuffer(_STRING.sub(b'""', bytes(raw)), dtype=np.uint8)  # brackets in strings do not count
    depth = 0
    for start in range(0, text.size, _CHUNK):
        level = depth + np.cumsum(_STEP[text[start:start + _CHUNK]], dtype=np.int64)
        if level.size and int(level.max()) > limit:
            return True
        depth = int(level[-1]) if level.size else depth
    return False


# A string literal, possessive so that no backtracking state piles up on a long one.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_CHUNK = 1 << 20


_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def loads_untrusted(raw: bytes, what: str = "metadata"):
    """json.loads for bytes from a file: UTF-8, at most MAX_JSON_DEPTH levels, standard JSON only
    (no NaN or Infinity, which other readers reject). Raises ValueError with a short reason."""
    if len(raw) > MAX_METADATA_BYTES:
        raise ValueError(f"{what} is {len(raw)} bytes, over the cap of {MAX_METADATA_BYTES}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not valid UTF-8") from None
    if json_depth_exceeds(raw):
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # RecursionError: unreachable after the depth scan
        raise ValueError(f"{what} is not valid JSON ({first_line(e)})") from None
    if _has_lone_surrogate(value):
        raise ValueError(f"{what} holds a string that is not valid Unicode (a lone surrogate escape)")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _has_lone_surrogate(v) -> bool:
    """'\\ud800' parses to a str that cannot be printed or encoded; depth is bounded by the scan."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(v, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_lone_surrogate(x) for x in v)
    return False


def one_line(msg: str) -> str:
    """A message that quotes names from a file stays one line: control characters are escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in msg)


def _human(n: float) -> str:
    from ..util.report import human_bytes

    return human_bytes(n) if n < 2**40 else f"{n / 2**40:.2f} TiB"
