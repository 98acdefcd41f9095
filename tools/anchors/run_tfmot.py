"""tfmot's cluster_weights on the ported model; run in .venv-tfmot by tools/anchors_testbed.py.

    .venv-tfmot/bin/python tools/anchors/run_tfmot.py --workdir W --k 16 --epochs 1 --seed 0 --out r.json
    .venv-tfmot/bin/python tools/anchors/run_tfmot.py --workdir W --k 0 --out r.json   # unclustered baseline

The work folder (written by the project's venv) holds model.json (the layers, from
keras_port.describe_torch), weights.npz, x_test.npy / y_test.npy (normalised NCHW, the same
10,000 images every method sees), x_train.npy / y_train.npy, and torch_logits.npy. Before
clustering, the Keras model's logits must match torch's within --port-tolerance.

Clustering: cluster_weights(model, number_of_clusters=k) with tfmot's default centroid
initialisation (k-means++), applied to the whole model (every Conv2D, DepthwiseConv2D and Dense
kernel; biases and BatchNorm stay float, as tfmot does). --epochs 0 strips the clustering at once
(post-training); --epochs N fine-tunes first, as in tfmot's clustering example (Adam, lr 1e-5,
batch 500), on the whole training split with a seeded shuffle. The stripped model is converted to
a float32 .tflite with TensorFlow's converter, no other optimisation; its top-1 is measured by the
TFLite interpreter on the test images. Writes the result JSON and correct-<tag>.npy (per image).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is tf_keras: the Keras 2 tfmot needs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keras_port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--k", type=int, required=True, help="clusters per kernel; 0: no clustering (the baseline)")
    ap.add_argument("--epochs", type=int, default=0, help="fine-tuning epochs after clustering (0: post-training)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--port-tolerance", type=float, default=1e-4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)  # Python, numpy and TensorFlow's global seeds
    tf.config.experimental.enable_op_determinism()

    work = Path(args.workdir)
    spec = json.loads((work / "model.json").read_text())
    chw = tuple(spec["chw"])
    with np.load(work / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    x_test = np.load(work / "x_test.npy").transpose(0, 2, 3, 1).copy()
    y_test = np.load(work / "y_test.npy")
    model = keras_port.build_keras(spec["layers"], weights, chw)

    logits = model.predict(x_test, batch_size=1000, verbose=0)
    port_diff = float(np.abs(logits - np.load(work / "torch_logits.npy")).max())
    if not port_diff < args.port_tolerance:
        raise SystemExit(f"the Keras port differs from torch by {port_diff:.3g} in the logits "
                         f"(tolerance {args.port_tolerance}); not clustering a different model")
    res = {"k": args.k, "epochs": args.epochs, "seed": args.seed, "port_max_abs_diff": port_diff,
           "keras_top1_before": float(np.mean(logits.argmax(1) == y_test)), "versions": _versions()}

    cluster_s = fine_tune_s = 0.0
    if args.k:
        import tensorflow_model_optimization as tfmot

        cl = tfmot.clustering.keras
        t0 = time.perf_counter()
        clustered = cl.cluster_weights(model, number_of_clusters=args.k,
                                       cluster_centroids_init=cl.CentroidInitialization.KMEANS_PLUS_PLUS)
        if args.epochs:
            x_train = np.load(work / "x_train.npy").transpose(0, 2, 3, 1).copy()
            y_train = np.load(work / "y_train.npy")
            clustered.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              metrics=["accuracy"])
            t1 = time.perf_counter()
            clustered.fit(x_train, y_train, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0)
            fine_tune_s = time.perf_counter() - t1
            del x_train
        model = cl.strip_clustering(clustered)
        cluster_s = time.perf_counter() - t0 - fine_tune_s
        res["settings"] = (f"cluster_weights(number_of_clusters={args.k}, KMEANS_PLUS_PLUS)"
                           + (f", fine-tuned {args.epochs} epoch(s): Adam lr={args.lr}, batch {args.batch}"
                              if args.epochs else ", stripped at once (post-training)"))
    else:
        res["settings"] = "not clustered (float32 baseline)"
    res["distinct_values"] = {f"{layer.name}/{w.name.split('/')[-1]}": int(np.unique(w.numpy()).size)
                              for layer in model.layers for w in layer.weights if "kernel" in w.name}
    res["keras_top1"] = float(np.mean(model.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test))

    t0 = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = converter.convert()
    convert_s = time.perf_counter() - t0
    tag = f"tfmot-k{args.k}-e{args.epochs}"
    path = work / f"{tag}.tflite"
    path.write_bytes(data)
    correct = _tflite_correct(tf, data, x_test, y_test, args.threads)
    np.save(work / f"correct-{tag}.npy", correct)
    res.update(tag=tag, tflite=str(path), tflite_bytes=len(data), gzip_bytes=len(gzip.compress(data, 9, mtime=0)),
               top1=float(correct.mean()), cluster_s=cluster_s, fine_tune_s=fine_tune_s, convert_s=convert_s,
               correct=str(work / f"correct-{tag}.npy"))
    Path(args.out).write_text(json.dumps(res, indent=1))


def _tflite_correct(tf, data: bytes, x: np.ndarray, y: np.ndarray, threads: int, batch: int = 500) -> np.ndarray:
    interp = tf.lite.Interpreter(model_content=data, num_threads=threads)
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, [batch, *x.shape[1:]])
    interp.allocate_tensors()
    out = interp.get_output_details()[0]["index"]
    pred = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        if len(xb) < batch:
            xb = np.concatenate([xb, np.zeros((batch - len(xb), *x.shape[1:]), np.float32)])
        interp.set_tensor(inp, xb)
        interp.invoke()
        pred.append(interp.get_tensor(out).argmax(1)[:min(batch, len(x) - i)])
    return np.concatenate(pred) == y


def _versions() -> dict:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
            "tensorflow_model_optimization": tfmot.__version__}


if __name__ == "__main__":
    main()
