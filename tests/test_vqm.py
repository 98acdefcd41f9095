"""The .vqm writer and reader: round trips, size accounting, and rejection of every corruption."""
import struct
import zlib

import numpy as np
import pytest
import torch

import vqexport
from vqexport.errors import VqmError
from vqexport.formats.vqm import HEADER, SECTION, parse_vqm

from conftest import tiny_cnn

SETTINGS = [
    ("binary", {}),
    ("kmeans", {"k": 16}),
    ("kmeans", {"k": 5}),  # a width that is not a power of two
    ("kmeans", {"k": 16, "codebook_dtype": "float16"}),
    ("pq", {"k": 8, "d": 4}),
    ("pq", {"k": 8, "d": 2, "rows": True}),
    ("rq", {"k": 8, "stages": 2}),
    ("svd", {"rank": 4}),
]


@pytest.fixture(scope="module")
def model():
    return vqexport.load_model(tiny_cnn())


@pytest.mark.parametrize("method,params", SETTINGS)
def test_round_trip_is_exact(model, tmp_path, method, params):
    cm = vqexport.compress(model, method, **params)
    path = tmp_path / "m.vqm"
    cm.save(path)
    back = vqexport.read_vqm(path)
    a, b = cm.decoded_state_dict(), back.decoded_state_dict()
    assert list(a) == list(b) == list(model.state_dict())
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    assert back.metadata == cm.metadata


@pytest.mark.parametrize("method,params", SETTINGS)
def test_file_size_matches_accounting(model, tmp_path, method, params):
    cm = vqexport.compress(model, method, **params)
    path = tmp_path / "m.vqm"
    cm.save(path)
    ideal = cm.ideal_bits() / 8
    size = path.stat().st_size
    assert ideal <= size <= ideal + 4096 + 0.001 * ideal, (size, ideal)


def test_reference_cnn_file_size_bound(tmp_path):
    from vqexport.zoo import reference_model

    cm = vqexport.compress(reference_model(), "kmeans", k=16)
    cm.save(tmp_path / "r.vqm")
    ideal = cm.ideal_bits() / 8
    assert (tmp_path / "r.vqm").stat().st_size <= ideal + 4096 + 0.001 * ideal
    assert cm.summary()["layer_compression"] > 7.9  # 32 / 4 bits, less the codebooks


def test_same_seed_gives_identical_bytes(model, tmp_path):
    for i in range(2):
        vqexport.compress(model, "pq", k=8, d=4, seed=7).save(tmp_path / f"{i}.vqm")
    assert (tmp_path / "0.vqm").read_bytes() == (tmp_path / "1.vqm").read_bytes()


def test_payloads_are_64_byte_aligned(model, tmp_path):
    cm = vqexport.compress(model, "pq", k=8, d=4)
    cm.save(tmp_path / "m.vqm")
    for off, _length in _sections(( tmp_path / "m.vqm").read_bytes()):
        assert off % 64 == 0


# --- corruption: every region is checked ---------------------------------------------------------

def _header(data):
    return HEADER.unpack_from(data)


def _sections(data):
    """(offset, length) of every payload, walking the table as the spec says."""
    h = _header(data)
    table = data[h[7]:h[7] + h[8] - 4]
    pos, out = 0, []
    for _ in range(h[4]):
        (nlen,) = struct.unpack_from("<H", table, pos)
        pos += 2 + nlen
        _code, ndim = struct.unpack_from("<BB", table, pos)
        pos += 2 + 4 * ndim
        *_, nsec = struct.unpack_from("<IIBBIBB", table, pos)
        pos += struct.calcsize("<IIBBIBB")
        for _ in range(nsec):
            vals = SECTION.unpack_from(table, pos)
            out.append((vals[8], vals[9]))
            pos += SECTION.size
    return out


