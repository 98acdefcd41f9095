"""The per-layer loop: pick the weights (types, size, globs), check every setting first, then quantize."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .calibrate import Calibration
from .config import CompressConfig
from .errors import ConfigError
from .ir import CompressedModel, CompressedTensor, dense_section
from .load import LoadedModel
from .methods import registry
from .util.progress import layer_bar
from .version import __version__


def compress_model(model: LoadedModel, config: CompressConfig, quiet: bool = True,
                   calib: Calibration | None = None) -> CompressedModel:
    """calib: calibration images, for data-aware fitting of the layers it applies to (vqexport.calibrate)."""
    source = model
    model, folded = fold_for_export(model) if config.fold_batchnorm else (model, [])
    state = model.state_dict()
    tied = tied_names(state)
    weights = model.weights()
    chosen, skipped = config.select(weights, {n: int(state[n].numel()) for n in weights})
    # Every setting is checked against every layer before any work, so nothing half-runs.
    # With the default glob a layer that cannot take the setting (a 10-row classifier and
    # k=16 PQ) stays raw, with a warning and a record in the metadata; a layer the user
    # named, or a setting that fits no layer at all, is an error.
    plans, misfits = {}, {}
    for name, kind in chosen.items():
        q = config.for_layer(name, kind)
        try:
            registry.get(q.method).check(tuple(state[name].shape), q)
        except ConfigError as e:
            reason = f"layer {name} {tuple(state[name].shape)}: {e}"
            if config.layers != ("*",) or len(chosen) == 1:
                raise ConfigError(reason) from None
            misfits[name] = str(e)
            continue
        plans[name] = q
    _fold_tied(tied, {n: config.for_layer(n, k) for n, k in chosen.items()}, plans, misfits)
    if chosen and not plans:
        raise ConfigError("the setting fits no layer: " + "; ".join(f"{n}: {r}" for n, r in misfits.items()))
    for name, reason in misfits.items():
        warnings.warn(f"layer {name} {tuple(state[name].shape)} left uncompressed: {reason}", SkippedLayerWarning,
                      stacklevel=3)
    skipped = {n: r for n, r in {**skipped, **misfits}.items() if n not in tied}
    stats, plain = _input_stats(source, plans, calib, quiet) if calib is not None else ({}, {})

    import torch

    tensors, layers, widened, deltas = [], {}, [], {}
    bar = layer_bar([(n, int(state[n].numel())) for n in plans], quiet, "compress")
    prefit = _fit_many(state, plans, config.seed, bar.done)
    fitted_first = set(prefit)
    for name, value in state.items():
        if name in tied:  # stored once, under the first name (see tied_names)
            continue
        if name not in plans:
            half = config.raw_dtype == "float16" and value.dtype == torch.float32 and not _in_folded(name, folded)
            tensors.append(_raw(name, value.to(torch.float16) if half else value))
            if half:
                widened.append(name)
            continue
        q = plans[name]
        w = value.detach().to("cpu").float().numpy()
        t = prefit.pop(name) if name in prefit else registry.get(q.method).fit(w, q, config.seed)
        t.name = name
        extra = {}
        if name in stats:
            t, extra = _calibrated(w, t, stats[name], calib, state, deltas)
        err = _rel_error(w, t)
        layers[name] = {"method": q.method, "type": weights[name], "shape": list(t.shape),
                        "bits_per_weight": round(t.bits_per_weight, 6),
                        "compression": round(t.compression, 4), "rel_error": round(err, 6), **_params(q), **extra}
        tensors.append(t)
        if name not in fitted_first:
            bar.done(name)
    bar.close()
    _correct_biases(tensors, deltas)
    metadata = {
        "format": "vqm",
        "producer": f"vqexport {__version__}",
        "source": model.source_metadata(),
        "config": config.to_dict(),
        "layers": layers,
    }
    if skipped:
        metadata["skipped"] = skipped
    if calib is not None:
        metadata["calibration"] = {**calib.record(), **({"plain": plain} if plain else {})}
    if folded:
        metadata["folded"] = [list(pair) for pair in folded]
    if widened:
        metadata["widened"] = widened
    if tied:
        metadata["tied"] = dict(tied)
    if model.labels:
        metadata["labels"] = list(model.labels)
    if model.input:
        metadata["input"] = dict(model.input)
    cm = CompressedModel(tensors=tensors, metadata=metadata)
    # Carried by every writer, so an .onnx or .tflite can report its own compression rates.
    metadata["summary"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in cm.summary().items()}
    return cm


PREFIT_ELEMENTS = 1 << 22  # layers up to this size are fitted together, where their method can (fit_many)
PREFIT_CHUNK = 1 << 24  # weights per fit_many call: the bar moves between calls (resnet50: ~5 % slower than one)


def _fit_many(state: dict, plans: dict, seed: int, done) -> dict:
    """{name: tensor} of the small layers whose method fits many at once (methods' fit_many): a
    mobile network's dozens of small convs then pay the fit's fixed costs once. Big layers are fitted
    one at a time in the loop, so that no more than one is held decoded at a time. done(name) is
    called for each layer fitted here."""
    out = {}
    for method in sorted({q.method for q in plans.values()}):
        many = getattr(registry.get(method), "fit_many", None)
        names = [n for n, q in plans.items() if q.method == method and state[n].numel() <= PREFIT_ELEMENTS]
        if many is None or len(names) < 2:
            continue
        chunks, size = [[]], 0
        for n in names:
            if size >= PREFIT_CHUNK:
                chunks, size = [*chunks, []], 0
            chunks[-1].append(n)
            size += state[n].numel()
        for chunk in chunks:
            weights = [state[n].detach().to("cpu").float().numpy() for n in chunk]
            out.update(zip(chunk, many(list(zip(weights, [plans[n] for n in chunk], strict=True)), seed), strict=True))
            for n in chunk:
                done(n)
    return out


def _input_stats(model: LoadedModel, plans: dict, calib: Calibration, quiet: bool):
    """({name: InputStats} of the planned layers calibration applies to, {name: why not} of the
    others, which are fitted plainly, with a warning). A layer is refitted when its method allows
    (refit.METHODS) and calib.refit is on; with bias correction, every layer gets statistics.
    None applying at all is an error."""
    from .calibrate import refit
    from .calibrate.stats import collect
    from .util.progress import step_bar

    plain = {n: f"--calib does not refit method {q.method}" + (" by rows" if q.method == "pq" else "")
             for n, q in plans.items() if not refit.applies(q)}
    wanted = [n for n in plans if calib.bias_correction or (calib.refit and n not in plain)]
    if not wanted:
        raise ConfigError("--calib applies to binary, kmeans, pq (by columns) and vq layers, or to any layer with "
                          "--bias-correction; " + "; ".join(f"{n}: {r}" for n, r in plain.items()))
    key = tuple(wanted)
    if calib.cache.get(key, (None,))[0] is not model.module:  # the module itself, not its id: ids are reused
        fit, check = calib.split()
        bar = step_bar(len(calib.images), "calibrate", quiet, every=10)
        try:
            stats, missed = collect(model.module, fit, wanted, progress=lambda done: bar.update(done - bar.n))
            held, _ = collect(model.module, check, list(stats),
                              progress=lambda done: bar.update(len(fit) + done - bar.n))
        finally:
            bar.close()
        calib.cache[key] = (model.module, {n: (stats[n], held.get(n, stats[n])) for n in stats}, missed)
    _, stats, missed = calib.cache[key]
    for name, reason in missed.items():
        warnings.warn(f"layer {name} fitted without calibration: {reason}", SkippedLayerWarning, stacklevel=3)
    why = {**(plain if calib.refit else {}), **missed}
    return {n: s for n, s in stats.items() if n in plans}, why


def _calibrated(w, t, stats, calib: Calibration, state: dict, deltas: dict):
    """The layer refitted to its inputs where its method allows, and its bias correction recorded in
    deltas. stats: (InputStats of the fitting images, of the held-out ones). Of the plain fit, the
    H-weighted codebook, and that with error feedback, the one with the lowest output error on the
    held-out images is kept: the feedback can fit the fitting images' noise (a dense layer wider
    than the images are many)."""
    from .calibrate import bias_delta, output_error
    from .calibrate import refit as refitting

    fit, held = stats
    decoded = registry.decode(t)
    best = (output_error(w, decoded, held.second), "plain", t, decoded)
    extra = {"rel_output_error_plain": round(best[0], 6)}
    if calib.refit and refitting.applies_to(t):
        for feedback in (False, True) if calib.feedback else (False,):
            cand = refitting.refit(w, t, fit, feedback)
            dec = registry.decode(cand)
            err = output_error(w, dec, held.second)
            if err < best[0]:
                best = (err, "feedback" if feedback else "weighted", cand, dec)
        extra.update(rel_output_error=round(best[0], 6), calibration=best[1])
    _, _, t, decoded = best
    if calib.bias_correction:
        bias = t.name[: -len("weight")] + "bias" if t.name.endswith("weight") else None
        if bias in state:
            mean = (fit.total + held.total) / max(1, fit.count + held.count)  # every calibration image
            deltas[bias] = bias_delta(w, decoded, mean)
        else:
            extra["bias_correction"] = "the layer has no bias"
    return t, extra


def _correct_biases(tensors: list, deltas: dict) -> None:
    """Add each layer's (W - W') E[x] to its raw bias, at the bias's own stored dtype."""
    for i, t in enumerate(tensors):
        if t.name in deltas:
            value = t.sections["raw"].data
            new = (value.astype(np.float64) + deltas[t.name].reshape(value.shape)).astype(value.dtype)
            tensors[i] = CompressedTensor(name=t.name, method="raw", shape=t.shape,
                                          sections={"raw": dense_section("raw", new)})


