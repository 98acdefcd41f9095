"""Two routes from PyTorch to .tflite, measured on the same models: onnx2tf (the route then) and litert-torch.

The measurement behind issue 12's choice, made on commit 298d9d7, when the main venv held onnx2tf
and TensorFlow 2.19. litert-torch won and is now the main venv's converter (vqexport/formats/
tflite/convert.py), so this tool's onnx2tf route runs only from that commit's tree and venv
(`git worktree add ../route-then 298d9d7`); here it stops and says so. The command line's own
run of the same list on today's route is tools/tflite_cli_zoo.py.

    python3 tools/tflite_route.py --setup             # makes .venv-litert from tools/litert-requirements.txt
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --out docs/results/tflite_route.jsonl
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --models resnet18 --routes litert-torch
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --table docs/results/tflite_route.jsonl

Routes, each conversion in its own child process (so its peak RSS is its own, from os.wait4):
  onnx2tf       the project's dense float32 path (export_dense_tflite: torch.onnx -> onnx2tf ->
                flatbuffer pass), in the main venv (TensorFlow 2.19, ai-edge-litert 2.1.0);
  litert-torch  litert_torch.convert(model, (x,)).export(path), in .venv-litert (no TensorFlow,
                ai-edge-litert 2.3.0).
Per model and route: converted or the error's first line, conversion seconds (the convert call
alone), the child's peak RSS and its RSS before converting, .tflite bytes, max |logit diff| /
max |torch logit| on 2 seeded inputs, builtin ops with their versions (and which exceed the
TFLite 2.16.1 table), LiteRT p50 (2 threads, 3 warm-ups, 20 runs) in the route's own venv and in
the other venv's LiteRT, and whether TF 2.16.1's interpreter (the Android app's runtime) loads and
agrees with the file. Models are built with seed 0 from the same torch/torchvision versions in
both venvs; the torch logits of both are compared too.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import mmap
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITERT_VENV = ROOT / ".venv-litert"
LITERT_REQS = ROOT / "tools" / "litert-requirements.txt"
MAIN_PY = Path(os.environ.get("VQEXPORT_MAIN_PYTHON", sys.executable))
LITERT_PY = LITERT_VENV / "bin" / "python"
TF216_PY = Path(os.environ.get("VQEXPORT_TF216_PYTHON", "/work/main/.venv-tf216/bin/python"))
PIP = "24.3.1"


def setup(python: str) -> int:
    """Create .venv-litert with the pinned set; prints its installed size."""
    env = dict(os.environ, PIP_NO_CACHE_DIR="1")
    if not LITERT_PY.exists():
        subprocess.run([python, "-m", "venv", str(LITERT_VENV)], check=True)
    pip = [str(LITERT_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [f"pip=={PIP}"], check=True, env=env)
    subprocess.run(pip + ["-r", str(LITERT_REQS)], check=True, env=env)
    size = subprocess.run(["du", "-sh", str(LITERT_VENV)], capture_output=True, text=True).stdout.split()[0]
    print(f"{LITERT_VENV}: installed, {size}")
    return 0


ZOO = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
       "squeezenet1_1", "densenet121", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "vgg16"]
# small first; VGG-16 and ViT-B/16 (the largest conversions) last
MODELS = ["samepad_mobile", "samepad_mobile_dynamic", "transformer_block", "squeezenet1_1", "mobilenet_v3_small",
          "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "resnet18", "densenet121",
          "resnet50", "convnext_tiny", "vgg16", "vit_b_16"]
ROUTES = ("onnx2tf", "litert-torch")
N_INPUTS = 2
WARMUP, RUNS, THREADS = 3, 20, 2
TIMEOUT_S = 1800


# -- models (imported by both venvs: torch and torchvision only) ----------------------------------
def route_models():
    spec = importlib.util.spec_from_file_location("route_models", ROOT / "tests" / "test_route_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(name: str):
    """(eval module, input shape) with seed 0."""
    import torch

    torch.manual_seed(0)
    if name in ZOO:
        import torchvision

        m = torchvision.models.get_model(name, weights=None)
        if name == "vit_b_16":  # torchvision zero-initialises ViT's head: all logits 0, nothing to compare
            torch.nn.init.normal_(m.heads.head.weight, std=0.02)
        return m.eval(), (1, 3, 224, 224)
    rm = route_models()
    if name in ("samepad_mobile", "samepad_mobile_dynamic"):
        return rm.SamePadMobileNet(static=name == "samepad_mobile").eval(), (1, 3, 224, 224)
    if name == "transformer_block":
        return rm.transformer_block(0), rm.TRANSFORMER_SHAPE
    raise SystemExit(f"unknown model {name}")


def seeded_inputs(shape):
    import numpy as np

    return np.random.default_rng(0).standard_normal((N_INPUTS,) + tuple(shape[1:])).astype(np.float32)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _stub_onnx2tf_download() -> None:
    """onnx2tf downloads sample images from github.com when every input is a 3-channel image (no lifted
    weight input); machines without network then fail. This stands in local random data, to see
    whether the converter itself handles the model (it only uses them to check its own outputs)."""
    import numpy as np
    import onnx2tf.onnx2tf as o2t

    o2t.download_test_image_data = lambda: np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)


def worker_convert(route: str, model: str, d: Path) -> None:
    """Child: build, torch reference, convert (timed), write <model>.<route>.tflite and .json."""
    import traceback

    import numpy as np
    import torch

    res = {"model": model, "route": route}
    m, shape = build(model)
    x = seeded_inputs(shape)
    with torch.no_grad():
        ref = np.concatenate([m(torch.from_numpy(xi[None])).numpy() for xi in x])
    np.save(d / f"{model}.inputs.npy", x)
    np.save(d / f"{model}.{route}.ref.npy", ref)
    out = d / f"{model}.{route}.tflite"
    res["rss_before_mib"] = round(_rss_mib(), 1)
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    try:
        if route == "onnx2tf":
            from vqexport.formats.tflite.export import export_dense_tflite

            if os.environ.get("ROUTE_STUB_ONNX2TF_DOWNLOAD"):
                _stub_onnx2tf_download()
                res["stubbed_download"] = True

            export_dense_tflite(m, out, list(shape))
        else:
            import litert_torch

            litert_torch.convert(m, (torch.from_numpy(x[0][None]),)).export(str(out))
        res["ok"] = out.exists()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - every failure is a row naming its error
        res["ok"] = False
        res["error"] = _first_line(e)
        traceback.print_exc()
    res["convert_s"] = round(time.perf_counter() - t0, 2)
    res["convert_cpu_s"] = round(_cpu_s() - cpu0, 1)  # all threads; less sensitive than seconds to the shared machine
    (d / f"{model}.{route}.json").write_text(json.dumps(res))


def _runtime():
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, f"tensorflow {tf.__version__}"


def _channels_last(ndim: int) -> tuple:
    return (0,) + tuple(range(2, ndim)) + (1,)


def worker_run(path: Path, inputs: Path, ref: Path, bench: bool, out: Path) -> None:
    """Child: load `path` in this venv's interpreter, compare with `ref`, optionally time it."""
    import numpy as np

    res = {}
    try:
        interpreter, res["runtime"] = _runtime()
        x, want = np.load(inputs), np.load(ref)
        t0 = time.perf_counter()
        it = interpreter(model_path=str(path), num_threads=THREADS)
        it.allocate_tensors()
        res["init_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        inp, outp = it.get_input_details()[0], it.get_output_details()[0]
        shape = tuple(int(v) for v in inp["shape"])
        perm = None if shape == x.shape[1:] or shape == (1,) + x.shape[1:] else _channels_last(x.ndim)
        got = []
        for xi in x:
            xi = xi[None] if perm is None else xi[None].transpose(perm)
            it.set_tensor(inp["index"], np.ascontiguousarray(xi))
            it.invoke()
            got.append(it.get_tensor(outp["index"]).copy())
        got = np.concatenate(got)
        if got.shape != want.shape and got.ndim >= 3:  # a channels-last output back to torch's layout
            got = got.transpose((0, got.ndim - 1) + tuple(range(1, got.ndim - 1)))
        res["layout"] = "torch" if perm is None else "channels-last"
        if not np.abs(want).max() > 0:
            raise ValueError("the torch outputs are all zero: nothing to compare against")
        res["rel_diff"] = float(np.abs(got - want).max() / np.abs(want).max())
        if bench:
            for _ in range(WARMUP):
                it.invoke()
            times = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                it.invoke()
                times.append(time.perf_counter() - t0)
            res["p50_ms"] = round(float(np.median(times)) * 1e3, 3)
        res["ok"] = True
    except Exception as e:  # noqa: BLE001 - a file the runtime refuses is a measured result
        res["ok"] = False
        lines = [ln for ln in str(e).splitlines() if "find op" in ln or "not supported" in ln.lower()]
        res["error"] = lines[0].strip()[:300] if lines else _first_line(e)
    out.write_text(json.dumps(res))


def worker_latency(files: list[Path], rounds: int, out: Path) -> None:
    """Child: the routes' files of one model, timed in turns in this venv's interpreter (fairer on a shared machine)."""
    import numpy as np

    interpreter, runtime = _runtime()
    its = []
    for f in files:
        it = interpreter(model_path=str(f), num_threads=THREADS)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32))
        its.append(it)
    times = [[] for _ in files]
    for _ in range(rounds):
        for it, t in zip(its, times, strict=True):
            for _ in range(WARMUP):
                it.invoke()
            for _ in range(RUNS):
                t0 = time.perf_counter()
                it.invoke()
                t.append(time.perf_counter() - t0)
    out.write_text(json.dumps({"runtime": runtime, "rounds": rounds, "runs": RUNS,
                               "p50_ms": [round(float(np.median(t)) * 1e3, 3) for t in times]}))


