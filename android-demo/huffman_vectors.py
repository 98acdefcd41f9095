"""The .vqm 3.0 test vectors (entropy-coded indices) that make_test_vectors.py writes for the Java tests.

Each coded case is written twice from one compression, with index_coding "auto" (its indices
Huffman-coded: the writer codes a tensor only where that is smaller, which these Gaussian
weights make true) and "packed"; the Java tests decode both and compare them with each other and
with Python's decode, byte for byte. The damaged copies of a coded file reach the Huffman checks
only: every checksum is recomputed after the edit.
"""
from __future__ import annotations

import struct
import zlib

import torch

from vqexport.formats.vqm import HEADER, HUFFMAN, SECTION


def gaussian_mlp(seed: int, width: int = 128) -> torch.nn.Module:
    """Dense layers of Gaussian weights: 1-D k-means on them gives clusters of unequal size (torch's
    uniform init gives equal ones, whose indices no code shortens)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 40)).eval()
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.normal_(0, 0.05)
    return net


def gaussian_conv(seed: int) -> torch.nn.Module:
    """A conv weight [32, 16, 3, 3] (m = 32 rows of n = 144), Gaussian."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(32 * 2 * 2, 10)).eval()
    with torch.no_grad():
        net[0].weight.normal_(0, 0.05)
    return net


# name, compress() arguments, model. Index widths 3, 4, 6 and 8 bits; one grouped N-D weight.
CASES = [
    ("coded_kmeans_k16", dict(method="kmeans", k=16), gaussian_mlp(0)),
    ("coded_kmeans_k5", dict(method="kmeans", k=5), gaussian_mlp(1)),
    ("coded_kmeans_k40_f16", dict(method="kmeans", k=40, codebook_dtype="float16"), gaussian_mlp(2)),
    ("coded_kmeans_k256", dict(method="kmeans", k=256), gaussian_mlp(3, width=1024)),  # its table needs many weights
    ("coded_conv_kmeans_k16_g4", dict(method="kmeans", k=16, group_size=8, types=("conv",), min_size=0),
     gaussian_conv(4)),
]


def todo():
    """(name, compress() arguments, model, index coding, its twin's name) for both files of each case."""
    out = []
    for name, kw, model in CASES:
        out.append((name, kw, model, "auto", name + "_packed"))
        out.append((name + "_packed", kw, model, "packed", name))
    return out


def coded_section(data: bytes):
    """(descriptor position, payload offset, length, count) of the first Huffman section of a file."""
    h = HEADER.unpack_from(data)
    table_off, table_len = h[7], h[8]
    for pos in range(table_off, table_off + table_len - SECTION.size):
        role, dtype, ndim, zero, *dims, off, length, crc = SECTION.unpack_from(data, pos)
        if role == 2 and dtype == HUFFMAN and 1 <= ndim <= 4 and zero == 0 and off % 64 == 0 \
                and off + length <= len(data) and zlib.crc32(data[off:off + length]) == crc:
            count = 1
            for v in dims[:ndim]:
                count *= v
            return pos, off, length, count
    raise SystemExit("huffman_vectors: the coded file has no Huffman section")


def _with_payload(data: bytes, payload: bytes, major: int | None = None) -> bytes:
    """The file with its Huffman payload replaced in place (zero-filled when shorter), checksums fixed."""
    pos, off, length, _ = coded_section(data)
    if len(payload) > length:
        raise SystemExit("huffman_vectors: a damaged payload may not grow")
    b = bytearray(data)
    b[off:off + length] = payload + bytes(length - len(payload))
    struct.pack_into("<QI", b, pos + 28, len(payload), zlib.crc32(payload))
    h = list(HEADER.unpack_from(b))
    table_off, table_len = h[7], h[8]
    struct.pack_into("<I", b, table_off + table_len - 4, zlib.crc32(bytes(b[table_off:table_off + table_len - 4])))
    if major is not None:
        h[1] = major
    head = HEADER.pack(*h)
    b[:64] = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return bytes(b)


def damaged(data: bytes, k: int) -> dict[str, bytes]:
    """Copies of a coded file whose Huffman section is damaged in one way each (FORMAT.md checks)."""
    _, off, length, count = coded_section(data)
    p = data[off:off + length]
    block = struct.unpack_from("<H", p)[0]
    nb = -(-count // block)
    lens, stream = 2 + 2 * nb, 2 + 2 * nb + k
    lengths = list(p[lens:stream])
    deep = lengths.index(max(lengths))

    def edit(at: int, value: bytes) -> bytes:
        return p[:at] + value + p[at + len(value):]

    first_bits = struct.unpack_from("<H", p, 2)[0]
    v = {
        "huffman_block_size_0": edit(0, b"\0\0"),
        "huffman_block_size_4096": edit(0, struct.pack("<H", 4096)),
        "huffman_length_25": edit(lens + deep, bytes([25])),
        "huffman_incomplete_code": edit(lens + deep, bytes([lengths[deep] + 1])),
        "huffman_overfull_code": edit(lens + deep, bytes([lengths[deep] - 1])),
        "huffman_no_code": edit(lens, bytes(k)),
        "huffman_one_symbol_length_2": edit(lens, bytes([2] + [0] * (k - 1))),
        "huffman_stream_short": p[:-1],
        "huffman_header_only": p[:3],
        "huffman_block_bits_too_small": edit(2, struct.pack("<H", 3)),
        "huffman_stream_flipped": edit(stream, bytes([p[stream] ^ 0x80])),
    }
    if nb > 1:  # one bit moved from block 1 to block 0: the total and the stream length still agree
        second = struct.unpack_from("<H", p, 4)[0]
        v["huffman_block_bits_moved"] = edit(2, struct.pack("<HH", first_bits + 1, second - 1))
    out = {name: _with_payload(data, payload) for name, payload in v.items()}
    out["huffman_in_a_version_2_file"] = _with_payload(data, p, major=2)
    return out
