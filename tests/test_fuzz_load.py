"""Property tests over mutated decode="load" .tflite files (issue 14, fuzzing): the loader that
expands the .vqm embedded in a .tflite. The seeds are built with LiteRT's flatbuffer schema, so this
whole module is in the `tflite` tier (tests/conftest.py); the mutators and oracle are tools/fuzz_vqm.py's.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vqexport.errors import VqexportError
from vqexport.formats.tflite import external as tflite_external
from vqexport.formats.vqm import parse_vqm

from test_fuzz_vqm import FAST, fuzz, mut, run_tool

pytest.importorskip("ai_edge_litert")
LOADS = mut.seed_loads(0)


def test_load_seeds_expand():
    for seed in LOADS:
        assert fuzz.check_load(seed.build()) == "ok"


@FAST
@given(i=st.integers(0, len(LOADS) - 1), rnd=st.randoms(use_true_random=False))
def test_mutated_load_file_is_expanded_or_refused(i, rnd):
    assert fuzz.check_load(mut.mutate_load(LOADS[i], rnd)) in ("ok", "rejected", "not-load")


def test_decode_area_is_capped_on_its_own():
    """Two slots (W and WT) of one layer make the area twice the .vqm's decoded size: a cap between
    the two lets the embedded .vqm through and stops the area."""
    seed = LOADS[0]
    assert {s["layout"] for s in seed.slots if s["layer"] == seed.slots[0]["layer"]} == {"W", "WT"}
    data = seed.build()
    declared = sum(4 * t.numel for t in parse_vqm(seed.vqm).tensors)
    with pytest.raises(VqexportError, match="f.tflite: the decode area holds .* over the --max-decoded-size"):
        tflite_external.expand(data, "f.tflite", max_decoded_size=declared)
    area = len(tflite_external.expand(data, "f.tflite", max_decoded_size=2 * declared + 4096)) - len(data)
    assert declared < area <= 2 * declared + 64 * len(seed.slots)


def test_load_bomb_is_refused():
    """The loader's embedded .vqm is capped like any other: a PQ k=2, d=n layer of 32 GiB."""
    from vqexport.ir import CompressedModel, CompressedTensor, dense_section, packed_bytes_section

    m, n = 131072, 65536
    sections = {"codebook": dense_section("codebook", np.zeros((1, 2, n), np.float32)),
                "indices": packed_bytes_section(bytes(m // 8), (1, m), 1)}
    t = CompressedTensor("fc.weight", "pq", (m, n), sections, k=2, d=n, bits=1)
    seed = mut.LoadSeed(mut.to_bytes(CompressedModel([t], {})),
                         [{"buffer": 1, "layer": "fc.weight", "layout": "W", "shape": [m, n]}], [4 * m * n])
    with pytest.raises(VqexportError, match=r"32\.00 GiB of decoded float32 weights, over 4096x"):
        tflite_external.expand(seed.build(), "bomb.tflite")




def test_fuzz_tool_runs_and_reports():
    run_tool("load")