def latency(models, d: Path, rounds: int) -> list[dict]:
    """Interleaved p50 of both routes' kept files (from --keep), in LiteRT 2.3.0 and 2.1.0."""
    rows = []
    for model in models:
        files = [d / f"{model}.{r}.tflite" for r in ROUTES]
        if not all(f.exists() for f in files):
            continue
        row = {"model": model, "latency": {}}
        for py, main_venv in ((LITERT_PY, False), (MAIN_PY, True)):
            rj = d / f"{model}.latency.json"
            run_child(["--worker", "latency", "--files", ",".join(map(str, files)), "--rounds", str(rounds),
                       "--out", str(rj)], py, d / f"{model}.latency.log", 900, main_venv)
            res = json.loads(rj.read_text())
            row["latency"][res["runtime"]] = dict(zip(ROUTES, res["p50_ms"], strict=True))
            rj.unlink()
        rows.append(row)
    return rows


# -- parent ----------------------------------------------------------------------------------------
def run_child(argv: list, python: Path, log: Path, timeout: float = TIMEOUT_S, main_venv: bool = True) -> dict:
    """Run this script as a niced child; returns wall seconds, peak RSS (MiB, from wait4) and the exit status."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    if main_venv:
        env["PYTHONPATH"] = str(ROOT)
    else:
        env.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(python), str(Path(__file__).resolve())] + argv, stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=str(ROOT), start_new_session=True, preexec_fn=lambda: os.nice(10))
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            timed_out = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "rc": proc.returncode, "timed_out": timed_out}


def inspect_ops(path: Path) -> dict:
    """Builtin ops of a .tflite (counts, max versions), the ones above the TFLite 2.16.1 table, subgraphs."""
    from vqexport.formats.tflite import flatbuffer as tr

    s, names, table = tr.schema(), tr.op_names(), tr.op_table()["max_version"]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        m = s.Model.GetRootAs(buf, 0)
        counts, top = Counter(), {}
        for gi in range(m.SubgraphsLength()):
            g = m.Subgraphs(gi)
            for oi in range(g.OperatorsLength()):
                oc = m.OperatorCodes(g.Operators(oi).OpcodeIndex())
                code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
                name = names.get(code, f"CODE_{code}")
                if name == "CUSTOM":
                    name = "CUSTOM:" + (oc.CustomCode() or b"").decode()
                counts[name] += 1
                top[name] = max(top.get(name, 0), oc.Version())
        subgraphs = m.SubgraphsLength()
        del m
    beyond = [f"{n} v{v} (2.16.1: {'none' if table.get(n) is None else 'v' + str(table[n])})"
              for n, v in sorted(top.items()) if table.get(n) is None or v > table[n]]
    return {"ops": dict(sorted(counts.items())), "op_versions": dict(sorted(top.items())), "beyond_2_16_1": beyond,
            "subgraphs": subgraphs}


def _check_onnx2tf_venv() -> None:
    probe = subprocess.run([str(MAIN_PY), "-c", "import onnx2tf"], capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(f"{MAIN_PY} has no onnx2tf: the onnx2tf route runs from commit 298d9d7's tree and venv "
                         "(see this tool's docstring)")


def python_for(route: str) -> Path:
    return MAIN_PY if route == "onnx2tf" else LITERT_PY


def measure(model: str, routes, d: Path, keep: bool) -> list[dict]:
    import numpy as np

    rows = []
    for route in routes:
        log = d / f"{model}.{route}.log"
        load = os.getloadavg()[0]  # the machine is shared: the 1-minute load when the conversion started
        child = run_child(["--worker", "convert", "--route", route, "--model", model, "--dir", str(d)],
                          python_for(route), log, main_venv=route == "onnx2tf")
        jf = d / f"{model}.{route}.json"
        row = json.loads(jf.read_text()) if jf.exists() else {"model": model, "route": route, "ok": False,
                                                                 "error": _log_error(log, child)}
        row.update(peak_rss_mib=child["peak_rss_mib"], child_wall_s=child["wall_s"], child_cpu_s=child["cpu_s"],
                   loadavg_1m=round(load, 1))
        path = d / f"{model}.{route}.tflite"
        if row.get("ok") and path.exists():
            row["bytes"] = path.stat().st_size
            row.update(inspect_ops(path))
            ref, inputs = d / f"{model}.{route}.ref.npy", d / f"{model}.inputs.npy"
            for tag, py, main_venv in (("own", python_for(route), route == "onnx2tf"),
                                       ("other", python_for(ROUTES[1 - ROUTES.index(route)]), route != "onnx2tf"),
                                       ("tf216", TF216_PY, False)):
                if not py.exists():
                    row[tag] = {"ok": False, "error": f"no interpreter at {py}"}
                    continue
                rj = d / f"{model}.{route}.{tag}.json"
                run_child(["--worker", "run", "--file", str(path), "--inputs", str(inputs), "--ref", str(ref),
                           "--out", str(rj)] + ([] if tag == "tf216" else ["--bench"]), py, log, 600, main_venv)
                row[tag] = json.loads(rj.read_text()) if rj.exists() else {"ok": False, "error": "the run crashed"}
            if not keep:
                path.unlink()
        rows.append(row)
    if len(rows) == 2 and all((d / f"{model}.{r}.ref.npy").exists() for r in ROUTES):
        a, b = (np.load(d / f"{model}.{r}.ref.npy") for r in ROUTES)
        rows[1]["torch_ref_max_diff_vs_main_venv"] = float(np.abs(a - b).max())
    return rows


def _log_error(log: Path, child: dict) -> str:
    if child["timed_out"]:
        return f"timed out after {TIMEOUT_S} s"
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    return f"child exited {child['rc']}: {lines[-1][:300] if lines else 'no output'}"


# -- issue 12 item 3: a weight computed inside the graph, through litert-torch ---------------------
PROBE_VARIANTS = ["linear_dense", "linear_gather_int64", "linear_gather_int32", "linear_gather_int8",
                  "linear_gather_uint8",
                  "linear_gather_packed4_bitwise", "linear_gather_packed4_arith", "conv_dense", "conv_gather_uint8",
                  "layout_probe", "layout_probe_transformer"]


def probe_module(name: str):
    """(module, input shape, stored bytes of the weight as the module holds it) for one probe variant."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    g = torch.Generator().manual_seed(0)
    k = 16

    class Computed(nn.Module):
        """weight = codebook[indices].reshape(shape), computed in forward (vqexport's once/every-run chains)."""

        def __init__(self, shape, index_dtype, packed=None, conv=False):
            super().__init__()
            n = int(torch.tensor(shape).prod())
            idx = torch.randint(0, k, (n,), generator=g)
            self.register_buffer("codebook", torch.randn(k, generator=g))
            if packed:
                idx = (idx[0::2] * 16 + idx[1::2]).to(torch.uint8)  # two 4-bit indices per byte
            self.register_buffer("indices", idx.to(index_dtype))
            self.bias = nn.Parameter(0.01 * torch.randn(shape[0], generator=g))
            self.shape, self.packed, self.conv = tuple(shape), packed, conv

        def forward(self, x):
            i = self.indices
            if self.packed == "bitwise":
                i = torch.stack([(i >> 4) & 15, i & 15], 1).reshape(-1)
            elif self.packed == "arith":
                i = i.to(torch.int32)
                i = torch.stack([torch.div(i, 16, rounding_mode="floor"), torch.remainder(i, 16)], 1).reshape(-1)
            w = torch.index_select(self.codebook, 0, i.to(torch.int32) if i.dtype != torch.int64 else i)
            w = w.reshape(self.shape)
            return F.conv2d(x, w, self.bias, padding=1) if self.conv else F.linear(x, w, self.bias)

    lin, conv = (512, 512), (64, 64, 3, 3)
    if name == "linear_dense":
        return nn.Linear(*lin).eval(), (1, lin[1]), 4 * lin[0] * lin[1]
    if name == "conv_dense":
        return nn.Conv2d(64, 64, 3, padding=1).eval(), (1, 64, 16, 16), 4 * 64 * 64 * 9
    if name == "layout_probe":  # where do a Linear's and a Conv's weights land, in which layout?
        net = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 6 * 6, 48)).eval()
        return net, (1, 8, 8, 8), 0
    if name == "layout_probe_transformer":  # attention's in_proj_weight goes through F.linear inside MHA
        return route_models().transformer_block(0), route_models().TRANSFORMER_SHAPE, 0
    dtype = {"int64": torch.int64, "int32": torch.int32, "int8": torch.int8}.get(name.split("_")[-1], torch.uint8)
    packed = {"linear_gather_packed4_bitwise": "bitwise", "linear_gather_packed4_arith": "arith"}.get(name)
    shape = conv if name.startswith("conv") else lin
    m = Computed(shape, dtype, packed, conv=name.startswith("conv")).eval()
    in_shape = (1, 64, 16, 16) if m.conv else (1, lin[1])
    return m, in_shape, m.indices.numel() * m.indices.element_size() + 4 * k


