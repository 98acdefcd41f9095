"""Fit one quantizer on one layer and save its centroids and labels; run by tools/bench_compress.py.

    python tools/anchors/run_anchor.py --method faiss-kmeans --weights fc7.npy --k 16 --out fc7.npz

It runs in whichever interpreter has the method's library: the project venv for vqexport and
scikit-learn, .venv-anchors for faiss and coremltools. It only fits and saves; the caller
computes every error itself, the same way for all methods, from the saved centroids and labels.

Output (.npz): centroids, labels, seconds (the fit and the assignment of every weight, nothing
else), and a JSON string `info` (library version, settings). Scalar methods: centroids [k],
labels [m*n] (row-major). Product quantization: centroids [s, k, d], labels [s, m], segment j
being columns j*d .. j*d+d-1 (the layout of vqexport's pq and of faiss' ProductQuantizer).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PREIMPORT = {"vqexport": ("vqexport.methods.registry", "vqexport.config"), "sklearn": ("sklearn.cluster",),
             "faiss": ("faiss",),
             "coreml": ("torch", "coremltools.optimize.torch.palettization")}
SCALAR = ("vqexport-kmeans", "sklearn-kmeans", "sklearn-minibatch", "faiss-kmeans", "coreml-palettizer")
PRODUCT = ("vqexport-pq", "faiss-pq")


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # vqexport, from this checkout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=SCALAR + PRODUCT + ("probe",))
    ap.add_argument("--weights", help=".npy of a 2-D float32 weight (m outputs x n inputs)")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--d", type=int, default=1, help="sub-vector length (product methods)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help=".npz to write")
    args = ap.parse_args()
    if args.method == "probe":  # which anchor libraries import here, as JSON
        print(json.dumps(probe()))
        return
    w = np.ascontiguousarray(np.load(args.weights), dtype=np.float32)
    fit = globals()["fit_" + args.method.replace("-", "_")]
    # Every library is imported before the clock starts: the time is the clustering alone.
    for mod in PREIMPORT[args.method.split("-")[0]]:
        importlib.import_module(mod)
    t0 = time.perf_counter()
    centroids, labels, info = fit(w, args.k, args.d, args.seed)
    seconds = time.perf_counter() - t0
    np.savez(args.out, centroids=np.asarray(centroids), labels=np.asarray(labels), seconds=seconds,
             info=json.dumps(info))


def probe() -> dict:
    out = {}
    for mod in ("sklearn", "faiss", "coremltools", "torch"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - an anchor library that does not import is reported, not fatal
            out[mod] = None
            out[mod + "_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


# --- ours -------------------------------------------------------------------------------------

def _vqexport(method, w, k, d, seed):
    import vqexport
    from vqexport.config import QuantConfig
    from vqexport.methods import registry

    # The per-layer step of compress(): fit() alone, without the error check compress adds.
    settings = {"k": k, **({"d": d} if "d" in registry.get(method).Config.settings() else {})}
    t = registry.get(method).fit(w, QuantConfig(method=method, **settings), seed)
    return t.codebook(), t.indices(), {"library": "vqexport", "version": vqexport.__version__}


def fit_vqexport_kmeans(w, k, d, seed):
    cent, idx, info = _vqexport("kmeans", w, k, d, seed)
    return cent, idx.ravel(), info


def fit_vqexport_pq(w, k, d, seed):
    return _vqexport("pq", w, k, d, seed)


# --- scikit-learn -----------------------------------------------------------------------------

def fit_sklearn_kmeans(w, k, d, seed):
    import sklearn
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=1, random_state=seed).fit(w.reshape(-1, 1))
    return km.cluster_centers_[:, 0], km.labels_, {"library": "scikit-learn", "version": sklearn.__version__,
                                                   "settings": "KMeans(n_init=1), defaults otherwise",
                                                   "iterations": int(km.n_iter_)}


def fit_sklearn_minibatch(w, k, d, seed):
    import sklearn
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(k, n_init=1, random_state=seed).fit(w.reshape(-1, 1))
    return km.cluster_centers_[:, 0], km.labels_, {"library": "scikit-learn", "version": sklearn.__version__,
                                                   "settings": "MiniBatchKMeans(n_init=1), defaults otherwise",
                                                   "steps": int(km.n_steps_)}


# --- faiss ------------------------------------------------------------------------------------

def fit_faiss_kmeans(w, k, d, seed):
    import faiss

    x = w.reshape(-1, 1)
    km = faiss.Kmeans(1, k, seed=seed)  # defaults: 25 iterations, at most 256 training points a centroid
    km.train(x)
    _, idx = km.index.search(x, 1)
    return km.centroids[:, 0], idx[:, 0], {"library": "faiss-cpu", "version": faiss.__version__,
                                           "settings": "faiss.Kmeans(d=1, k, seed) defaults "
                                                       "(niter=25, max_points_per_centroid=256)"}


def fit_faiss_pq(w, k, d, seed):
    import faiss

    m, n = w.shape
    nbits = int(k).bit_length() - 1
    if 1 << nbits != k:
        raise ValueError(f"faiss' ProductQuantizer needs k a power of two, got {k}")
    pq = faiss.ProductQuantizer(n, n // d, nbits)
    pq.cp.seed = seed
    pq.train(w)
    codes = pq.compute_codes(w)  # [m, code_size] bytes, each vector's codes packed LSB first
    cent = faiss.vector_to_array(pq.centroids).reshape(n // d, k, d)
    labels = _unpack_codes(codes, n // d, nbits).T  # [s, m]
    # The unpacking must agree with faiss' own decode.
    probe = slice(0, min(m, 64))
    mine = cent[np.arange(n // d)[:, None], labels[:, probe]].transpose(1, 0, 2).reshape(-1, n)
    if not np.allclose(mine, pq.decode(codes[probe]), atol=1e-6):
        raise AssertionError("faiss code unpacking disagrees with ProductQuantizer.decode")
    return cent, labels, {"library": "faiss-cpu", "version": faiss.__version__,
                          "settings": f"ProductQuantizer(n, M={n // d}, nbits={nbits}), default training (niter=25)"}


def _unpack_codes(codes: np.ndarray, M: int, nbits: int) -> np.ndarray:
    if nbits == 8:
        return codes[:, :M].astype(np.int64)
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :M * nbits].reshape(codes.shape[0], M, nbits)
    return (bits.astype(np.int64) << np.arange(nbits)).sum(axis=2)


# --- coremltools ------------------------------------------------------------------------------

def fit_coreml_palettizer(w, k, d, seed):
    import coremltools
    import torch
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer, PostTrainingPalettizerConfig

    torch.manual_seed(seed)  # this process does nothing else
    torch.set_num_threads(os.cpu_count() or 1)
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    model = torch.nn.Sequential(layer)
    nbits = int(k).bit_length() - 1
    if 1 << nbits != k:
        raise ValueError(f"coremltools palettization needs k a power of two, got {k}")
    config = PostTrainingPalettizerConfig.from_dict(
        {"global_config": {"n_bits": nbits, "granularity": "per_tensor"}})
    out = PostTrainingPalettizer(model, config).compress()
    new = out[0].weight.detach().cpu().numpy().astype(np.float32).ravel()
    # The palettized weight holds at most k distinct values: those are the centroids, and each
    # weight's label is the index of its value.
    cent, labels = np.unique(new, return_inverse=True)
    return cent, labels, {"library": "coremltools", "version": coremltools.__version__, "torch": torch.__version__,
                          "settings": f"PostTrainingPalettizer(n_bits={nbits}, granularity=per_tensor)",
                          "distinct_values": int(cent.size)}


if __name__ == "__main__":
    main()
