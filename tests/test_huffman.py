"""Entropy-coded indices (.vqm 3.0): the canonical Huffman code, the writer's choice, and a reader
that bounds its work and memory on damaged and hostile coded sections."""
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import torch

import vqexport
from vqexport import write_vqm
from vqexport.errors import VqmError
from vqexport.formats import huffman
from vqexport.formats.vqm import HEADER, HUFFMAN, SECTION, parse_vqm
from vqexport.torch_bridge import decoded_state_dict


def skewed(k: int, n: int, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n, p=rng.dirichlet(np.full(k, alpha)))


@pytest.mark.parametrize("k,n", [(2, 1), (2, 77), (4, 5000), (5, 1023), (16, 1024), (16, 1025), (16, 100_000),
                                 (256, 30_000), (1000, 5000), (65536, 70_000)])
def test_round_trip(k, n):
    s = skewed(k, n, seed=k + n)
    payload = huffman.encode(s, k)
    back = huffman.decode(payload, n, k)
    assert back.dtype == np.uint16 and np.array_equal(back, s)


def test_one_symbol_is_a_one_bit_code():
    payload = huffman.encode(np.full(100, 3), 5)
    assert list(payload[2 + 2:2 + 2 + 5]) == [0, 0, 0, 1, 0]  # length 1 for symbol 3 only
    assert np.array_equal(huffman.decode(payload, 100, 5), np.full(100, 3))


def test_the_worked_example_of_format_md():
    # [0, 0, 0, 1, 2] with k = 3: lengths 1, 2, 2; codes 0, 10, 11; stream 0 0 0 10 11 + one 0 pad bit.
    assert huffman.encode(np.array([0, 0, 0, 1, 2]), 3).hex(" ") == "00 04 07 00 01 02 02 16"


def test_codes_are_canonical_and_the_lengths_optimal():
    freq = np.array([45, 13, 12, 16, 9, 5])  # the textbook example: optimal lengths 1, 3, 3, 3, 4, 4
    lengths = huffman.code_lengths(freq)
    assert list(lengths) == [1, 3, 3, 3, 4, 4]
    codes = huffman.canonical_codes(lengths)
    assert [format(int(c), f"0{n}b") for c, n in zip(codes, lengths, strict=True)] == \
        ["0", "100", "101", "110", "1110", "1111"]


def test_lengths_are_limited_and_still_complete():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])  # unlimited Huffman gives these a 39-bit code
    lengths = huffman.code_lengths(np.array(fib))
    assert lengths.max() <= huffman.MAX_LENGTH
    assert sum(2.0 ** -int(n) for n in lengths) == 1.0
    s = np.repeat(np.arange(40), 3)
    assert np.array_equal(huffman.decode(huffman.encode(s, 40), s.size, 40), s)


def test_coded_size_is_near_the_entropy():
    s = skewed(16, 200_000, alpha=2.0)
    p = np.bincount(s, minlength=16) / s.size
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    bits = 8 * len(huffman.encode(s, 16)) / s.size
    assert entropy <= bits <= entropy + 0.1, (bits, entropy)  # Huffman is within 1 bit; here far closer


# ------------------------------------------------------------------ the .vqm writer and reader