def worker_probe(d: Path) -> None:
    """Child in .venv-litert: convert every probe variant; writes <name>.litert-torch.{tflite,json,ref.npy}."""
    import traceback

    import numpy as np
    import torch

    for name in PROBE_VARIANTS:
        res = {"model": name, "route": "litert-torch"}
        m, shape, stored = probe_module(name)
        res["stored_bytes"] = stored
        x = np.random.default_rng(0).standard_normal((N_INPUTS,) + tuple(shape[1:])).astype(np.float32)
        with torch.no_grad():
            ref = np.concatenate([m(torch.from_numpy(xi[None])).numpy() for xi in x])
        np.save(d / f"{name}.inputs.npy", x)
        np.save(d / f"{name}.litert-torch.ref.npy", ref)
        if name.startswith("layout_probe"):
            np.save(d / f"{name}.weights.npy", {n: p.detach().numpy() for n, p in m.named_parameters()
                                                if p.ndim in (2, 4)}, allow_pickle=True)
        t0 = time.perf_counter()
        try:
            import litert_torch

            litert_torch.convert(m, (torch.from_numpy(x[0][None]),)).export(str(d / f"{name}.litert-torch.tflite"))
            res["ok"] = True
        except Exception as e:  # noqa: BLE001 - a variant the converter refuses is a result
            res["ok"] = False
            res["error"] = _first_line(e)
            traceback.print_exc()
        res["convert_s"] = round(time.perf_counter() - t0, 2)
        (d / f"{name}.litert-torch.json").write_text(json.dumps(res))


