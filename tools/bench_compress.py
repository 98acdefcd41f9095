"""Scale benchmark: vqexport compress + .vqm writing on VGG16 and AlexNet, with anchors.

    .venv/bin/python tools/bench_compress.py --setup-anchors          # once: builds .venv-anchors
    .venv/bin/python tools/bench_compress.py --quick                  # AlexNet only
    .venv/bin/python tools/bench_compress.py                          # AlexNet, then VGG16
    .venv/bin/python tools/bench_compress.py --arch vgg16 --config kmeans-k16,pq-d4-k16 --anchors none
    .venv/bin/python tools/bench_compress.py --tiny --anchors sklearn-kmeans --json

Models are torchvision's with random weights (weights=None), their init seeded with --seed
inside torch.random.fork_rng. Each (model, config) runs in a fresh process that builds the
model, then times vqexport.compress() and CompressedModel.save() together; its peak RSS is
that process's ru_maxrss read right after save() (so it covers import, model and compression,
and nothing of the error check that follows). The error check reads the .vqm back and decodes
it block by block against the original weights, in float64.

Errors: "sum rel err" is the sum over the dense layers of ||W - W'||_F / ||W||_F; "global rel
err" is sqrt(sum ||W - W'||^2 / sum ||W||^2); MSE is sum ||W - W'||^2 over all dense weights.

Anchors run on --anchor-layers only (default: the 4096x4096 fc7 of each model, since sklearn's
KMeans on VGG16's 102.8 M-weight fc6 takes many minutes), each in its own process, with the
layer passed as an .npy: scikit-learn KMeans(n_init=1) and MiniBatchKMeans, faiss.Kmeans and
coremltools' PostTrainingPalettizer for scalar k-means, faiss' ProductQuantizer for pq. faiss and
coremltools run in .venv-anchors (--setup-anchors). Our figure on that layer is the quantizer's
fit alone, timed the same way. Every MSE, ours and theirs, is computed here from centroids and
labels in float64 (never from a library's own inertia, which may be float32-accumulated).

Targets: peak RSS <= 2x the model's float32 size; vgg16 kmeans k=16 <= 60 s; pq and rq <= 300 s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vqexport import write_vqm
from vqexport.methods.registry import decode

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_VENV = ROOT / ".venv-anchors"
ANCHOR_SCRIPT = ROOT / "tools" / "anchors" / "run_anchor.py"
ANCHOR_REQUIREMENTS = ROOT / "tools" / "anchors" / "requirements.txt"

# name -> (method, compress() parameters)
CONFIGS = {
    "kmeans-k16": ("kmeans", {"k": 16}),
    "kmeans-k256": ("kmeans", {"k": 256}),
    "pq-d4-k16": ("pq", {"k": 16, "d": 4}),
    "pq-d8-k256": ("pq", {"k": 256, "d": 8}),
    "rq-t2-k16": ("rq", {"stages": 2, "k": 16}),
    "binary": ("binary", {}),
}
ARCHS = ("alexnet", "vgg16")  # run in this order: the small one first
TINY = "tiny"
DEFAULT_ANCHOR_LAYERS = {"vgg16": "classifier.3.weight", "alexnet": "classifier.4.weight", TINY: "2.weight"}
# anchor name -> (the interpreter it runs in, the configs' methods it applies to)
ANCHORS = {
    "sklearn-kmeans": ("main", "kmeans"),
    "sklearn-minibatch": ("main", "kmeans"),
    "faiss-kmeans": ("anchors", "kmeans"),
    "coreml-palettizer": ("anchors", "kmeans"),
    "faiss-pq": ("anchors", "pq"),
}
ANCHOR_LIBRARY = {"sklearn-kmeans": "sklearn", "sklearn-minibatch": "sklearn", "faiss-kmeans": "faiss",
                  "coreml-palettizer": "coremltools", "faiss-pq": "faiss"}
RSS_TARGET = 2.0
TIME_TARGETS = {("vgg16", "kmeans-k16"): 60.0, "pq": 300.0, "rq": 300.0}


# --------------------------------------------------------------------------- the model

def build_model(arch: str, seed: int):
    """The model with seeded random weights; the global torch RNG is left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == TINY:
            # Every layer has > 256 rows (pq k=256 fits, not trivially) and columns divisible by 8.
            model = torch.nn.Sequential(torch.nn.Linear(64, 320), torch.nn.ReLU(), torch.nn.Linear(320, 320),
                                        torch.nn.ReLU(), torch.nn.Linear(320, 320))
        else:
            import torchvision

            model = getattr(torchvision.models, arch)(weights=None)
    return model.eval()


