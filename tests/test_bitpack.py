import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqexport import bitpack


@settings(max_examples=200, deadline=None)
@given(bits=st.integers(1, 16), data=st.data())
def test_round_trip_every_width(bits, data):
    values = data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=0, max_size=300))
    arr = np.array(values, dtype=np.uint32)
    packed = bitpack.pack(arr, bits)
    assert len(packed) == bitpack.packed_nbytes(len(values), bits)
    assert np.array_equal(bitpack.unpack(packed, len(values), bits), arr)


def test_spec_example():
    # docs/FORMAT.md: b = 3, values [5, 3, 7] -> bytes 0xDD 0x01
    assert bitpack.pack(np.array([5, 3, 7]), 3) == bytes([0xDD, 0x01])


def test_lsb_first_and_zero_high_bits():
    assert bitpack.pack(np.array([1]), 1) == b"\x01"
    assert bitpack.pack(np.array([0x1234]), 16) == b"\x34\x12"
    # values at stream bits 0, 5 and 10: byte 0 = 0b00100001, byte 1 = 0b00000100
    assert bitpack.pack(np.array([1, 1, 1]), 5) == bytes([0b00100001, 0b00000100])


def test_large_array_crosses_chunks():
    rng = np.random.default_rng(1)
    n = 8 * (1 << 20) + 12345  # more than one internal chunk
    v = rng.integers(0, 1 << 5, n)
    assert np.array_equal(bitpack.unpack(bitpack.pack(v, 5), n, 5), v)


def test_rejects_values_too_wide_and_bad_widths():
    with pytest.raises(ValueError):
        bitpack.pack(np.array([8]), 3)
    with pytest.raises(ValueError):
        bitpack.pack(np.array([0]), 17)
    with pytest.raises(ValueError):
        bitpack.unpack(b"\x00", 9, 1)


@pytest.mark.parametrize("k,bits", [(2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5), (256, 8), (65536, 16)])
def test_bits_for(k, bits):
    assert bitpack.bits_for(k) == bits


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 16), n=st.integers(1, 200), data=st.data())
def test_unpack_range_matches_slice_of_full_unpack(bits, n, data):
    v = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=n, max_size=n)), dtype=np.uint32)
    start = data.draw(st.integers(0, n - 1))
    count = data.draw(st.integers(0, n - start))
    packed = bitpack.pack(v, bits)
    assert np.array_equal(bitpack.unpack_range(packed, start, count, bits), v[start:start + count])


def test_pack_stream_equals_pack_for_any_chunking():
    v = np.arange(100) % 32
    for cuts in ([64], [10], [3, 7, 7, 50], [0, 0, 99], []):  # grouped codebooks cut where a group ends
        parts = np.split(v, cuts)
        assert bitpack.pack_stream(parts, 5) == bitpack.pack(v, 5), cuts
