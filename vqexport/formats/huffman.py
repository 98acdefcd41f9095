"""Canonical Huffman coding of index streams: the `huffman` section of .vqm 3.0 (docs/FORMAT.md).

Payload, all little-endian:
    u16 block_size B                      symbols per block, 1..MAX_BLOCK
    u16 block_bits[ceil(count / B)]       bits each block's codes take; blocks follow each other
    u8  code_length[k]                    of symbols 0..k-1; 0: the symbol does not occur
    bytes stream                          ceil(sum(block_bits) / 8) bytes, MSB first, zero-padded

The code is canonical (as in DEFLATE): symbols sorted by (length, value) get consecutive codes,
so the lengths alone define it. Blocks let numpy decode every block at once, one vectorised step
per symbol position, and bound each block's work. A decoder checks everything before it trusts
it: a damaged payload is a HuffmanError (ValueError) with a short reason, never an allocation
beyond a few bytes per payload byte and per declared symbol, and never more than O(count + k) work.
"""
from __future__ import annotations

import heapq
import struct

import numpy as np

from .. import bitpack

MAX_LENGTH = 24  # a window of 24 bits plus a start bit of at most 7 fits in 4 bytes
MAX_BLOCK = 2048  # so that a block's bits, at most MAX_BLOCK * MAX_LENGTH, fit in a u16
# The writer's block size: numpy decodes all blocks at once, one step per symbol of a block, so
# a smaller block is a faster decode of a small layer; 16 bits per 1024 symbols is 0.4 % of the
# ~3.7 bits a 16-entry codebook's index takes.
BLOCK = 1024
_U16 = struct.Struct("<H")


class HuffmanError(ValueError):
    """A code table or stream that does not decode to exactly the declared symbols."""


def code_lengths(freq: np.ndarray, limit: int = MAX_LENGTH) -> np.ndarray:
    """Huffman code lengths (uint8, 0 for absent symbols) for these symbol frequencies, none over `limit`.

    A code that comes out too long is rebuilt from flattened frequencies (halved, kept >= 1), which
    shortens the deepest codes first and costs almost nothing on real index streams.
    """
    freq = np.asarray(freq, dtype=np.int64)
    present = np.flatnonzero(freq)
    lengths = np.zeros(freq.size, dtype=np.uint8)
    if present.size == 1:
        lengths[present[0]] = 1  # one symbol still needs one bit per occurrence to be countable
        return lengths
    f = freq[present]
    while True:
        depth = _tree_depths(f)
        if depth.max(initial=0) <= limit:
            lengths[present] = depth
            return lengths
        f = (f >> 1) | 1


def _tree_depths(f: np.ndarray) -> np.ndarray:
    """The depth of each leaf in a Huffman tree of weights f (ties broken by index: deterministic)."""
    n = f.size
    parent = np.zeros(2 * n - 1, dtype=np.int64)
    heap = [(int(w), i) for i, w in enumerate(f)]
    heapq.heapify(heap)
    nxt = n
    while len(heap) > 1:
        wa, a = heapq.heappop(heap)
        wb, b = heapq.heappop(heap)
        parent[a] = parent[b] = nxt
        heapq.heappush(heap, (wa + wb, nxt))
        nxt += 1
    depth = np.zeros(2 * n - 1, dtype=np.int64)
    for node in range(2 * n - 3, -1, -1):  # parents have larger ids: walk from the root down
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol (uint32; meaningless where the length is 0)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    code, prev = 0, 0
    order = np.lexsort((np.arange(lengths.size), lengths))
    for s in order[lengths[order] > 0]:
        code <<= int(lengths[s]) - prev
        prev = int(lengths[s])
        codes[s] = code
        code += 1
    return codes


def encode(symbols: np.ndarray, k: int, block: int = BLOCK) -> bytes:
    """The payload for these symbols (each < k), in the layout of the module docstring."""
    sym = np.ascontiguousarray(symbols).ravel()
    _check_block(block)
    if sym.size and (int(sym.max()) >= k or int(sym.min()) < 0):
        raise ValueError(f"a symbol is outside 0..{k - 1}")
    # Narrowed (after the range check) so that no step widens the whole stream to int64.
    sym = sym.astype(np.uint8 if k <= 256 else np.uint16, copy=False)
    lengths = code_lengths(_histogram(sym, k))
    return _payload(sym, lengths, block)