def layout_of_weights(path: Path, weights_npy: Path) -> dict:
    """Which buffer holds each weight whole, and in which layout (torch's, transposed, OHWI, ...)."""
    import numpy as np

    from vqexport.formats.tflite import flatbuffer as tr

    weights = np.load(weights_npy, allow_pickle=True).item()  # written by this tool's own child, not untrusted
    model = tr.read_model(path.read_bytes())
    by_size = {}
    for bi, b in enumerate(model.buffers):
        if b.data is not None and len(b.data):
            by_size.setdefault(len(b.data), []).append(bi)
    found = {}
    for name, w in weights.items():
        options = {"W": w, "WT": w.T} if w.ndim == 2 else {
            "OIHW": w, "OHWI": w.transpose(0, 2, 3, 1), "HWIO": w.transpose(2, 3, 1, 0),
            "IHWO": w.transpose(1, 2, 3, 0)}
        found[name] = {"layout": "not found whole in one buffer"}
        for bi in by_size.get(w.size * 4, []):
            got = np.frombuffer(np.asarray(model.buffers[bi].data, np.uint8).tobytes(), "<f4")
            hit = [lay for lay, arr in options.items()
                   if np.array_equal(got, np.ascontiguousarray(arr, np.float32).ravel())]
            if hit:
                users = sum(t.buffer == bi for g in model.subgraphs for t in g.tensors)
                found[name] = {"layout": hit[0], "buffer": bi, "tensors": users}
                break
    return found


