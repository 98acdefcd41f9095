"""Input layouts: channels first (PyTorch and ONNX: NC, NCW, NCHW, NCDHW) or channels last
(a .tflite from vqexport: its inputs of rank 3 to 5 take the channels last, as TFLite's convolutions).

Every caller in vqexport feeds data channels first, the PyTorch order that --input-shape also
uses; a runtime whose file takes channels last transposes inside.
"""
from __future__ import annotations

import math

CHANNELS_FIRST = {2: "NC", 3: "NCW", 4: "NCHW", 5: "NCDHW"}
CHANNELS_LAST = {2: "NC", 3: "NWC", 4: "NHWC", 5: "NDHWC"}
NAMES = sorted(set(CHANNELS_FIRST.values()) | set(CHANNELS_LAST.values()))


def channels_first(rank: int) -> str:
    return CHANNELS_FIRST.get(rank, "N" + "C" + "?" * (rank - 2))


def layout_name(rank: int, last: bool) -> str:
    return CHANNELS_LAST[rank] if last and rank in CHANNELS_LAST else channels_first(rank)


def is_channels_last(layout, rank: int) -> bool | None:
    """True/False for a known layout name of this rank; None for anything else (unknown, or a
    name of another rank, as older vqexport files that wrote "NCHW" for every rank)."""
    if layout in CHANNELS_LAST.values() and len(layout) == rank and layout != "NC":
        return True
    if layout in CHANNELS_FIRST.values() and len(layout) == rank:
        return False
    return None


def to_last(shape) -> list[int]:
    """A channels-first shape in channels-last order."""
    shape = list(shape)
    return [shape[0], *shape[2:], shape[1]] if len(shape) >= 3 else shape


def to_first(shape) -> list[int]:
    """A channels-last shape in channels-first order."""
    shape = list(shape)
    return [shape[0], shape[-1], *shape[1:-1]] if len(shape) >= 3 else shape


def last_perm(rank: int) -> tuple[int, ...]:
    """The transpose that takes a channels-first array to channels last."""
    return (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))


MAX_INPUT_ELEMENTS = 1 << 26  # 256 MiB of float32: a model is run once on zeros of this shape to check it


def parse_shape(text: str, flag: str = "--input-shape") -> list[int]:
    """'1,3,224,224' -> [1, 3, 224, 224]: positive integers, rank 2 to 5 (the ranks the exporters take)."""
    from .errors import ConfigError

    where = f"{flag} {text!r}".strip()
    try:
        shape = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"{where}: expected whole numbers like 1,3,224,224") from None
    if not 2 <= len(shape) <= 5:
        raise ConfigError(f"{where}: expected 2 to 5 numbers, the batch first, like 1,3,224,224")
    if any(v < 1 for v in shape):
        raise ConfigError(f"{where}: every dimension must be at least 1")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ConfigError(f"{where}: {math.prod(shape):,} values is more than the {MAX_INPUT_ELEMENTS:,} allowed")
    return shape