def encode_packed(data, count: int, bits: int, k: int, block: int = BLOCK,
                  smaller_than: int | None = None) -> bytes | None:
    """encode() of the `count` indices bit-packed in `data` (vqexport.bitpack), or None where the
    payload would not be smaller than `smaller_than` bytes: decided from the histogram alone,
    before any coding, so a tensor that stays packed costs one pass over its packed bytes."""
    _check_block(block)
    freq, sym = packed_histogram(data, count, bits, k)
    lengths = code_lengths(freq)
    if smaller_than is not None and coded_nbytes(freq, lengths, block) >= smaller_than:
        return None
    return _payload(packed_symbols(data, count, bits) if sym is None else sym, lengths, block)


def packed_coded_nbytes(data, count: int, bits: int, k: int, block: int = BLOCK) -> int:
    """len(encode_packed(...)), from the histogram alone."""
    freq, _ = packed_histogram(data, count, bits, k)
    return coded_nbytes(freq, code_lengths(freq), block)


def coded_nbytes(freq: np.ndarray, lengths: np.ndarray, block: int = BLOCK) -> int:
    """The exact size of the payload of symbols with these counts, coded with these lengths."""
    freq = np.asarray(freq, dtype=np.int64)
    total_bits = int(np.dot(freq, np.asarray(lengths, dtype=np.int64)))
    return payload_nbytes(int(freq.sum()), freq.size, total_bits, block)


def _check_block(block: int) -> None:
    if not 1 <= block <= MAX_BLOCK:
        raise ValueError(f"block size {block} is outside 1..{MAX_BLOCK}")


# Symbols per chunk of the encoder: its temporaries are ~40 bytes a symbol, so 40 MiB at most
# whatever the layer's size; what it holds for the whole layer is the symbols (1 or 2 bytes each)
# and the stream.
CHUNK = 1 << 20


def _histogram(sym: np.ndarray, k: int) -> np.ndarray:
    """np.bincount in chunks: bincount casts its input to intp, 8 bytes a symbol."""
    freq = np.zeros(k, dtype=np.int64)
    for start in range(0, sym.size, 4 * CHUNK):
        freq += np.bincount(sym[start:start + 4 * CHUNK], minlength=k)[:k]
    return freq


def _buffer(data) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()