def probe(d: Path, keep: bool) -> list[dict]:
    log = d / "probe.log"
    child = run_child(["--worker", "probe", "--dir", str(d)], LITERT_PY, log, main_venv=False)
    rows = []
    for name in PROBE_VARIANTS:
        jf = d / f"{name}.litert-torch.json"
        row = (json.loads(jf.read_text()) if jf.exists()
               else {"model": name, "ok": False, "error": _log_error(log, child)})
        path = d / f"{name}.litert-torch.tflite"
        if row.get("ok") and path.exists():
            row["bytes"] = path.stat().st_size
            row.update(inspect_ops(path))
            if name.startswith("layout_probe"):
                row["weights"] = layout_of_weights(path, d / f"{name}.weights.npy")
            for tag, py in (("own", LITERT_PY), ("tf216", TF216_PY)):
                rj = d / f"{name}.litert-torch.{tag}.json"
                run_child(["--worker", "run", "--file", str(path), "--inputs", str(d / f"{name}.inputs.npy"),
                           "--ref", str(d / f"{name}.litert-torch.ref.npy"), "--out", str(rj)], py, log, 300, False)
                row[tag] = json.loads(rj.read_text()) if rj.exists() else {"ok": False, "error": "the run crashed"}
            if not keep:
                path.unlink()
        rows.append(row)
    return rows