def fold_for_export(model: LoadedModel) -> tuple[LoadedModel, list[tuple[str, str]]]:
    """The model with each BatchNorm folded into the conv (or linear) before it, so that what is
    quantized is what runs: an exporter that folded BatchNorm after quantizing would scale every
    filter by its own factor and break the codebook. The caller's model is not changed."""
    if not has_batchnorm(model.module):
        return model, []
    from .fold import FoldWarning, fold_batchnorm

    notes = []
    module, pairs = fold_batchnorm(model.module, notes)
    for note in notes:
        warnings.warn(note, FoldWarning, stacklevel=3)
    return (dataclasses.replace(model, module=module) if pairs else model), pairs


def _in_folded(name: str, folded) -> bool:
    """A tensor of a folded BatchNorm: kept float32, since its exact identity values are what make
    a converter's own re-folding a multiplication by exactly 1.0 (vqexport.fold)."""
    return any(name.startswith(bn + ".") for _, bn in folded)


def has_batchnorm(module) -> bool:
    import torch

    if isinstance(module, torch.fx.GraphModule) and any("batch_norm" in str(n.target) for n in module.graph.nodes):
        return True  # a torch.export program: the module types are gone, the ops are in its graph
    return any("BatchNorm" in getattr(m, "original_name", type(m).__name__) for m in module.modules())