def packed_histogram(data, count: int, bits: int, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(how often each of the k symbols occurs, the unpacked symbols or None) for `count` indices
    packed `bits` to a value. For 1, 2, 4 and 8 bits whole values fill each byte, so the counts
    come from a histogram of the bytes, without unpacking; other widths unpack (and hand the
    symbols on, so that they are unpacked once)."""
    buf = _buffer(data)
    need = bitpack.packed_nbytes(count, bits)
    if buf.size < need:
        raise ValueError(f"packed indices need {need} bytes, have {buf.size}")
    buf = buf[:need]
    if bits == 16:
        sym = buf.view("<u2")
    elif bits not in (1, 2, 4, 8):
        sym = bitpack.unpack(buf, count, bits)
    else:
        per, mask = 8 // bits, (1 << bits) - 1
        by_byte = _histogram(buf, 256)
        # table[v, s]: how many of the values byte v holds are s.
        table = np.zeros((256, 1 << bits), dtype=np.int64)
        v = np.arange(256)
        for j in range(per):
            np.add.at(table, (v, (v >> (j * bits)) & mask), 1)
        freq = by_byte @ table
        if count % per:  # the last byte's fields past `count` are padding, whatever they hold
            last = int(buf[-1])
            for j in range(count % per, per):
                freq[(last >> (j * bits)) & mask] -= 1
        if np.any(freq[k:]):
            raise ValueError(f"a symbol is outside 0..{k - 1}")
        return freq[:k], None
    freq = _histogram(sym, 1 << bits)
    if np.any(freq[k:]):
        raise ValueError(f"a symbol is outside 0..{k - 1}")
    return freq[:k], sym


def packed_symbols(data, count: int, bits: int) -> np.ndarray:
    """The packed indices as the narrowest unsigned array that holds them (uint8 up to 8 bits): a
    view for 8 and 16 bits, strided shifts for 1, 2 and 4 (whole values in each byte)."""
    buf = _buffer(data)[:bitpack.packed_nbytes(count, bits)]
    if bits == 8:
        return buf
    if bits == 16:
        return buf.view("<u2")
    if bits not in (1, 2, 4):
        return bitpack.unpack(buf, count, bits)
    per, mask = 8 // bits, np.uint8((1 << bits) - 1)
    out = np.empty(buf.size * per, dtype=np.uint8)
    for j in range(per):
        np.bitwise_and(buf >> np.uint8(j * bits), mask, out=out[j::per])
    return out[:count]


def _payload(sym: np.ndarray, lengths: np.ndarray, block: int) -> bytes:
    """The payload of symbols (uint8 or uint16, each of nonzero length) coded with these lengths."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    # Each code left-justified in 32 bits: shifted right by its start bit in its first byte, it is
    # that byte's 32-bit big-endian window (24 + 7 bits fit).
    top = np.left_shift(canonical_codes(lengths), np.uint32(32) - lengths, dtype=np.uint32)
    nblocks = -(-sym.size // block)
    block_bits = np.zeros(nblocks, dtype="<u2")
    stream = bytearray()
    carry = 0  # the bits of a last, partial byte of the previous chunk: the next one ORs them in
    bit = 0  # where the chunk starts in its first byte
    chunk = block * max(1, CHUNK // block)  # whole blocks
    for start in range(0, sym.size, chunk):
        s = sym[start:start + chunk]
        n = np.take(lengths, s)  # take, not [s]: half the time for small index types
        end = np.cumsum(n, dtype=np.uint32)  # of each code, from the chunk's start; < 2^32 (CHUNK * 24)
        ends = end[np.minimum(np.arange(block, s.size + block, block), s.size) - 1]
        block_bits[start // block:start // block + ends.size] = np.diff(ends, prepend=np.uint32(0))
        out = _chunk_stream(np.take(top, s), n, end, bit)
        out[0] |= carry
        total = bit + int(end[-1])
        whole = total // 8
        stream += out[:whole].tobytes()
        bit = total % 8
        carry = int(out[whole]) if bit else 0
    if bit:
        stream.append(carry)
    # join takes the bytearray as it is: the stream is copied once, not twice.
    return b"".join((_U16.pack(block), block_bits.tobytes(), lengths.tobytes(), stream))


def _chunk_stream(top: np.ndarray, n: np.ndarray, end: np.ndarray, bit: int) -> np.ndarray:
    """The bytes these codes (left-justified in uint32, n bits long, ending at bit `end` after
    `bit`) fill, MSB first, plus at least one zero byte at the end.

    The codes do not overlap, so OR is a sum: each code goes into the 32-bit big-endian window at
    its first byte; the windows that start at one byte are summed by one scatter-add (np.add.at,
    exact in uint32: the sum of disjoint bits), and byte j is the sum of its share of the windows
    at bytes j, j - 1, j - 2 and j - 3.
    """
    pos = end - n
    pos += np.uint32(bit)
    window = top >> (pos & np.uint32(7))
    nbytes = (bit + int(end[-1])) // 8 + 1
    word = np.zeros(nbytes + 3, dtype=np.uint32)
    np.add.at(word, pos >> np.uint32(3), window)
    out = word >> np.uint32(24)
    out[1:] += (word[:-1] >> np.uint32(16)) & np.uint32(255)
    out[2:] += (word[:-2] >> np.uint32(8)) & np.uint32(255)
    out[3:] += word[:-3] & np.uint32(255)
    return out[:nbytes].astype(np.uint8)


def entropy_bits(symbols: np.ndarray, k: int) -> float:
    """The empirical order-0 entropy of the symbols, in bits per symbol: what no code of one symbol
    at a time can beat (Huffman is within one bit of it, usually far closer)."""
    counts = np.bincount(np.ravel(symbols), minlength=k)
    p = counts[counts > 0] / max(1, int(counts.sum()))
    return float(-(p * np.log2(p)).sum())


def payload_nbytes(count: int, k: int, total_bits: int, block: int = BLOCK) -> int:
    return 2 + 2 * -(-count // block) + k + (total_bits + 7) // 8


class Table:
    """A checked canonical code: for each length l, the left-justified limit of its codes, and how
    a code of that length maps to its symbol (the symbols sorted by length, then value)."""

    def __init__(self, lengths: np.ndarray):
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size and int(lengths.max()) > MAX_LENGTH:
            raise HuffmanError(f"a code length is {int(lengths.max())}, over {MAX_LENGTH}")
        present = int(np.count_nonzero(lengths))
        # Kraft sum in integers: sum 2^(L-l) must be exactly 2^L (a complete code), except for a
        # one-symbol code, whose single code is "0". An incomplete or over-full table is damage.
        kraft = int(np.sum(np.left_shift(1, MAX_LENGTH - lengths[lengths > 0]), dtype=np.int64))
        if present == 1:
            if int(lengths.max()) != 1:
                raise HuffmanError("a one-symbol code must have length 1")
        elif kraft != 1 << MAX_LENGTH:
            raise HuffmanError("the code lengths do not form a complete prefix code (Kraft sum "
                               f"{kraft / (1 << MAX_LENGTH):.6g}, must be 1)")
        self.max_len = int(lengths.max()) if present else 0
        counts = np.bincount(lengths, minlength=MAX_LENGTH + 1)[: self.max_len + 1]
        counts[0] = 0
        self.symbols = np.lexsort((np.arange(lengths.size), lengths))[lengths.size - present:].astype(np.int64)
        first = np.zeros(self.max_len + 2, dtype=np.int64)  # first canonical code of each length
        index = np.zeros(self.max_len + 2, dtype=np.int64)  # position of its symbol in self.symbols
        code = 0
        for length in range(1, self.max_len + 1):
            code = (code + int(counts[length - 1])) << 1 if length > 1 else 0
            first[length] = code
            index[length] = index[length - 1] + int(counts[length - 1]) if length > 1 else 0
        self.first, self.index, self.counts = first, index, counts
        # Exclusive limit of the max_len-bit windows that start with a code of length <= l.
        self.limit = np.array([(int(first[n]) + int(counts[n])) << (self.max_len - n)
                               for n in range(1, self.max_len + 1)], dtype=np.int64)


def decode(payload, count: int, k: int) -> np.ndarray:
    """The `count` symbols (uint16) of a payload for a k-symbol alphabet; HuffmanError if damaged."""
    buf = np.frombuffer(payload, dtype=np.uint8) if not isinstance(payload, np.ndarray) else payload.view(np.uint8)
    if buf.size < 2:
        raise HuffmanError("shorter than its block size field")
    block = _U16.unpack_from(buf[:2].tobytes())[0]
    if not 1 <= block <= MAX_BLOCK:
        raise HuffmanError(f"block size {block} is outside 1..{MAX_BLOCK}")
    nblocks = -(-count // block)
    head = 2 + 2 * nblocks + k
    if buf.size < head:
        raise HuffmanError(f"{buf.size} bytes cannot hold its {nblocks} block sizes and {k} code lengths")
    block_bits = buf[2:2 + 2 * nblocks].view("<u2").astype(np.int64)
    table = Table(buf[2 + 2 * nblocks:head])
    stream = buf[head:]
    total = int(block_bits.sum())
    if (total + 7) // 8 != stream.size:
        raise HuffmanError(f"its blocks take {total} bits, so the stream needs {(total + 7) // 8} bytes, "
                           f"and it has {stream.size}")
    if total % 8 and int(stream[-1]) & ((1 << (8 - total % 8)) - 1):
        raise HuffmanError("the padding bits after the last code are not 0")
    sizes = np.full(nblocks, block, dtype=np.int64)
    if nblocks:
        sizes[-1] = count - block * (nblocks - 1)
    # Each code takes 1..max_len bits: a block whose bit count lies outside that is damaged. Found
    # before any decoding, and it bounds how far a position can run below.
    if np.any(block_bits < sizes) or np.any(block_bits > sizes * table.max_len):
        raise HuffmanError("a block's bit count cannot hold its symbols")
    return _decode_blocks(stream, block_bits, sizes, table, count)


# Codes up to this long decode by one lookup in a table of 2^LOOKUP_BITS entries (16 KiB of
# uint32); longer ones, rare by construction, by the canonical search on the lanes that need it.
LOOKUP_BITS = 12
# A stream of at most this many bits decodes by pointer jumping (_decode_jump), in about 25 numpy
# calls over its bits; a longer one by steps (~8 calls each, one per symbol of a block, ~1000), whose
# fixed cost dominates until the blocks are many. Measured crossover: some tens of blocks.
JUMP_BITS = 1 << 18


def _lookup(table: Table, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbol, length) on the next `bits` bits, for every code up to that long; length 0 where the
    code is longer. Two tables, not one packed: a step then gathers each straight into place. The
    codes of a complete canonical code, in order, tile the window space from 0 up."""
    lengths = np.repeat(np.arange(table.max_len + 1), table.counts)  # of table.symbols, in code order
    short = lengths <= bits
    spans = np.left_shift(1, bits - lengths[short])
    covered = int(spans.sum())
    sym = np.zeros(1 << bits, dtype=np.uint16)
    length = np.zeros(1 << bits, dtype=np.uint32)
    sym[:covered] = np.repeat(table.symbols[short], spans)
    length[:covered] = np.repeat(lengths[short], spans)
    return sym, length


def _words(stream: np.ndarray, extra: int, width: int) -> np.ndarray:
    """The big-endian 32-bit word at every byte of the stream (zeros past it, `extra` bytes on),
    in the top of a `width`-bit unsigned integer: a window is then one gather and two shifts."""
    n = stream.size + extra
    m = -(-n // 4)
    padded = np.zeros(4 * m + 4, dtype=np.uint8)
    padded[:stream.size] = stream
    words = np.empty(4 * m, dtype=np.uint32)
    for r in range(4):  # the words at bytes r, r + 4, ...: a big-endian view from byte r
        words[r::4] = np.frombuffer(padded, dtype=">u4", count=m, offset=r)
    if width == 32:
        return words
    return words.astype(np.uint64) << np.uint64(32)


def _slow(table: Table, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, lengths) of the codes that these max_len-bit windows start with: the canonical
    search, for codes longer than the lookup."""
    L = table.max_len
    window = window.astype(np.int64)
    n = np.searchsorted(table.limit, window, side="right") + 1
    if n.size and int(n.max()) > L:
        raise HuffmanError("the stream holds a bit pattern that is no code")
    return table.symbols[table.index[n] + (window >> (L - n)) - table.first[n]], n


def _decode_blocks(stream: np.ndarray, block_bits: np.ndarray, sizes: np.ndarray, table: Table,
                   count: int) -> np.ndarray:
    """All blocks at once: step i decodes symbol i of every block (only the last block can be short).

    Each step is one lookup per block on a fixed window, eight numpy calls into preallocated
    arrays (a call's fixed cost, not its elements, is most of a step on mid-sized tensors). A
    position past the stream reads zeros (the words run on for as far as a damaged block can go:
    its own codes, max_len bits each at most), and its block then fails the end check.
    """
    ends = np.cumsum(block_bits)
    nb = sizes.size
    if nb == 0:
        return np.zeros(0, dtype=np.uint16)
    block = int(sizes[0])
    L = min(table.max_len, LOOKUP_BITS)
    t_sym, t_len = _lookup(table, L)
    extra = (block * table.max_len + 2 * MAX_LENGTH) // 8 + 8
    width = 32 if 8 * (stream.size + extra) < 1 << 32 else 64
    words = _words(stream, extra, width)
    if int(ends[-1]) <= JUMP_BITS:
        return _decode_jump(words, width, block_bits, ends, sizes, table, t_sym, t_len, L, count)
    udt = np.uint32 if width == 32 else np.uint64
    pos = (ends - block_bits).astype(udt)
    down = udt(width - L)
    full = udt(width - table.max_len)
    slow = L < table.max_len or int(np.count_nonzero(table.counts)) == 1  # some window is no short code
    out = np.empty((block, nb), dtype=np.uint16)  # step-major: each step writes one contiguous row
    at, shift, w = np.empty(nb, udt), np.empty(nb, udt), np.empty(nb, udt)
    length = np.empty(nb, np.uint32)
    three, seven = udt(3), udt(7)
    live = nb
    for step in range(block):
        if step == sizes[-1]:  # the short last block is done
            live = nb - 1
            at, shift, w, length = at[:live], shift[:live], w[:live], length[:live]
        p = pos[:live]
        np.right_shift(p, three, out=at)
        np.bitwise_and(p, seven, out=shift)
        np.take(words, at, out=w)
        np.left_shift(w, shift, out=w)
        row = out[step, :live]
        if slow:
            window = w >> full
        np.right_shift(w, down, out=w)
        np.take(t_sym, w, out=row)
        np.take(t_len, w, out=length)
        if slow:
            miss = np.flatnonzero(length == 0)
            if miss.size:
                row[miss], length[miss] = _slow(table, window[miss])
        np.add(p, length, out=p, casting="unsafe")
    if not np.array_equal(pos, ends):
        raise HuffmanError(f"block {int(np.flatnonzero(pos != ends)[0])} does not end where its bit count says")
    return out.T.ravel()[:count]  # rows are blocks in order: a short last block ends at count


def _decode_jump(words, width: int, block_bits, ends, sizes, table: Table, t_sym, t_len, L: int,
                 count: int) -> np.ndarray:
    """Every block at once by pointer jumping: the code at every bit position of the stream, then
    each block's chain of code starts, 1, 2, 4, ... codes at a time (next^2 from next), so about
    log2(block) rounds over the stream's bits instead of a step per symbol. Positions run on
    2 * MAX_LENGTH bits past the stream (zeros there), then into a sink that ends no block."""
    total = int(ends[-1])
    nb = sizes.size
    block = int(sizes[0])
    span = total + 2 * MAX_LENGTH + 1  # positions 0 .. span - 1; the last one is the sink
    udt = np.uint32 if width == 32 else np.uint64
    p = np.arange(span, dtype=udt)
    w = words[p >> udt(3)]
    w <<= p & udt(7)
    i = w >> udt(width - L)
    sym = t_sym[i]
    length = t_len[i]
    del i  # the arrays over every bit are this decode's memory: hold few at once
    if L < table.max_len or int(np.count_nonzero(table.counts)) == 1:
        miss = np.flatnonzero(length == 0)
        if miss.size:
            window = (w[miss] >> udt(width - table.max_len)).astype(np.int64)
            n = np.searchsorted(table.limit, window, side="right") + 1
            code = n <= table.max_len  # where no code starts, length stays 0: an error if a chain gets there
            n, miss, window = n[code], miss[code], window[code]
            sym[miss] = table.symbols[table.index[n] + (window >> (table.max_len - n)) - table.first[n]]
            length[miss] = n
    del w
    p += length.astype(udt, copy=False)
    nxt = np.minimum(p, udt(span - 1), out=p)
    nxt[span - 1] = span - 1
    length[span - 1] = 1  # the sink is a code that goes nowhere: its block fails the end check
    at = np.empty((nb, block), dtype=udt)
    at[:, 0] = (ends - block_bits).astype(udt)
    k = 1
    while k < block:
        m = min(k, block - k)
        at[:, k:k + m] = nxt[at[:, :m]]
        k += m
        if k < block:
            nxt = nxt[nxt]  # now k codes at a time
    # Position of each block's last code, the short last block's included.
    last = at[np.arange(nb), sizes - 1]
    nocode = length[at] == 0
    nocode[-1, sizes[-1]:] = False
    if nocode.any():
        raise HuffmanError("the stream holds a bit pattern that is no code")
    stop = last + length[last]
    if not np.array_equal(stop, ends):
        raise HuffmanError(f"block {int(np.flatnonzero(stop != ends)[0])} does not end where its bit count says")
    return sym[at].ravel()[:count]  # rows are blocks in order: a short last block ends at count