# -- table -------------------------------------------------------------------------------------------
def _p50(r: dict, tag: str) -> str:
    t = r.get(tag) or {}
    return f"{t['p50_ms']:.3g}" if t.get("ok") and "p50_ms" in t else ("fails" if t else "-")


def _tf216(r: dict) -> str:
    t = r.get("tf216") or {}
    if not t:
        return "-"
    return f"ok {t['rel_diff']:.0e}" if t.get("ok") else "**refuses**: " + t.get("error", "")[:80]


def _secs(r: dict) -> str:
    if "convert_s" not in r:
        return "-"
    return f"{r['convert_s']:.1f} ({r['convert_cpu_s']:.1f})" if "convert_cpu_s" in r else f"{r['convert_s']:.1f}"


def table(rows: list[dict]) -> str:
    out = ["| model | route | converts | convert s (CPU s) | peak RSS MiB | .tflite MB | rel diff | ops (kinds/total) "
           "| above 2.16.1 | p50 ms own | p50 ms other | TF 2.16.1 |", "|" + "---|" * 12]
    for r in rows:
        if not r.get("ok"):
            out.append(f"| {r['model']} | {r['route']} | **no**: {r.get('error', '')[:140]} | {_secs(r)} "
                       f"| {r.get('peak_rss_mib', 0):,.0f} | - | - | - | - | - | - | - |")
            continue
        own = r.get("own") or {}
        diff = f"{own['rel_diff']:.1e}" if own.get("ok") else "-"
        ops = r.get("ops", {})
        out.append(f"| {r['model']} | {r['route']} | yes | {_secs(r)} | {r['peak_rss_mib']:,.0f} "
                   f"| {r['bytes'] / 1e6:.1f} | {diff} | {len(ops)}/{sum(ops.values())} "
                   f"| {', '.join(r.get('beyond_2_16_1', [])) or 'none'} | {_p50(r, 'own')} | {_p50(r, 'other')} "
                   f"| {_tf216(r)} |")
    out.append("")
    for route in ROUTES:
        rs = [r for r in rows if r["route"] == route]
        if not rs:
            continue
        ok = [r for r in rs if r.get("ok")]
        ok_s, ok_cpu = sum(r["convert_s"] for r in ok), sum(r.get("convert_cpu_s", 0) for r in ok)
        all_s, all_cpu = sum(r.get("convert_s", 0) for r in rs), sum(r.get("convert_cpu_s", 0) for r in rs)
        peak = max(rs, key=lambda r: r["peak_rss_mib"])
        out.append(f"- **{route}**: {len(ok)}/{len(rs)} converted; conversion time {ok_s:.0f} s "
                   f"({ok_cpu:.0f} CPU s) for the converted ones, {all_s:.0f} s ({all_cpu:.0f} CPU s) "
                   f"all tried; peak RSS max {peak['peak_rss_mib']:,.0f} MiB ({peak['model']})")
    return "\n".join(out)


