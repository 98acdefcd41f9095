"""The Huffman writer's fast paths: the chunked bincount stream and the decision from the packed
bytes' histogram give the bytes the first, bit-matrix encoder gave (kept here as the reference)."""
import numpy as np
import pytest

from vqexport import bitpack
from vqexport.formats import huffman


def reference_encode(symbols, k: int, block: int = huffman.BLOCK) -> bytes:
    """The encoder as first written: every code's bits as a row of a bit matrix, packbits after."""
    sym = np.ascontiguousarray(symbols).ravel().astype(np.int64)
    lengths = huffman.code_lengths(np.bincount(sym, minlength=k))
    codes = huffman.canonical_codes(lengths).astype(np.int64)
    n = lengths.astype(np.int64)[sym]
    nblocks = -(-sym.size // block)
    block_bits = np.add.reduceat(n, np.arange(nblocks) * block) if nblocks else np.zeros(0, np.int64)
    width = int(lengths.max(initial=1))
    bitmat = ((codes[sym][:, None] >> np.arange(width - 1, -1, -1)) & 1).astype(np.uint8)
    keep = np.arange(width)[None, :] >= (width - n)[:, None]
    stream = np.packbits(bitmat[keep], bitorder="big").tobytes()
    return (huffman._U16.pack(block) + block_bits.astype("<u2").tobytes() + lengths.tobytes() + stream)


def symbols(k: int, n: int, seed: int, alpha: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n, p=rng.dirichlet(np.full(k, alpha)))


@pytest.mark.parametrize("k,n,block", [(2, 1, 1024), (2, 999, 7), (3, 5000, 1024), (16, 1024, 1024),
                                       (16, 1025, 1024), (16, 50_001, 1000), (100, 20_000, 2048),
                                       (256, 30_000, 1024), (65536, 70_000, 1024), (7, 3001, 1)])
@pytest.mark.parametrize("chunk", [None, 64])
def test_bytes_equal_the_reference_encoder(monkeypatch, k, n, block, chunk):
    """chunk 64: many chunks, so codes and blocks cross chunk boundaries at every bit offset."""
    if chunk:
        monkeypatch.setattr(huffman, "CHUNK", chunk)
    s = symbols(k, n, seed=k * n + block)
    assert huffman.encode(s, k, block=block) == reference_encode(s, k, block)


def test_long_codes_equal_the_reference_encoder():
    """Fibonacci counts: codes up to the 24-bit limit, the widest a 32-bit window must take."""
    fib = [1, 1]
    while len(fib) < 25:
        fib.append(fib[-1] + fib[-2])  # each count above all before it but one: a chain, 24 deep
    s = np.random.default_rng(0).permutation(np.repeat(np.arange(25), fib))
    assert huffman.code_lengths(np.bincount(s)).max() == huffman.MAX_LENGTH
    assert huffman.encode(s, 25) == reference_encode(s, 25)


def test_one_symbol_and_the_worked_example():
    assert huffman.encode(np.full(1001, 4), 9) == reference_encode(np.full(1001, 4), 9)
    assert huffman.encode(np.array([0, 0, 0, 1, 2]), 3).hex(" ") == "00 04 07 00 01 02 02 16"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 16, 17, 200, 256, 300, 4096, 65536])
@pytest.mark.parametrize("n", [1, 3, 1023, 1024, 4097])
def test_encode_packed_decides_as_the_coded_size_does(k, n):
    """encode_packed codes exactly where encode() comes out smaller than the packed bytes, with the
    same bytes, and packed_coded_nbytes is that length: skewed and near-uniform indices, all widths."""
    bits = bitpack.bits_for(k)
    for alpha in (0.3, 50.0):
        s = symbols(k, n, seed=k + n, alpha=alpha)
        data = bitpack.pack(s, bits)
        full = huffman.encode(s, k)
        packed = bitpack.packed_nbytes(n, bits)
        got = huffman.encode_packed(data, n, bits, k, smaller_than=packed)
        assert got == (full if len(full) < packed else None)
        assert huffman.encode_packed(data, n, bits, k) == full
        assert huffman.packed_coded_nbytes(data, n, bits, k) == len(full)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_the_byte_histogram_ignores_whatever_the_padding_holds(bits):
    k, n = 1 << bits, 8 // bits * 100 + 1
    s = symbols(k, n, seed=bits)
    data = bytearray(bitpack.pack(s, bits))
    data[-1] |= 0xFF & ~((1 << bits) - 1)  # every field after the last value set
    freq, _ = huffman.packed_histogram(bytes(data), n, bits, k)
    assert np.array_equal(freq, np.bincount(s, minlength=k))
    assert huffman.encode_packed(bytes(data), n, bits, k) == huffman.encode(s, k)


def test_a_packed_value_outside_the_alphabet_is_refused():
    data = bitpack.pack(np.array([0, 1, 2, 3]), 2)
    with pytest.raises(ValueError, match="outside 0..2"):
        huffman.encode_packed(data, 4, 2, 3)
    data = bitpack.pack(np.array([0, 1, 5]), 3)
    with pytest.raises(ValueError, match="outside 0..4"):
        huffman.encode_packed(data, 3, 3, 5)