@pytest.fixture(scope="module")
def good(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("vqm") / "good.vqm"
    vqexport.compress(model, "kmeans", k=16).save(path)
    return path.read_bytes()


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0x40
    return bytes(b)


def reheader(data, **fields):
    """Rewrite header fields and fix the header checksum, to reach the checks behind it."""
    names = ["magic", "major", "minor", "hsize", "n", "meta_off", "meta_len", "table_off", "table_len", "size",
             "meta_crc", "crc"]
    vals = dict(zip(names, _header(data)))
    vals.update(fields)
    head = HEADER.pack(*[vals[n] for n in names])
    head = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return head + data[64:]


def test_good_file_parses(good):
    assert parse_vqm(good).tensors


@pytest.mark.parametrize("case,expect", [
    ("empty", "bad magic"),
    ("magic", "bad magic"),
    ("version", "unsupported .vqm version 2"),
    ("header_crc", "checksum mismatch in header"),
    ("truncated", "truncated"),
    ("padded", "truncated or padded"),
    ("meta_crc", "checksum mismatch in metadata"),
    ("table_crc", "checksum mismatch in tensor table"),
    ("meta_outside", "outside"),
])
def test_header_metadata_and_table_corruption(good, case, expect):
    h = dict(zip(["meta_off", "meta_len", "table_off", "table_len"], _header(good)[5:9]))
    data = {
        "empty": b"",
        "magic": b"XQM\x00" + good[4:],
        "version": reheader(good, major=2),
        "header_crc": flip(good, 20),
        "truncated": good[:-10],
        "padded": good + b"\x00",
        "meta_crc": flip(good, h["meta_off"] + 3),
        "table_crc": flip(good, h["table_off"] + 5),
        "meta_outside": reheader(good, meta_len=len(good)),
    }[case]
    with pytest.raises(VqmError, match=expect):
        parse_vqm(data, "f.vqm")


def test_every_section_checksum_is_checked(good):
    secs = _sections(good)
    assert len(secs) >= 6
    for off, length in secs:
        if length == 0:
            continue
        with pytest.raises(VqmError, match="checksum mismatch in section"):
            parse_vqm(flip(good, off + length // 2), "f.vqm")


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.vqm"
    bad.write_bytes(b"hello")
    with pytest.raises(VqmError, match=r"bad\.vqm: not a \.vqm file"):
        vqexport.read_vqm(bad)


def test_index_beyond_k_is_rejected(model, tmp_path):
    # k=5 uses 3-bit indices, so 5..7 fit the width but not the codebook.
    cm = vqexport.compress(model, "kmeans", k=5)
    t = cm.compressed[0]
    raw = bytearray(t.sections["indices"].data.tobytes())
    raw[0] |= 0b111
    t.sections["indices"].data = np.frombuffer(bytes(raw), dtype=np.uint8)
    cm.save(tmp_path / "m.vqm")
    with pytest.raises(VqmError, match="index is >= k=5"):
        vqexport.read_vqm(tmp_path / "m.vqm")


def test_overlapping_sections_are_rejected(tmp_path):
    # Two equal bias vectors give two sections with the same length and checksum; pointing the
    # second at the first's bytes passes every other check, so only the overlap check can catch it.
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    with torch.no_grad():
        net[1].bias.copy_(net[0].bias)
    vqexport.compress(net, "kmeans", k=4).save(tmp_path / "m.vqm")
    data = bytearray((tmp_path / "m.vqm").read_bytes())
    h = _header(data)
    table_off, table_len = h[7], h[8]
    table = bytes(data[table_off:table_off + table_len - 4])
    pos, found = 0, {}
    for _ in range(h[4]):
        (nlen,) = struct.unpack_from("<H", table, pos)
        name = table[pos + 2:pos + 2 + nlen].decode()
        pos += 2 + nlen
        _code, ndim = struct.unpack_from("<BB", table, pos)
        pos += 2 + 4 * ndim
        *_, nsec = struct.unpack_from("<IIBBIBB", table, pos)
        pos += struct.calcsize("<IIBBIBB")
        for _ in range(nsec):
            found[name] = (pos, SECTION.unpack_from(table, pos))
            pos += SECTION.size
    (_, first), (pos1, second) = found["0.bias"], found["1.bias"]
    assert first[9:] == second[9:] and first[8] != second[8]  # same length and crc, other offset
    patched = bytearray(table)
    patched[pos1:pos1 + SECTION.size] = SECTION.pack(*second[:8], first[8], *second[9:])
    data[table_off:table_off + table_len - 4] = patched
    struct.pack_into("<I", data, table_off + table_len - 4, zlib.crc32(bytes(patched)))
    with pytest.raises(VqmError, match="0.bias/raw and 1.bias/raw overlap"):
        parse_vqm(bytes(data), "m.vqm")