def _rss_now_kib() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss // 1024
    except ImportError:
        return 0


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# --------------------------------------------------------------------------- worker processes

def worker_info(spec: dict) -> dict:
    """Model facts, and the anchor layers written to .npy files."""
    import numpy as np

    import vqexport

    model = build_model(spec["arch"], spec["seed"])
    lm = vqexport.load_model(model)
    state = lm.state_dict()
    dense = lm.dense_layers()
    info = _model_info(state, dense)
    missing = [n for n in spec["anchor_layers"] if n not in dense]
    if missing and not spec.get("ignore_missing"):
        raise SystemExit(f"--anchor-layers {', '.join(missing)}: not a dense layer of {spec['arch']}; "
                         f"its dense layers are {', '.join(dense)}")
    files = {}
    for name in (n for n in spec["anchor_layers"] if n in dense):
        path = Path(spec["workdir"]) / f"{spec['arch']}-{name}.npy"
        np.save(path, state[name].detach().float().numpy())
        files[name] = str(path)
    return dict(info, anchor_files=files)


def _model_info(state, dense) -> dict:
    f32 = sum(int(v.numel()) for v in state.values() if v.is_floating_point()) * 4
    return {"float32_bytes": f32, "params": f32 // 4, "dense": {n: list(state[n].shape) for n in dense},
            "dense_weights": sum(int(state[n].numel()) for n in dense)}


def worker_run(spec: dict) -> dict:
    """One config on one model: time compress + save, then the error of what was written."""
    import warnings

    import numpy as np
    import torch  # noqa: F401  (imported before the first RSS reading, as compress() needs it)

    import vqexport

    if spec["arch"] != TINY:
        import torchvision  # noqa: F401
    import_rss = _rss_now_kib()
    method, params = CONFIGS[spec["config"]]
    model = build_model(spec["arch"], spec["seed"])
    lm = vqexport.load_model(model)
    base_peak, base_rss = _peak_kib(), _rss_now_kib()
    path = Path(spec["workdir"]) / f"{spec['arch']}-{spec['config']}.vqm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        cm = vqexport.compress(lm, method, seed=spec["seed"], **params)
        t1 = time.perf_counter()
        write_vqm(cm, path)
        t2 = time.perf_counter()
    peak = _peak_kib()
    state = lm.state_dict()
    model_info = _model_info(state, lm.dense_layers())
    layers_meta = cm.metadata["layers"]
    summary = cm.metadata.get("summary", {})
    del cm

    # The error, from the file as written: read back, decoded in row blocks, in float64.
    back = vqexport.read_vqm(path)
    layers = {}
    for name in layers_meta:
        w = state[name].detach().float().numpy()
        t = back[name]
        sse = ss = 0.0
        for rows in t.row_blocks():  # decode gives matrix rows [r, prod(shape[1:])]
            block = w[rows].reshape(-1, *t.matrix[1:]).astype(np.float64)
            sse += float(np.sum((block - decode(t, rows).astype(np.float64)) ** 2))
            ss += float(np.sum(block * block))
        layers[name] = {"shape": list(w.shape), "sse": sse, "sum_sq": ss, "rel_error": (sse / ss) ** 0.5 if ss else 0.0,
                        "rel_error_metadata": layers_meta[name]["rel_error"]}
    n = sum(int(np.prod(v["shape"])) for v in layers.values())
    sse = sum(v["sse"] for v in layers.values())
    ss = sum(v["sum_sq"] for v in layers.values())
    return {
        "arch": spec["arch"], "config": spec["config"], "method": method, "params": params,
        "compress_s": t1 - t0, "save_s": t2 - t1, "seconds": t2 - t0,
        "peak_rss_bytes": peak * 1024, "baseline_peak_rss_bytes": base_peak * 1024,
        "baseline_rss_bytes": base_rss * 1024,
        "import_rss_bytes": import_rss * 1024,
        "file_bytes": path.stat().st_size, "layer_compression": summary.get("layer_compression"),
        "layers": layers, "sum_rel_error": sum(v["rel_error"] for v in layers.values()),
        "global_rel_error": (sse / ss) ** 0.5 if ss else 0.0, "mse": sse / n if n else 0.0,
        "model": model_info,
        "skipped": sorted(str(w.message) for w in caught if "left uncompressed" in str(w.message)),
    }