def big_model() -> torch.nn.Module:
    """A dense layer large enough (4096 weights) that its k-means indices code smaller. Gaussian
    weights, as trained ones are near enough: torch's uniform init gives clusters of equal size."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).eval()
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.normal_(0, 0.1)
    return net


# Whether the 64x64 layer's indices code smaller. Not k=4: Gaussian weights give clusters of
# about 16/34/34/16 %, where whole-bit codes save 1 %, less than the code table costs; not k=256,
# whose 256-byte table costs what coding saves on 4096 weights; not pq or rq, whose vector
# clusters come out near equal in size (and rq's 2 x 64 indices are too few to pay for a table).
@pytest.mark.parametrize("method,params,smaller", [
    ("kmeans", {"k": 16}, True), ("kmeans", {"k": 4}, False), ("kmeans", {"k": 256}, False),
    ("kmeans", {"k": 5, "codebook_dtype": "float16"}, True), ("pq", {"k": 16, "d": 2}, False),
    ("rq", {"k": 8, "stages": 2}, False)])
def test_coded_and_plain_files_decode_to_identical_weights(tmp_path, method, params, smaller):
    cm = vqexport.compress(big_model(), method, **params, min_size=0)
    write_vqm(cm, tmp_path / "auto.vqm")
    write_vqm(cm, tmp_path / "packed.vqm", index_coding="packed")
    auto, packed = (tmp_path / "auto.vqm").read_bytes(), (tmp_path / "packed.vqm").read_bytes()
    a, b = vqexport.read_vqm(tmp_path / "auto.vqm"), vqexport.read_vqm(tmp_path / "packed.vqm")
    for x, y in zip(decoded_state_dict(a).values(), decoded_state_dict(b).values(), strict=True):
        assert torch.equal(x, y)
    coded = [t for t in a.compressed if t.sections["indices"].coded_nbytes]
    assert bool(coded) == smaller
    for t in coded:
        assert t.sections["indices"].coded_nbytes < t.sections["indices"].nbytes
    assert HEADER.unpack_from(auto)[1:3] == ((3, 0) if coded else (1, 0))
    assert HEADER.unpack_from(packed)[1:3] == (1, 0)
    assert len(auto) <= len(packed)


def test_files_without_a_coded_section_are_unchanged(tmp_path):
    """Where no index codes smaller (binary: 1 bit is the least a code can take), auto writes the
    packed file byte for byte, at the version it had before 3.0."""
    cm = vqexport.compress(big_model(), "binary", min_size=0)
    write_vqm(cm, tmp_path / "auto.vqm")
    write_vqm(cm, tmp_path / "packed.vqm", index_coding="packed")
    assert (tmp_path / "auto.vqm").read_bytes() == (tmp_path / "packed.vqm").read_bytes()
    assert HEADER.unpack_from((tmp_path / "auto.vqm").read_bytes())[1:3] == (1, 0)


def test_an_unknown_index_coding_is_refused(tmp_path):
    with pytest.raises(vqexport.errors.ConfigError, match="index coding 'zip'"):
        write_vqm(vqexport.compress(big_model(), "kmeans", k=4), tmp_path / "m.vqm", index_coding="zip")


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    path = tmp_path_factory.mktemp("coded") / "m.vqm"
    write_vqm(vqexport.compress(big_model(), "kmeans", k=16, min_size=0), path)
    return path.read_bytes()


def coded_section(data: bytes):
    """(descriptor position, payload offset, length, count) of the file's one Huffman section."""
    h = HEADER.unpack_from(data)
    table_off, table_len = h[7], h[8]
    for pos in range(table_off, table_off + table_len - SECTION.size):
        role, dtype, ndim, zero, *dims, off, length, crc = SECTION.unpack_from(data, pos)
        if role == 2 and dtype == HUFFMAN and ndim == 1 and zero == 0 and off % 64 == 0 and \
                off + length <= len(data) and zlib.crc32(data[off:off + length]) == crc:
            return pos, off, length, dims[0]
    raise AssertionError("no Huffman section")


def with_payload(data: bytes, payload: bytes, dtype: int = HUFFMAN, major: int | None = None) -> bytes:
    """The file with its Huffman section's payload replaced (appended at the end when it grows),
    every checksum fixed, so that only the section's own checks can refuse it."""
    pos, off, length, _ = coded_section(data)
    b = bytearray(data)
    h = list(HEADER.unpack_from(b))
    if len(payload) <= length:
        b[off:off + len(payload)] = payload
        b[off + len(payload):off + length] = bytes(length - len(payload))
    else:
        b += bytes(-len(b) % 64)
        off = len(b)
        b += payload
        h[9] = len(b)
    struct.pack_into("<BB", b, pos, 2, dtype)
    struct.pack_into("<QQI", b, pos + 20, off, len(payload), zlib.crc32(payload))
    table_off, table_len = h[7], h[8]
    struct.pack_into("<I", b, table_off + table_len - 4, zlib.crc32(bytes(b[table_off:table_off + table_len - 4])))
    if major is not None:
        h[1] = major
    head = HEADER.pack(*h)
    b[:64] = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return bytes(b)


