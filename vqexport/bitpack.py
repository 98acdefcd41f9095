"""Tight b-bit index packing, least significant bit first (docs/FORMAT.md, "Bit packing")."""
from __future__ import annotations

import numpy as np


def packed_nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise ValueError(f"index width must be 1..16 bits, got {bits}")


def pack(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integers < 2**bits into a little-endian bit stream."""
    _check_bits(bits)
    v = np.ascontiguousarray(values, dtype=np.uint32).ravel()
    if v.size and int(v.max()) >> bits:
        raise ValueError(f"a value needs more than {bits} bits")
    if bits in (8, 16):
        return v.astype("<u1" if bits == 8 else "<u2").tobytes()
    if bits in (1, 2, 4) and v.size % (8 // bits) == 0:
        # Whole values per byte: OR in the j-th value of every byte, one strided pass per j (an
        # OR-reduce along a short axis is several times slower).
        per = 8 // bits
        u8 = v.astype(np.uint8)
        out = u8[0::per].copy()
        for j in range(1, per):
            out |= u8[j::per] << np.uint8(j * bits)
        return out.tobytes()
    chunk = 8 * 1 << 20  # a multiple of 8 values keeps every chunk byte-aligned
    if bits < 8:
        # 8 values fill `bits` bytes: OR each group into a uint64, one strided pass per value of
        # the group, and keep the word's low `bits` bytes (little-endian). In chunks, as below.
        out = bytearray()
        for start in range(0, v.size, chunk):
            part = v[start:start + chunk]
            groups = -(-part.size // 8)
            u64 = np.zeros(8 * groups, dtype=np.uint64)
            u64[:part.size] = part
            word = u64[0::8].copy()
            for j in range(1, 8):
                word |= u64[j::8] << np.uint64(j * bits)
            out += word.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :bits].tobytes()
        return bytes(out[:packed_nbytes(v.size, bits)])
    # Each value's bits, lowest first, laid out in stream order; packbits('little') does the rest.
    # Done in chunks so a 100 M-weight layer never materialises 100 M x b bytes at once.
    out = bytearray()
    shifts = np.arange(bits, dtype=np.uint32)
    for start in range(0, v.size, chunk):
        part = v[start:start + chunk]
        bitmat = ((part[:, None] >> shifts) & 1).astype(np.uint8)
        out += np.packbits(bitmat.ravel(), bitorder="little").tobytes()
    return bytes(out)


def unpack(data: bytes | np.ndarray, count: int, bits: int) -> np.ndarray:
    """Inverse of pack: `count` values of `bits` bits, as uint16 (uint32 never needed: bits <= 16)."""
    _check_bits(bits)
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    need = packed_nbytes(count, bits)
    if buf.size < need:
        raise ValueError(f"packed indices need {need} bytes, have {buf.size}")
    if bits == 8:
        return buf[:count].astype(np.uint16)
    if bits == 16:
        return buf[: 2 * count].view("<u2").astype(np.uint16)
    if 8 % bits == 0:  # 1, 2, 4 bits: whole values per byte, the first in the lowest bits
        per = 8 // bits
        whole = buf[: -(-count // per)]
        out = np.empty((whole.size, per), dtype=np.uint16)
        for j in range(per):
            np.bitwise_and(whole >> (j * bits), (1 << bits) - 1, out=out[:, j], casting="unsafe")
        return out.ravel()[:count]
    out = np.empty(count, dtype=np.uint16)
    chunk = 8 * 1 << 20
    weights = (1 << np.arange(bits, dtype=np.uint32)).astype(np.uint32)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        lo = start * bits // 8  # start is a multiple of 8, so this is exact
        nbytes = packed_nbytes(n, bits)
        stream = np.unpackbits(buf[lo:lo + nbytes], bitorder="little")[: n * bits]
        out[start:start + n] = (stream.reshape(n, bits).astype(np.uint32) @ weights).astype(np.uint16)
    return out


def bits_for(k: int) -> int:
    """Index width for a k-entry codebook: ceil(log2 k), at least 1."""
    return max(1, int(k - 1).bit_length())


def pack_stream(chunks, bits: int) -> bytes:
    """pack() over an iterable of arrays of any sizes: one stream, as if they were concatenated."""
    out = bytearray()
    carry = np.zeros(0, dtype=np.uint32)
    for chunk in chunks:
        chunk = np.ravel(chunk)
        if carry.size:
            chunk = np.concatenate([carry, chunk.astype(np.uint32, copy=False)])
        whole = chunk.size - chunk.size % 8  # 8 values fill exactly `bits` bytes
        out += pack(chunk[:whole], bits)
        carry = np.asarray(chunk[whole:], dtype=np.uint32)
    if carry.size:
        out += pack(carry, bits)
    return bytes(out)


def unpack_range(data, start: int, count: int, bits: int) -> np.ndarray:
    """Values start .. start+count-1 of a packed stream, without unpacking the rest."""
    first_bit = start * bits
    lo = first_bit // 8
    skip = first_bit % 8
    nbytes = (skip + count * bits + 7) // 8
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if lo + nbytes > buf.size:
        raise ValueError(f"packed indices need {lo + nbytes} bytes, have {buf.size}")
    if skip == 0:
        return unpack(buf[lo:lo + nbytes], count, bits)
    stream = np.unpackbits(buf[lo:lo + nbytes], bitorder="little")[skip:skip + count * bits]
    weights = (1 << np.arange(bits, dtype=np.uint32)).astype(np.uint32)
    return (stream.reshape(count, bits).astype(np.uint32) @ weights).astype(np.uint16)