def op_table(rows: list[dict]) -> str:
    """Per route: every op kind the converted models use, with its max version and the 2.16.1 maximum."""
    import json as _json

    limit = _json.loads((ROOT / "vqexport" / "formats" / "tflite" / "op_versions.json").read_text())["max_version"]
    out = []
    for route in ROUTES:
        top = {}
        for r in rows:
            if r["route"] == route and r.get("ok"):
                for n, v in r.get("op_versions", {}).items():
                    top[n] = max(top.get(n, 0), v)
        items = [f"{n} v{v}" + ("" if limit.get(n) and v <= limit[n] else f" (**2.16.1: {limit.get(n, 'none')}**)")
                 for n, v in sorted(top.items())]
        out.append(f"- {route}: " + ", ".join(items))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="create .venv-litert and exit")
    p.add_argument("--python", default="python3", help="interpreter for --setup's venv (3.10-3.14)")
    p.add_argument("--models", default=",".join(MODELS), help="comma list (default: all, small first)")
    p.add_argument("--routes", default=",".join(ROUTES))
    p.add_argument("--probe", action="store_true", help="item 3: weights computed in the graph, through litert-torch")
    p.add_argument("--out", help="append the rows (JSON lines) to this file")
    p.add_argument("--dir", help="work folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the .tflite files in --dir")
    p.add_argument("--table", help="print the markdown table of a rows file and exit")
    p.add_argument("--latency", action="store_true",
                   help="time both routes' files of each model (kept in --dir by --keep) in turns, in both LiteRTs")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["convert", "run", "probe", "latency"], help=argparse.SUPPRESS)
    p.add_argument("--route", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    p.add_argument("--bench", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.setup:
        return setup(a.python)
    if a.worker == "convert":
        worker_convert(a.route, a.model, Path(a.dir))
        return 0
    if a.worker == "run":
        worker_run(Path(a.file), Path(a.inputs), Path(a.ref), a.bench, Path(a.out))
        return 0
    if a.worker == "probe":
        worker_probe(Path(a.dir))
        return 0
    if a.worker == "latency":
        worker_latency([Path(f) for f in a.files.split(",")], a.rounds, Path(a.out))
        return 0
    if a.table:
        rows = [json.loads(ln) for ln in Path(a.table).read_text().splitlines() if ln.strip()]
        route_rows = [r for r in rows if r.get("model") not in PROBE_VARIANTS]
        print(table(route_rows) + "\n\n" + op_table(route_rows))
        return 0
    models, routes = [m for m in a.models.split(",") if m], [r for r in a.routes.split(",") if r]
    bad = [m for m in models if m not in MODELS] + [r for r in routes if r not in ROUTES]
    if bad:
        p.error(f"unknown model or route {bad[0]}")
    if "litert-torch" in routes and not LITERT_PY.exists():
        p.error(f"{LITERT_PY} is missing: run tools/tflite_route.py --setup first")
    if "onnx2tf" in routes or a.latency:
        _check_onnx2tf_venv()
    with tempfile.TemporaryDirectory(prefix="vqexport-route-") as tmp:
        d = Path(a.dir or tmp)
        d.mkdir(parents=True, exist_ok=True)
        if a.latency:
            batches = [lambda: latency(models, d, a.rounds)]
        elif a.probe:
            batches = [lambda: probe(d, a.keep)]
        else:
            batches = [lambda m=m: measure(m, routes, d, a.keep) for m in models]
        for batch in batches:
            for row in batch():
                line = json.dumps(row)
                print(line, flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
