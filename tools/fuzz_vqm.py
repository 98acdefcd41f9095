"""Fuzz the .vqm reader plus decode, and the decode="load" .tflite loader, for as long as you like.

    python tools/fuzz_vqm.py --target vqm  --inputs 1000000 --seed 0 --json
    python tools/fuzz_vqm.py --target load --inputs 1000000 --seed 0 --json [--tflite real.tflite ...]
    python tools/fuzz_vqm.py --target vqm --seed 0 --replay 12345      # input 12345 again, with its traceback

Each input is a valid seed file (built here: every method, raw tensors of several dtypes, float16
codebooks, PQ by rows; for `load`, a decode="load" .tflite around such a .vqm, plus any --tflite
files) after 1-4 mutations: flipped bytes, truncation or extension, a header or table field set
to an edge value, the metadata JSON replaced or edited (wrong types, deep nesting, NaN, huge
numbers, names of tensors that do not exist), and for `load` the slots and buffer offsets edited.
Most of the time the checksums are then recomputed, so the mutation reaches the checks behind them.

The only allowed outcomes are success or a VqexportError (a one-line user error). A success must
declare no more decoded bytes than the cap (vqexport/formats/limits.py), and is then decoded
(.vqm: every tensor, whole and in row blocks, and the `inspect` summary; `load`: the expansion).
Input i depends only on (--seed, i), so --replay reproduces it. An input that runs longer than
--timeout seconds is a hang. The report counts outcomes, unexpected exception types (with the
first input index of each), hangs, the slowest input, and the peak RSS of the process.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, Path(__file__).resolve().parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
from vqm_mutations import mutate_load, mutate_vqm, seed_loads, seed_vqms  # noqa: E402

from vqexport.errors import VqexportError  # noqa: E402
from vqexport.formats import limits  # noqa: E402
from vqexport.formats.vqm import parse_vqm  # noqa: E402
from vqexport.methods.registry import decode  # noqa: E402

# --- the oracle --------------------------------------------------------------------------------

class Hang(Exception):
    pass


class Rejected(str):
    """The outcome 'rejected', carrying the reader's message for the report's histogram."""

    def __new__(cls, error: Exception):
        r = super().__new__(cls, "rejected")
        r.reason = re.sub(r"\d+", "N", str(error).split(": ", 1)[-1])[:60]
        return r


def check_vqm(data: bytes, scratch: Path | None = None) -> str:
    """'rejected' or 'ok'; raises anything else the reader or the decode raised (a finding)."""
    try:
        cm = parse_vqm(data, "fuzz.vqm")
    except VqexportError as e:
        return Rejected(e)
    decoded = sum(4 * t.numel for t in cm.tensors)
    cap, _ = limits.decoded_cap(len(data))
    if decoded > cap:
        raise AssertionError(f"accepted a file that declares {decoded} decoded bytes, over the cap {cap}")
    for t in cm.tensors:
        w = decode(t)
        if w.shape != tuple(t.shape):
            raise AssertionError(f"{t.name}: decoded {w.shape}, the table says {t.shape}")
        if t.method != "raw":
            blocks = [decode(t, rows) for rows in t.row_blocks(elements=max(1, t.numel // 3))]
            if not np.array_equal(np.concatenate(blocks), w, equal_nan=True):
                raise AssertionError(f"{t.name}: row blocks differ from the whole decode")
    cm.summary()
    if scratch is not None:  # what `inspect` prints, from the file
        from vqexport.commands import _summary, _summary_text

        scratch.write_bytes(data)
        _summary_text(_summary(cm, scratch))
    return "ok"


def check_load(data: bytes) -> str:
    import io

    from vqexport.formats.tflite import external as tflite_external

    out = io.BytesIO()
    try:
        expanded = tflite_external.write_expanded(data, out, "fuzz.tflite")
    except VqexportError as e:
        return Rejected(e)
    if not expanded:
        return "not-load"
    cap, _ = limits.decoded_cap(len(data))
    if len(out.getvalue()) - len(data) > cap + 64:
        raise AssertionError(f"expanded by {len(out.getvalue()) - len(data)} bytes, over the cap {cap}")
    return "ok"


def make_input(target: str, seeds: list, seed: int, i: int) -> bytes:
    rng = random.Random(f"{seed}:{i}")
    base = seeds[rng.randrange(len(seeds))]
    return mutate_vqm(base, rng) if target == "vqm" else mutate_load(base, rng)


# --- the runner --------------------------------------------------------------------------------

def run(target: str, inputs: int, seed: int, timeout: float, extra: list[bytes], progress: int = 0,
        save: Path | None = None, max_seconds: float | None = None) -> dict:
    """Run inputs 0..inputs-1; stops early (and says so) after max_seconds or on SIGTERM."""
    seeds = (seed_vqms(seed) if target == "vqm" else seed_loads(seed)) + list(extra)
    scratch = Path(tempfile.mkdtemp(prefix="vqexport-fuzz-")) / "input.vqm"
    check = (lambda d: check_vqm(d, scratch)) if target == "vqm" else check_load
    outcomes, unexpected, first, reasons = {}, {}, {}, {}
    slowest = {"index": None, "seconds": 0.0}
    slowest_cpu = {"index": None, "cpu_seconds": 0.0}
    hangs = []

    def alarm(signum, frame):
        raise Hang()

    stop = []
    old = signal.signal(signal.SIGALRM, alarm)
    old_term = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append("SIGTERM"))
    start = time.perf_counter()
    done = 0
    try:
        for i in range(inputs):
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                stop.append(f"--max-seconds {max_seconds:g}")
            if stop:
                break
            data = make_input(target, seeds, seed, i)
            t0, c0 = time.perf_counter(), time.process_time()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                outcome = check(data)
            except Hang:
                outcome = "hang"
                hangs.append(i)
            except Exception as e:  # noqa: BLE001 - every other type is the finding this tool reports
                outcome = "unexpected"
                kind = type(e).__name__
                unexpected[kind] = unexpected.get(kind, 0) + 1
                if kind not in first:
                    first[kind] = {"index": i, "message": str(e)[:300]}
                    if save is not None:
                        save.mkdir(parents=True, exist_ok=True)
                        (save / f"{target}-{seed}-{i}-{kind}.bin").write_bytes(data)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            if took > slowest["seconds"]:  # wall time; cpu_seconds tells a slow input from a busy machine
                slowest = {"index": i, "seconds": round(took, 4), "cpu_seconds": round(cpu, 4), "bytes": len(data)}
            if cpu > slowest_cpu["cpu_seconds"]:
                slowest_cpu = {"index": i, "cpu_seconds": round(cpu, 4), "bytes": len(data)}
            outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
            done = i + 1
            if isinstance(outcome, Rejected):
                reasons[outcome.reason] = reasons.get(outcome.reason, 0) + 1
            if progress and (i + 1) % progress == 0:
                rate = (i + 1) / (time.perf_counter() - start)
                print(f"{target}: {i + 1}/{inputs} inputs, {rate:.0f}/s, {outcomes}, unexpected {unexpected}, "
                      f"slowest {slowest['seconds']} s", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGALRM, old)
        signal.signal(signal.SIGTERM, old_term)
        scratch.unlink(missing_ok=True)
        scratch.parent.rmdir()
    seconds = time.perf_counter() - start
    return {"target": target, "seed": seed, "inputs": done, "inputs_requested": inputs,
            "stopped_early": stop[0] if stop else None, "seconds": round(seconds, 1),
            "inputs_per_second": round(done / seconds, 1) if seconds else None, "outcomes": outcomes,
            "unexpected": unexpected, "first_unexpected": first, "hangs": hangs[:20], "hang_count": len(hangs),
            "timeout_s": timeout, "slowest": slowest, "slowest_cpu": slowest_cpu,
            "peak_rss_mib": round(_peak_rss_mib(), 1),
            "distinct_rejections": len(reasons),
            "top_rejections": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:30]),
            "cap_bytes": limits.DEFAULT_MAX_DECODED, "cap_ratio": limits.MAX_DECODED_RATIO}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=["vqm", "load"], default="vqm")
    p.add_argument("--inputs", type=int, default=10000)
    p.add_argument("--seed", type=int, required=True, help="input i depends only on (seed, i)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    p.add_argument("--tflite", action="append", default=[], help="(load) a real decode='load' file to mutate too")
    p.add_argument("--progress", type=int, default=0, metavar="N", help="a line on stderr every N inputs")
    p.add_argument("--save", type=Path, help="folder for the first input of each unexpected exception type")
    p.add_argument("--replay", type=int, metavar="I", help="run input I alone and print its traceback")
    p.add_argument("--max-seconds", type=float, help="stop after this long and report the inputs done")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    extra = [Path(f).read_bytes() for f in a.tflite]
    if a.replay is not None:
        seeds = (seed_vqms(a.seed) if a.target == "vqm" else seed_loads(a.seed)) + extra
        data = make_input(a.target, seeds, a.seed, a.replay)
        try:
            print((check_vqm if a.target == "vqm" else check_load)(data))
        except Exception:  # noqa: BLE001 - shown in full: this is the reproduction
            traceback.print_exc()
            return 1
        return 0
    r = run(a.target, a.inputs, a.seed, a.timeout, extra, a.progress, a.save, a.max_seconds)
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        early = f" (stopped early: {r['stopped_early']})" if r["stopped_early"] else ""
        print(f"{r['target']}: {r['inputs']} inputs{early} in {r['seconds']} s ({r['inputs_per_second']}/s), "
              f"outcomes {r['outcomes']}, unexpected {r['unexpected'] or 'none'}, hangs over {r['timeout_s']} s: "
              f"{r['hang_count']}, slowest {r['slowest']}, peak RSS {r['peak_rss_mib']} MiB")
    return 1 if r["unexpected"] or r["hang_count"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
