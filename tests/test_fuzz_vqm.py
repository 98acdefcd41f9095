"""Property tests over mutated .vqm files (issue 14, fuzzing); test_fuzz_load.py does decode="load" .tflite files.

The mutators and the oracle are tools/fuzz_vqm.py's, which runs the same for millions of inputs.
The only allowed outcomes are success (with no more decoded bytes than the cap) or a
VqexportError; any other exception fails the test, and hypothesis shrinks it to a small case.
"""
import json
import struct
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqexport.formats import limits
from vqexport.formats.vqm import parse_vqm

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "fuzz_vqm.py"


fuzz = load_tool("fuzz_vqm.py")  # it puts tools/ on sys.path for its own import of the mutators
import vqm_mutations as mut  # noqa: E402

VQMS = mut.seed_vqms(0)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_seeds_are_valid_and_cover_every_method():
    methods = set()
    for data in VQMS:
        assert fuzz.check_vqm(data) == "ok"
        methods |= {t.method for t in parse_vqm(data).tensors}
    assert methods == {"raw", "binary", "kmeans", "pq", "rq", "svd"}
    coded = [t for data in VQMS for t in parse_vqm(data).compressed
             if "indices" in t.sections and t.sections["indices"].coded_nbytes]
    assert coded, "no seed has a Huffman-coded index section"


def test_fix_checksums_restores_a_valid_file():
    data = VQMS[1]
    assert mut.fix_checksums(data) == data
    edited = data.replace(b"vqexport fuzz", b"vqexport fuzZ")
    assert edited != data and fuzz.check_vqm(edited) == "rejected"
    assert fuzz.check_vqm(mut.fix_checksums(edited)) == "ok"


@FAST
@given(i=st.integers(0, len(VQMS) - 1), rnd=st.randoms(use_true_random=False))
def test_mutated_vqm_is_read_or_refused(i, rnd):
    assert fuzz.check_vqm(mut.mutate_vqm(VQMS[i], rnd)) in ("ok", "rejected")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                     | st.sampled_from(["fc1.weight", "fc1.bias", "nosuch"]),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(mut.KEYS + mut.SUBKEYS + ["fc1.weight", "fc2.weight"]),
                                       inner, max_size=4),
                     max_leaves=12)


@FAST
@given(meta=_json)
def test_any_metadata_is_read_or_refused(meta, tmp_path_factory):
    data = VQMS[0]
    meta_off = mut.HEADER.unpack_from(data)[5]  # the metadata is the last region
    text = json.dumps(meta).encode("utf-8", "surrogatepass")
    raw = bytearray(data[:meta_off] + text)
    struct.pack_into("<Q", raw, 24, len(text))
    scratch = tmp_path_factory.getbasetemp() / "inspect.vqm"
    assert fuzz.check_vqm(mut.fix_checksums(bytes(raw)), scratch) in ("ok", "rejected")


def test_the_oracle_reports_other_exception_types(monkeypatch):
    """A reader bug is found: the same run with parse_vqm raising KeyError counts it as unexpected."""
    def broken(data, name="<bytes>"):
        raise KeyError("skipped")

    monkeypatch.setattr(fuzz, "parse_vqm", broken)
    r = fuzz.run("vqm", 5, seed=0, timeout=10, extra=[])
    assert r["unexpected"] == {"KeyError": 5} and r["first_unexpected"]["KeyError"]["index"] == 0


def test_the_runner_counts_a_hang(monkeypatch):
    import time

    monkeypatch.setattr(fuzz, "check_vqm", lambda data, scratch=None: time.sleep(5))
    r = fuzz.run("vqm", 1, seed=0, timeout=0.2, extra=[])
    assert r["hang_count"] == 1 and r["outcomes"] == {"hang": 1}


def run_tool(target):
    """tools/fuzz_vqm.py as a user runs it, for 200 inputs: its JSON report, checked."""
    p = subprocess.run([sys.executable, str(TOOL), "--target", target, "--inputs", "200", "--seed", "3", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["inputs"] == 200 and sum(r["outcomes"].values()) == 200 and r["outcomes"].get("rejected", 0) > 0
    assert r["unexpected"] == {} and r["hang_count"] == 0
    assert 0 < r["peak_rss_mib"] * 2**20 < limits.DEFAULT_MAX_DECODED
    assert r["slowest"]["seconds"] < r["timeout_s"]


def test_fuzz_tool_runs_and_reports():
    run_tool("vqm")