def parts(data: bytes):
    _, off, length, count = coded_section(data)
    p = data[off:off + length]
    nblocks = -(-count // struct.unpack_from("<H", p)[0])
    return p, 2 + 2 * nblocks, 2 + 2 * nblocks + 16  # payload, start of the lengths, start of the stream


def test_the_coded_fixture_reads(coded):
    assert parse_vqm(coded)["0.weight"].sections["indices"].coded_nbytes > 0
    assert with_payload(coded, parts(coded)[0]) == coded


def edit(p: bytes, at: int, value: bytes) -> bytes:
    return p[:at] + value + p[at + len(value):]


def damaged(coded):
    p, lens, stream = parts(coded)
    lengths = list(p[lens:stream])
    deepest = lengths.index(max(lengths))
    return {
        "block size 0": (edit(p, 0, b"\0\0"), "block size 0 is outside"),
        "block size over the cap": (edit(p, 0, struct.pack("<H", 4096)), "block size 4096 is outside"),
        "block size 1": (edit(p, 0, struct.pack("<H", 1)), "cannot hold its"),
        "a length over 24": (edit(p, lens + deepest, bytes([25])), "over 24"),
        "an incomplete code": (edit(p, lens + deepest, bytes([lengths[deepest] + 1])), "complete prefix code"),
        "an over-full code": (edit(p, lens + deepest, bytes([lengths[deepest] - 1])), "complete prefix code"),
        "no code at all": (edit(p, lens, bytes(16)), "complete prefix code"),
        "a one-symbol code of length 2": (edit(p, lens, bytes([2] + [0] * 15)), "one-symbol code"),
        "truncated stream": (p[:-1], "the stream needs"),
        "extra stream byte": (p + b"\0", "the stream needs"),
        "truncated to its header": (p[:3], "cannot hold"),
        "empty": (b"", "shorter than"),
        "block bits too small": (edit(p, 2, struct.pack("<H", 3)), "the stream needs|bit count"),
        "block bits moved between blocks": (edit(edit(p, 2, struct.pack("<H", struct.unpack_from("<H", p, 2)[0] + 1)),
                                                  4, struct.pack("<H", struct.unpack_from("<H", p, 4)[0] - 1)),
                                             "does not end where"),
        "padding bits set": (p[:-1] + bytes([p[-1] | 1]) if p[-1] & 1 == 0 else None, "padding bits"),
    }


@pytest.mark.parametrize("case", ["block size 0", "block size over the cap", "block size 1", "a length over 24",
                                  "an incomplete code", "an over-full code", "no code at all",
                                  "a one-symbol code of length 2", "truncated stream", "extra stream byte",
                                  "truncated to its header", "empty", "block bits too small",
                                  "block bits moved between blocks", "padding bits set"])
def test_a_damaged_coded_section_is_one_line_naming_file_and_tensor(coded, case):
    payload, expect = damaged(coded)[case]
    if payload is None:
        pytest.skip("the last code ends on a byte boundary")  # the fixture is fixed, so this is stable
    with pytest.raises(VqmError, match=expect) as e:
        parse_vqm(with_payload(coded, payload), "f.vqm")
    assert "\n" not in str(e.value) and str(e.value).startswith("f.vqm: 0.weight/indices: damaged Huffman")


def test_a_stream_bit_flip_is_refused_or_decodes_to_valid_indices(coded):
    """Every single-bit flip of the stream: a one-line error, or k-valid indices of the declared count."""
    p, _, stream = parts(coded)
    count = coded_section(coded)[3]
    refused = 0
    for bit in np.random.default_rng(0).choice(np.arange(8 * stream, 8 * len(p)), 150, replace=False):
        b = bytearray(p)
        b[bit // 8] ^= 0x80 >> int(bit % 8)
        try:
            s = huffman.decode(bytes(b), count, 16)
        except huffman.HuffmanError:
            refused += 1
            continue
        assert s.size == count and int(s.max()) < 16
    assert refused > 0  # a flip changes a code's length, so most flips move a block's end


def test_a_huffman_section_needs_version_3_and_the_indices_role(coded):
    with pytest.raises(VqmError, match="only for indices, in a version 3 file"):
        parse_vqm(with_payload(coded, parts(coded)[0], major=2), "f.vqm")
    older = bytearray(with_payload(coded, parts(coded)[0], major=2))
    with pytest.raises(VqmError, match="unsupported .vqm version 4"):
        parse_vqm(with_payload(bytes(older), parts(coded)[0], major=4), "f.vqm")


def test_a_hostile_section_costs_bounded_time_and_memory(coded, monkeypatch):
    """A declared count the payload cannot hold is refused before the decode allocates; the
    longest legal decode of a payload is O(count) and its memory a few bytes per symbol."""
    p = parts(coded)[0]
    # A block size of 1 declares one u16 per symbol: the header check refuses it at once.
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(huffman.HuffmanError):
        huffman.decode(edit(p, 0, struct.pack("<H", 1)), 10**12, 16)
    with pytest.raises(huffman.HuffmanError):
        huffman.decode(p, 10**12, 16)  # a count far past what the blocks hold
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 1 << 20, peak
    # A large legal payload: 16-bit codes for all of k = 65536, in blocks of MAX_BLOCK.
    n = 8 * huffman.MAX_BLOCK
    s = np.arange(n) % 65536
    payload = huffman.encode(s, 65536, block=huffman.MAX_BLOCK)
    for jump in (False, True):
        monkeypatch.setattr(huffman, "JUMP_BITS", 1 << 30 if jump else 0)
        tracemalloc.start()
        back = huffman.decode(payload, n, 65536)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.array_equal(back, s)
        # By steps: the output and a few per-block arrays (16 bytes a symbol), the stream's words
        # (4 bytes a byte) and the code table: O(k), and the file holds k code lengths and a
        # codebook of k entries. By pointer jumping, which only streams of at most JUMP_BITS bits
        # take: a few arrays over the stream's bits besides (under 40 bytes a bit).
        bound = 16 * n + 6 * len(payload) + 40 * 65536 + (40 * 8 * len(payload) if jump else 0)
        assert peak < bound, (jump, peak, bound)


@pytest.mark.parametrize("k,n,block", [(16, 40_000, 64), (2, 3000, 7), (65536, 20_000, 1000), (5, 1, 1)])
def test_decoding_by_steps_and_by_pointer_jumping_agree(monkeypatch, k, n, block):
    """Short streams decode by pointer jumping, long ones in steps: both give the symbols, and
    both refuse a stream whose first block's bits are moved to the second (or, for k = 2, whose
    count then cannot hold it). The 65536 case has codes past the lookup: the canonical search."""
    s = skewed(k, n, seed=n)
    payload = huffman.encode(s, k, block=block)
    nblocks = -(-n // block)
    moved = None
    if nblocks > 1:
        a, b = struct.unpack_from("<HH", payload, 2)
        moved = payload[:2] + struct.pack("<HH", a + 1, b - 1) + payload[6:]
    for threshold in (0, 1 << 30):  # by steps, by pointer jumping
        monkeypatch.setattr(huffman, "JUMP_BITS", threshold)
        assert np.array_equal(huffman.decode(payload, n, k), s)
        if moved is not None:
            with pytest.raises(huffman.HuffmanError, match="block 0 does not end|no code|cannot hold"):
                huffman.decode(moved, n, k)