# --------------------------------------------------------------------------- the parent

def run_child(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, int, float, str]:
    """Run cmd; return (exit code or None on timeout, its own peak RSS in bytes, seconds, log tail).

    The peak RSS comes from wait4() on that child alone, so every run has its own figure.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    start = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        rc = None
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - start > timeout:
                p.kill()
                _, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = rc if rc is not None else -9
    tail = log.read_text(errors="replace")[-2000:]
    return rc, usage.ru_maxrss * 1024, time.perf_counter() - start, tail


def run_worker(kind: str, spec: dict, timeout: float, workdir: Path) -> dict:
    out = workdir / f"{kind}-{spec.get('arch')}-{spec.get('config', 'info')}.json"
    spec = dict(spec, out=str(out))
    rc, child_peak, wall, tail = run_child([sys.executable, str(Path(__file__).resolve()), "--_worker", kind,
                                            json.dumps(spec)], timeout, out.with_suffix(".log"))
    if rc != 0:
        why = f"timed out after {timeout:.0f} s" if rc is None else f"exit code {rc}"
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        return {"error": f"{why}: {last}", "process_peak_rss_bytes": child_peak}
    res = json.loads(out.read_text())
    res["process_peak_rss_bytes"] = child_peak
    return res


def anchor_python(which: str) -> Path:
    return Path(sys.executable) if which == "main" else ANCHOR_VENV / "bin" / "python"


def probe_anchors(wanted: list[str]) -> dict[str, str | None]:
    """anchor -> None when it can run, else the one-line reason it cannot."""
    status, probes = {}, {}
    for name in wanted:
        which = ANCHORS[name][0]
        py = anchor_python(which)
        if which not in probes:
            if not py.exists():
                probes[which] = {"_missing": f"{py.relative_to(ROOT)} does not exist (run --setup-anchors)"}
            else:
                p = subprocess.run([str(py), str(ANCHOR_SCRIPT), "--method", "probe"], capture_output=True, text=True,
                                   timeout=300)
                try:
                    probes[which] = json.loads(p.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    probes[which] = {"_missing": f"probe failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}"}
        pr = probes[which]
        lib = ANCHOR_LIBRARY[name]
        if "_missing" in pr:
            status[name] = pr["_missing"]
        elif pr.get(lib) is None:
            status[name] = f"{lib} does not import in {py}: {pr.get(lib + '_error', '?')}"
        elif name == "coreml-palettizer" and pr.get("torch") is None:
            status[name] = f"torch does not import in {py}: {pr.get('torch_error', '?')}"
        else:
            status[name] = None
    versions = {k: v for pr in probes.values() for k, v in pr.items() if not k.startswith("_") and "error" not in k}
    return status, versions


def mse_from(w, centroids, labels, d: int | None) -> float:
    """Mean squared error of W against centroids[labels], in float64, block by block.

    Scalar (d None): centroids [k], labels [m*n] row-major. Product: centroids [s, k, d],
    labels [s, m], segment j = columns j*d .. j*d+d-1.
    """
    import numpy as np

    c = np.asarray(centroids, dtype=np.float64)
    labels = np.asarray(labels)
    total = 0.0
    if d is None:
        x = w.ravel()
        lab = labels.ravel()
        if lab.size != x.size:
            raise ValueError(f"{lab.size} labels for {x.size} weights")
        for a in range(0, x.size, 1 << 22):
            total += float(np.sum((x[a:a + (1 << 22)].astype(np.float64) - c[lab[a:a + (1 << 22)]]) ** 2))
        return total / x.size
    m, n = w.shape
    s = n // d
    if c.shape[0] != s or labels.shape != (s, m):
        raise ValueError(f"centroids {c.shape} / labels {labels.shape} do not fit {w.shape} with d={d}")
    step = max(1, (1 << 22) // (m * d))
    for a in range(0, s, step):
        b = min(s, a + step)
        seg = w[:, a * d:b * d].astype(np.float64).reshape(m, b - a, d).transpose(1, 0, 2)  # [s', m, d]
        rec = c[np.arange(a, b)[:, None], labels[a:b]]  # [s', m, d]
        total += float(np.sum((seg - rec) ** 2))
    return total / w.size


def run_anchor(name: str, layer_file: str, config: str, seed: int, timeout: float, workdir: Path) -> dict:
    import numpy as np

    method, params = CONFIGS[config]
    d = params.get("d") if method == "pq" else None
    which = "main" if name.startswith("vqexport") else ANCHORS[name][0]
    out = workdir / f"anchor-{Path(layer_file).stem}-{config}-{name}.npz"
    cmd = [str(anchor_python(which)), str(ANCHOR_SCRIPT), "--method", name, "--weights", layer_file,
           "--k", str(params["k"]), "--d", str(d or 1), "--seed", str(seed), "--out", str(out)]
    rc, peak, wall, tail = run_child(cmd, timeout, out.with_suffix(".log"))
    if rc != 0:
        if rc is None:
            return {"anchor": name, "error": f"timed out after {timeout:.0f} s", "timed_out": True, "seconds": timeout}
        return {"anchor": name, "error": f"exit code {rc}: {(tail.strip().splitlines() or ['?'])[-1]}"}
    z = np.load(out)
    w = np.load(layer_file)
    res = {"anchor": name, "seconds": float(z["seconds"]), "mse": mse_from(w, z["centroids"], z["labels"], d),
           "process_peak_rss_bytes": peak, "info": json.loads(str(z["info"]))}
    out.unlink()
    return res


def setup_anchors() -> int:
    """Create .venv-anchors and install the anchor libraries, pinned, from PyPI."""
    py = shutil.which("python3") or sys.executable
    if not (ANCHOR_VENV / "bin" / "python").exists():
        print(f"creating {ANCHOR_VENV} with {py}", flush=True)
        subprocess.run([py, "-m", "venv", str(ANCHOR_VENV)], check=True)
    pip = [str(ANCHOR_VENV / "bin" / "python"), "-m", "pip"]
    rc = subprocess.run(pip + ["install", "-r", str(ANCHOR_REQUIREMENTS)]).returncode
    if rc:
        print(f"pip failed (exit {rc}); the anchors that need it will say so and be skipped", file=sys.stderr)
    status, versions = probe_anchors(list(ANCHORS))
    for name, why in status.items():
        print(f"{name}: {'ok' if why is None else why}")
    print("versions:", json.dumps(versions))
    return rc


def _mib(b) -> str:
    return f"{b / 2**20:,.0f}" if b else "-"


def _fmt_s(s) -> str:
    return f"{s:,.1f}" if s >= 10 else f"{s:.2f}"


def time_target(arch: str, config: str) -> float | None:
    return TIME_TARGETS.get((arch, config)) or TIME_TARGETS.get(CONFIGS[config][0])


def render(report: dict) -> str:
    lines = []
    m = report["machine"]
    lines.append(f"Machine: {m['cpus']} CPU cores ({m['cpu']}), {m['mem_gib']:.0f} GiB RAM, {m['os']}; "
                 f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}. "
                 f"Load average (1 min) {m['load_start']:.2f} at start, {m['load_end']:.2f} at end"
                 + (" (other processes were using the CPU: timings are contended)." if m["contended"] else "."))
    lines.append("")
    for arch, info in report["models"].items():
        if "error" in info:
            lines.append(f"{arch}: could not build the model: {info['error']}")
            continue
        lines.append(f"{arch}: {info['params']:,} parameters, float32 size {_mib(info['float32_bytes'])} MiB; "
                     f"{len(info['dense'])} dense layers, {info['dense_weights']:,} weights.")
    lines.append("")
    lines.append("| model | config | time s (compress+save) | target s | peak RSS MiB | peak RSS / f32 (target <= 2) "
                 "| (peak - imports) / f32 | RSS after imports / before compress MiB | sum rel err | global rel err "
                 "| MSE | .vqm MiB | layer ratio |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['config']} | FAILED: {r['error']} | | | | | | | | | |")
            continue
        f32 = report["models"][r["arch"]]["float32_bytes"]
        tgt = time_target(r["arch"], r["config"])
        ratio = r["peak_rss_bytes"] / f32
        tgt_cell = "-" if tgt is None else f"{tgt:.0f}" + (" **missed**" if r["seconds"] > tgt else " ok")
        lines.append(f"| {r['arch']} | {r['config']} | {_fmt_s(r['seconds'])} | {tgt_cell} |")
        verdict = "" if r["arch"] not in ARCHS else " **missed**" if ratio > RSS_TARGET else " ok"
        net = (r["peak_rss_bytes"] - r["import_rss_bytes"]) / f32
        lines[-1] += (f" {_mib(r['peak_rss_bytes'])} | {ratio:.2f}{verdict} | {net:.2f} |"
                      f" {_mib(r['import_rss_bytes'])} / {_mib(r['baseline_rss_bytes'])} | {r['sum_rel_error']:.4f} |"
                      f" {r['global_rel_error']:.4f} |"
                      f" {r['mse']:.4e} | {r['file_bytes'] / 2**20:,.1f} | {r['layer_compression']:.1f}x |")
    if report["anchor_status"]:
        lines.append("")
        for name, why in report["anchor_status"].items():
            if why:
                lines.append(f"Anchor {name} not run: {why}")
    if report["anchors"]:
        lines.append("")
        lines.append("Anchors, on the named layers only (" + ", ".join(
            f"{a}: {', '.join(ls)}" for a, ls in report["anchor_layers"].items()) + "). "
            "Ours = vqexport's quantizer fit on that layer alone. Ratios: their time / ours, their MSE / ours "
            "(time ratio > 1: we are faster; MSE ratio > 1: we are more accurate).")
        lines.append("")
        lines.append("| model | layer | config | method | time s | MSE | time ratio | MSE ratio | note |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for a in report["anchors"]:
            ours = a["ours"]
            if "error" in ours:
                lines.append(f"| {a['arch']} | {a['layer']} | {a['config']} | vqexport "
                             f"| FAILED: {ours['error']} | | | | |")
                continue
            lines.append(f"| {a['arch']} | {a['layer']} | {a['config']} | **vqexport** | {_fmt_s(ours['seconds'])} | "
                         f"{ours['mse']:.4e} | 1 | 1 | |")
            for t in a["theirs"]:
                if t.get("timed_out"):
                    lines.append(f"| | | | {t['anchor']} | > {t['seconds']:.0f} | - "
                                 f"| > {t['seconds'] / ours['seconds']:.0f} | - | "
                                 f"stopped at the --anchor-timeout |")
                elif "error" in t:
                    lines.append(f"| | | | {t['anchor']} | - | - | - | - | failed: {t['error'][:160]} |")
                else:
                    note = t["info"].get("settings", "")
                    lines.append(f"| | | | {t['anchor']} | {_fmt_s(t['seconds'])} | {t['mse']:.4e} | "
                                 f"{t['seconds'] / ours['seconds']:.1f} | {t['mse'] / ours['mse']:.4f} | {note} |")
    misses = report["missed"]
    lines.append("")
    lines.append("Targets: " + ("all met." if not misses else ""))
    for miss in misses:
        lines.append(f"- {miss}")
    return "\n".join(lines)


def find_misses(report: dict) -> list[str]:
    out = []
    for r in report["runs"]:
        if "error" in r:
            out.append(f"{r['arch']} {r['config']}: did not finish ({r['error']})")
            continue
        tgt = time_target(r["arch"], r["config"])
        if tgt and r["seconds"] > tgt:
            out.append(f"{r['arch']} {r['config']}: {r['seconds']:.1f} s against {tgt:.0f} s "
                       f"({r['seconds'] / tgt:.2f}x the target, {r['seconds'] - tgt:.1f} s over)")
        f32 = report["models"][r["arch"]]["float32_bytes"]
        ratio = r["peak_rss_bytes"] / f32
        if ratio > RSS_TARGET and r["arch"] in ARCHS:
            over = r["peak_rss_bytes"] - RSS_TARGET * f32
            out.append(f"{r['arch']} {r['config']}: peak RSS {_mib(r['peak_rss_bytes'])} MiB = {ratio:.2f}x float32 "
                       f"against {RSS_TARGET:.0f}x ({_mib(over)} MiB over); "
                       f"{_mib(r['import_rss_bytes'])} MiB was resident "
                       f"after importing torch/torchvision/vqexport and {_mib(r['baseline_rss_bytes'])} MiB with "
                       f"the model built, so compress()+save() itself added "
                       f"{_mib(r['peak_rss_bytes'] - r['baseline_rss_bytes'])} MiB "
                       f"({(r['peak_rss_bytes'] - r['baseline_rss_bytes']) / f32:.2f}x float32)")
    return out


def machine_info() -> dict:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**30
    except ImportError:
        mem = 0.0
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": mem, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "load_start": os.getloadavg()[0]}


def split(value: str | None, allowed, what: str) -> list[str]:
    if value is None:
        return list(allowed)
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="alexnet only")
    ap.add_argument("--tiny", action="store_true", help="a 3-layer MLP instead of the torchvision models (for tests)")
    ap.add_argument("--arch", help=f"comma list of {', '.join(ARCHS)} (default: both)")
    ap.add_argument("--config", help=f"comma list of {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--anchors", default="all",
                    help=f"comma list of {', '.join(ANCHORS)}, or 'all' or 'none' (default all)")
    ap.add_argument("--anchor-layers",
                    help="comma list of dense layer names to run the anchors on (default: vgg16 "
                         "classifier.3.weight, alexnet classifier.4.weight, i.e. fc7 4096x4096; tiny 2.weight); "
                         "names absent from a model are ignored for it")
    ap.add_argument("--anchor-timeout", type=float, default=600, help="seconds one anchor may take (default 600)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one config may take (default 1800)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="where .vqm, .npy and logs go (default: a temporary folder, removed after)")
    ap.add_argument("--json", action="store_true", help="print the full results as JSON instead of the tables")
    ap.add_argument("--report", help="also write the tables (markdown) to this file")
    ap.add_argument("--setup-anchors", action="store_true",
                    help=f"create {ANCHOR_VENV.name} and pip install {ANCHOR_REQUIREMENTS.relative_to(ROOT)}, "
                         "then exit")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        kind, spec = args._worker[0], json.loads(args._worker[1])
        res = {"info": worker_info, "run": worker_run}[kind](spec)
        Path(spec["out"]).write_text(json.dumps(res))
        return 0
    if args.setup_anchors:
        return setup_anchors()

    archs = [TINY] if args.tiny else ["alexnet"] if args.quick else split(args.arch, ARCHS, "arch")
    configs = split(args.config, CONFIGS, "config")
    chosen = None if args.anchors == "all" else args.anchors
    anchors = [] if args.anchors == "none" else split(chosen, ANCHORS, "anchor")
    # Only anchors that apply to a chosen config.
    methods = {CONFIGS[c][0] for c in configs}
    anchors = [a for a in anchors if ANCHORS[a][1] in methods]

    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_compress-")
        workdir = Path(tmp.name)
    try:
        report = bench(archs, configs, anchors, args, workdir)
    finally:
        if tmp is not None:
            tmp.cleanup()
    text = render(report)
    if args.report:
        Path(args.report).write_text(text + "\n")
    print(json.dumps(report, indent=1) if args.json else text)
    return 1 if any("error" in r for r in report["runs"]) else 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench(archs, configs, anchors, args, workdir: Path) -> dict:
    machine = machine_info()
    status, versions = probe_anchors(anchors) if anchors else ({}, {})
    for name, why in status.items():
        if why:
            log(f"anchor {name} not run: {why}")
    runnable = [a for a in anchors if status.get(a) is None]
    report = {"machine": machine, "anchor_versions": versions, "anchor_status": status, "models": {}, "runs": [],
              "anchors": [], "anchor_layers": {}, "command": " ".join([Path(sys.executable).name] + sys.argv)}
    loads = [machine["load_start"]]
    for arch in archs:
        wanted = args.anchor_layers.split(",") if args.anchor_layers else [DEFAULT_ANCHOR_LAYERS[arch]]
        info, layers = None, []
        if runnable:
            log(f"[{arch}] building the model, writing the anchor layers")
            info = run_worker("info", {"arch": arch, "seed": args.seed, "workdir": str(workdir),
                                       "anchor_layers": wanted, "ignore_missing": bool(args.anchor_layers)},
                              args.timeout, workdir)
            if "error" in info:
                report["models"][arch] = info
                continue
            layers = list(info["anchor_files"])
            report["models"][arch] = info
        report["anchor_layers"][arch] = layers
        for config in configs:
            log(f"[{arch} {config}] compress + save")
            res = run_worker("run", {"arch": arch, "config": config, "seed": args.seed, "workdir": str(workdir)},
                             args.timeout, workdir)
            res.update(arch=arch, config=config, load_before=loads[-1])
            loads.append(os.getloadavg()[0])
            report["runs"].append(res)
            if "model" in res:
                report["models"].setdefault(arch, res.pop("model"))
            if "error" in res:
                log(f"[{arch} {config}] FAILED: {res['error']}")
            else:
                log(f"[{arch} {config}] {res['seconds']:.1f} s, peak RSS {_mib(res['peak_rss_bytes'])} MiB, "
                    f"MSE {res['mse']:.4e}")
            for f in workdir.glob(f"{arch}-{config}.vqm"):
                f.unlink()
        for layer in layers:
            for config in configs:
                method = CONFIGS[config][0]
                theirs = [a for a in runnable if ANCHORS[a][1] == method]
                if not theirs:
                    continue
                log(f"[{arch} {layer} {config}] vqexport alone on the layer")
                ours = run_anchor(f"vqexport-{method}", info["anchor_files"][layer], config, args.seed, args.timeout,
                                  workdir)
                entry = {"arch": arch, "layer": layer, "config": config, "ours": ours, "theirs": []}
                for a in theirs:
                    log(f"[{arch} {layer} {config}] anchor {a}")
                    t = run_anchor(a, info["anchor_files"][layer], config, args.seed, args.anchor_timeout, workdir)
                    entry["theirs"].append(t)
                    log(f"    {t.get('seconds', 0):.1f} s" + (f", MSE {t['mse']:.4e}" if "mse" in t else
                                                             f" ({t.get('error')})"))
                report["anchors"].append(entry)
                loads.append(os.getloadavg()[0])
    machine["load_end"] = os.getloadavg()[0]
    machine["load_samples"] = loads
    # Our own run keeps about one core busy; more than the cores on average means others were running too.
    machine["contended"] = max(loads + [machine["load_end"]]) > (machine["cpus"] or 1)
    report["missed"] = find_misses(report)
    return report


if __name__ == "__main__":
    sys.exit(main())