def tied_names(state: dict) -> dict[str, str]:
    """{alias: first name} for state_dict entries that are one tensor under two names (tied weights,
    `b.weight = a.weight`): the same storage, offset, shape, strides and dtype, so always equal."""
    first, tied = {}, {}
    for name, value in state.items():
        if value.numel() == 0 or value.is_sparse or value.is_quantized:
            continue
        key = (value.device, value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape),
               tuple(value.stride()), value.dtype)
        if key in first:
            tied[name] = first[key]
        else:
            first[key] = name
    return tied


def _fold_tied(tied: dict, settings: dict, plans: dict, skipped: dict) -> None:
    """One plan per shared tensor, under its first name: a tensor that two layers use is compressed
    once, with the setting of whichever name was chosen, and both layers use the result."""
    for alias, target in tied.items():
        mine, theirs = settings.get(alias), settings.get(target)
        if mine is not None and theirs is not None and mine != theirs:
            raise ConfigError(f"layers {target} and {alias} are one tensor (tied weights); give them the same "
                              "setting")
        if mine is not None and theirs is None:
            if alias in plans:
                plans[target] = plans[alias]
            if alias in skipped:
                skipped[target] = skipped[alias]
        plans.pop(alias, None)
        skipped.pop(alias, None)


class SkippedLayerWarning(UserWarning):
    """A layer left raw because the setting does not fit it."""


def _params(q) -> dict:
    """The settings that shape the tensor (the codebook's storage dtype shows in its bits)."""
    return {k: v for k, v in q.fields().items() if k != "codebook_dtype"}


def _raw(name: str, value) -> CompressedTensor:
    arr = value.detach().to("cpu")
    try:
        data = arr.numpy()
    except TypeError:
        raise ConfigError(f"tensor {name} has dtype {arr.dtype}, which .vqm does not store") from None
    try:
        section = dense_section("raw", data)
    except ValueError:
        raise ConfigError(f"tensor {name} has dtype {arr.dtype}, which .vqm does not store") from None
    return CompressedTensor(name=name, method="raw", shape=tuple(arr.shape), sections={"raw": section})


def _rel_error(w: np.ndarray, t: CompressedTensor) -> float:
    """||W - decode||_F / ||W||_F, in row blocks (on threads) so a 100 M-weight layer is never decoded
    whole. Differences and squares in float32 (6e-8 relative each), their sums in float64."""
    from .util.parallel import thread_map

    matrix = w.reshape(t.matrix)

    def sums(rows):
        block = np.asarray(matrix[rows], dtype=np.float32)
        d = np.subtract(block, registry.decode(t, rows), dtype=np.float32)
        num = np.add.reduce(np.square(d, out=d).ravel(), dtype=np.float64)
        return float(num), float(np.add.reduce(np.square(block).ravel(), dtype=np.float64))

    parts = thread_map(sums, t.row_blocks())
    num, den = sum(p[0] for p in parts), sum(p[1] for p in parts)
    return float(np.sqrt(num / den)) if den else 0.0
