"""One function per CLI command: turn parsed arguments into API calls and print the result."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import api
from .config import CompressConfig, QuantConfig
from .errors import ConfigError, VqexportError
from .methods import registry
from .util.fileio import check_output_folder, check_outputs
from .util.report import emit, human_bytes, table


def _config(args) -> CompressConfig:
    own = registry.get(args.method).Config.settings()
    quant = QuantConfig(args.method, **{key: getattr(args, key) for key in own})
    overrides = [_parse_override(o) for o in args.override]
    type_overrides = [_parse_override(o, "--type-override") for o in args.type_override]
    # A flag that the global method does not read is meant for the layers an override turns to a
    # method that does (resolve_method_flags refused it otherwise): it goes into those overrides.
    given = getattr(args, "given_method_flags", {})
    moved = set()
    for key in given:
        for _, changes in overrides + type_overrides:
            method = changes.get("method")
            if key not in own and key not in changes and method in registry.NAMES \
                    and key in registry.get(method).Config.settings():
                changes[key] = getattr(args, key)
                moved.add(key)
    args.given_method_flags = {key: flag for key, flag in given.items() if key not in moved}  # used, by those
    extra = {"types": args.types} if args.types else {}
    return CompressConfig(quant=quant, layers=tuple(args.layers or ("*",)), overrides=tuple(overrides),
                          type_overrides=tuple(type_overrides), seed=args.seed, min_size=args.min_size,
                          raw_dtype=args.raw_dtype or "float32", **extra)


def _parse_override(text: str, flag: str = "--override"):
    glob, sep, rest = text.rpartition(":")
    what = "TYPE" if flag == "--type-override" else "GLOB"
    if not sep or not glob or not rest:
        raise ConfigError(f"{flag} {text!r}: expected {what}:KEY=VALUE[,KEY=VALUE]")
    changes = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"{flag} {text!r}: {item!r} is not KEY=VALUE")
        value = value.strip()
        if value.lower() in ("true", "false"):
            changes[key.strip()] = value.lower() == "true"
        else:
            try:
                changes[key.strip()] = int(value)
            except ValueError:
                changes[key.strip()] = value
    return glob, changes


def _load(args, path=None):
    shape = _shape_arg(args)
    model = api.load_model(path or args.model, arch=args.arch, trust_pickle=args.trust_pickle)
    if shape:
        _check_shape_fits(model, shape, path or args.model)
        model.input = {**(model.input or {}), "shape": shape,
                       "layout": _channels_first_layout(model.input, len(shape))}
    return model


def _channels_first_layout(spec, rank: int) -> str:
    """The layout that --input-shape (PyTorch order) implies, unless the model records one of that rank."""
    from .layouts import channels_first, is_channels_last

    layout = (spec or {}).get("layout")
    return layout if is_channels_last(layout, rank) is not None else channels_first(rank)


def _shape_arg(args):
    """--input-shape as a list (cli.input_shape has checked it), or None."""
    return list(args.input_shape) if args.input_shape else None


def _check_shape_fits(model, shape, path) -> None:
    """Run the model once on zeros of `shape`, so a shape it cannot take fails here, in one line,
    and not as a tracer's traceback after the compression."""
    import torch

    try:
        with torch.no_grad():
            model.module(torch.zeros(shape))
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        # TorchScript puts its own traceback first and the error on the last line.
        why = lines[-1] if "Error: " in lines[-1] else lines[0]
        why = why.split("Error: ", 1)[1] if why.split("Error: ", 1)[0].isidentifier() else why
        raise ConfigError(f"--input-shape {','.join(map(str, shape))} does not fit the model {path}: {why}") from None


def _compress(args, model, overhead=(1.0, 0)):
    """overhead: (factor, bytes) by which the written format may exceed the .vqm (docs/FORMAT.md's
    size guarantees), so a --target-size budget is met by the file the command writes."""
    if args.target_size is not None or args.max_drop is not None:
        config = _budget_config(args, model, overhead)
    else:
        config = _config(args)
        state = model.state_dict()
        weights = model.weights()
        config.check_used(weights, {n: int(state[n].numel()) for n in weights},
                          getattr(args, "given_method_flags", None))
    calib = None
    if args.calib is not None:
        from .calibrate import DEFAULT_IMAGES, calibration

        calib = calibration(model, args.calib, args.calib_images or DEFAULT_IMAGES, args.seed,
                            bias_correction=bool(args.bias_correction))
    cm = api.compress(model, config=config, quiet=args.quiet, calib=calib)
    if args.finetune_data is not None:
        cm = _finetuned(args, cm, model, args.finetune_data, args.finetune_epochs)
    if not cm.compressed and not args.quiet:
        why = (f"every weight of the chosen types is below --min-size {args.min_size}" if cm.metadata.get("skipped")
               else "it has no weight of the chosen types")
        print(f"vqexport: note: {args.model}: {why}; nothing was compressed")
    return cm


def _budget_config(args, model, overhead) -> CompressConfig:
    from .budget import Budget

    say = (lambda *a: None) if args.quiet else (lambda text: print(f"vqexport: {text}", file=sys.stderr))
    say(f"budget: measuring each layer's sensitivity on {args.data} ...")
    budget = Budget(model, args.data, seed=args.seed)
    if args.target_size is not None:
        factor, extra = overhead
        plan = budget.for_size(int((args.target_size - extra) / factor))
    else:
        plan = budget.for_drop(args.max_drop)
    args.plan = plan
    say(f"budget: re-run this plan with: vqexport {args.command} {shlex.quote(str(args.model))} "
        + " ".join(shlex.quote(a) for a in plan.override_args()))
    return plan.config


def _plan_result(args) -> dict:
    plan = getattr(args, "plan", None)
    if plan is None:
        return {}
    return {"plan": {"flags": plan.override_args(), "settings": plan.settings, "vqm_bytes": plan.file_bytes,
                     "held_out_drop_points": plan.measured_drop}}


def cmd_compress(args) -> int:
    check_outputs([(args.output, "the output")], inputs=[args.model])
    model = _load(args)
    cm = _compress(args, model)
    api.write_vqm(cm, args.output, args.index_coding or "auto")
    result = {**_summary(cm, args.output), **_plan_result(args)}
    emit(args, result, _summary_text(result))
    return 0


def cmd_inspect(args) -> int:
    cm = api.read_vqm(args.file)
    result = _summary(cm, args.file)
    emit(args, result, _summary_text(result))
    return 0


def _summary(cm, path) -> dict:
    layers = cm.metadata.get("layers", {})
    rows = []
    for t in cm.tensors:
        if t.method == "raw":
            continue
        info = layers.get(t.name, {})
        rows.append({"name": t.name, "type": info.get("type"), "shape": list(t.shape), "method": t.method,
                     "params": {k: info[k] for k in ("k", "d", "rows", "stages", "rank", "group_size") if info.get(k)
                                or (k in info and k != "group_size")},
                     "bits_per_weight": t.bits_per_weight, **_index_coding(t), "compression": t.compression,
                     "rel_error": info.get("rel_error"), "rel_output_error": info.get("rel_output_error"),
                     "rel_output_error_plain": info.get("rel_output_error_plain")})
    return {"file": str(path), "bytes": os.path.getsize(path), **cm.summary(), "layers": rows,
            "skipped": cm.metadata.get("skipped", {}), "tied": cm.tied, "source": cm.metadata.get("source", {}),
            "calibration": cm.metadata.get("calibration"), "finetune": cm.metadata.get("finetune")}


def _index_coding(t) -> dict:
    """Bits per weight with the indices as stored (Huffman-coded or packed) and at their empirical
    entropy, beside the packed bits_per_weight; per index too. None where a method has no indices."""
    sec = t.sections.get("indices")
    if sec is None:
        return {"coded_bits_per_weight": None, "entropy_bits_per_weight": None, "index_coding": None,
                "index_bits": None, "index_coded_bits": None, "index_entropy_bits": None}
    from .formats.huffman import entropy_bits

    stored = 8 * sec.coded_nbytes if sec.coded_nbytes else sec.ideal_bits
    entropy = entropy_bits(sec.unpacked(), t.k)
    rest = t.ideal_bits - sec.ideal_bits
    return {"coded_bits_per_weight": (rest + stored) / t.numel,
            "entropy_bits_per_weight": (rest + entropy * sec.count) / t.numel,
            "index_coding": "huffman" if sec.coded_nbytes else "packed", "index_bits": sec.bits,
            "index_coded_bits": stored / sec.count, "index_entropy_bits": entropy}


def _summary_text(r: dict) -> str:
    def bits(v):
        return "-" if v is None else f"{v:.3f}"

    rows = [[x["name"], x["type"] or "-", "x".join(map(str, x["shape"])), x["method"],
             ",".join(f"{k}={v}" for k, v in x["params"].items()) or "-",
             bits(x["bits_per_weight"]), bits(x["coded_bits_per_weight"]), bits(x["entropy_bits_per_weight"]),
             f"{x['compression']:.2f}x", "-" if x["rel_error"] is None else f"{x['rel_error']:.4f}"]
            for x in r["layers"]]
    heads = ["layer", "type", "shape", "method", "params", "bits/weight packed", "as stored", "at entropy",
             "compression", "rel. error"]
    if any(x.get("rel_output_error_plain") is not None for x in r["layers"]):  # calibrated: the output error too
        heads += ["output error (plain fit)"]
        for row, x in zip(rows, r["layers"], strict=True):
            now, plain = x.get("rel_output_error"), x.get("rel_output_error_plain")
            row.append("-" if plain is None else f"{plain if now is None else now:.4f} ({plain:.4f})")
    out = [table(rows, heads)]
    small = {n: why for n, why in r["skipped"].items() if "below --min-size" in why}
    for name, why in r["skipped"].items():
        if name not in small or len(small) <= 4:
            out.append(f"left uncompressed: {name}: {why}")
    if len(small) > 4:  # a conv network has many small layers: one line for them all
        threshold = next(iter(small.values())).rpartition("--min-size ")[2]
        out.append(f"left uncompressed, below --min-size {threshold}: {len(small)} layers "
                   f"({', '.join(list(small)[:6])}{' ...' if len(small) > 6 else ''})")
    for alias, name in r["tied"].items():
        out.append(f"tied: {alias} is {name}, stored once")
    cal, tuned = r.get("calibration"), r.get("finetune")
    if cal:
        out.append(f"calibrated on {cal.get('data')} ({cal.get('images')} images"
                   + (", bias corrected" if cal.get("bias_correction") else "") + ")")
    if tuned:
        runs = tuned.get("epochs_run") or [{}]
        held = runs[-1].get("held_out_top1")
        out.append(f"fine-tuned on {tuned.get('data')}: {tuned.get('epochs')} epochs"
                   + (f", held-out top-1 {100 * held:.2f} %" if isinstance(held, (int, float)) else ""))
    out.append(f"{r['file']}: {human_bytes(r['bytes'])} (dense model {human_bytes(r['model_dense_bytes'])}); "
               f"selected layers {r['layer_compression']:.2f}x, whole model {r['model_compression']:.2f}x")
    return "\n".join(out)


def _export(args, suffix: str, write):
    src = Path(args.model)
    out = Path(args.output) if args.output else src.with_suffix(suffix)
    outputs = [(out if args.output is None else args.output, "the output")]  # as typed: `-o dir/` is a folder
    if src.suffix != ".vqm":
        check_outputs(outputs, inputs=[src, args.source])  # first: `-o .` has no sibling .vqm name
        outputs.append((out.with_suffix(".vqm"), "the .vqm written beside it"))
    check_outputs(outputs, inputs=[src, args.source])
    carries_vqm = suffix == ".tflite" and args.decode == "load"
    if args.index_coding is not None and src.suffix == ".vqm" and not carries_vqm:
        raise ConfigError(f"--index-coding has no effect with a .vqm input and this export: no .vqm is written, "
                          f"and the {suffix} graph decodes plain packed indices (only to-tflite --decode load "
                          "carries a .vqm)")
    # Everything that can be checked is checked before the compression, which can take minutes.
    if src.suffix == ".vqm":
        cm = api.read_vqm(src)
        model = _load(args, args.source) if args.source else None
        vqm_path = src
        shape = _shape_arg(args)
        if shape and model is None:
            cm.metadata["input"] = {**(cm.metadata.get("input") or {"layout": "NCHW"}), "shape": shape}
    else:
        cm = None
        model = _load(args)
        vqm_path = out.with_suffix(".vqm")
        if suffix == ".tflite" and not model.weights():
            raise ConfigError(f"{src}: has no conv, linear, embedding or attention weight, so there is nothing "
                              "to compress")
    spec = (model.input if model is not None else None) or (cm.metadata.get("input") if cm is not None else None)
    if not (isinstance(spec, dict) and spec.get("shape")):
        raise ConfigError(f"{src}: the model does not say its input shape; pass --input-shape, e.g. 1,3,224,224")
    if cm is None:
        cm = _compress(args, model, OVERHEAD[suffix])
        _release_compressed(model, cm)
    if model is not None and model.input:
        cm.metadata["input"] = dict(model.input)
    # Without --model, a .vqm is rebuilt from the user's --arch, or from the architecture its
    # metadata names when that is on vqexport.arch's allow-list.
    if model is None:
        model = args.arch
    info = write(cm, out, model)
    if vqm_path != src:
        api.write_vqm(cm, vqm_path, args.index_coding or "auto")
    result = {"output": str(out), "bytes": os.path.getsize(out), "vqm": str(vqm_path),
              "vqm_bytes": os.path.getsize(vqm_path), **cm.summary(), "export": info, **_plan_result(args)}
    if args.target_size is not None and result["bytes"] > args.target_size:
        print(f"vqexport: note: {out} is {result['bytes']} bytes, over --target-size {args.target_size}: "
              "the format's overhead was larger than its documented bound", file=sys.stderr)
    text = (f"wrote {out} ({human_bytes(result['bytes'])}) and {vqm_path} ({human_bytes(result['vqm_bytes'])}); "
            f"dense model {human_bytes(result['model_dense_bytes'])}, selected layers "
            f"{result['layer_compression']:.2f}x, whole model {result['model_compression']:.2f}x")
    if isinstance(info, dict) and info.get("decode") == "load":
        text += ("\n--decode load: its weights are filled in when it is loaded, by `vqexport eval/bench`, "
                 "vqexport.formats.tflite.external.interpreter_source() or the demo app; "
                 "a plain TFLite interpreter refuses it")
    emit(args, result, text)
    return 0


def _release_compressed(model, cm) -> None:
    """Let the loaded model's copies of the weights that cm now holds compressed go: the exporters
    build the network from cm's tensors, never from these (VGG-16: 0.5 GB less at the export's peak).
    Only an eager or TorchScript module's, which the command loaded and owns; a torch.export
    program's tensors are part of its graph's signature."""
    import torch

    if model.kind not in ("state_dict", "pickle", "torchscript"):
        return
    tensors = {**dict(model.module.named_parameters(remove_duplicate=False)),
               **dict(model.module.named_buffers(remove_duplicate=False))}
    for name in [t.name for t in cm.compressed] + list(cm.tied):
        tensor = tensors.get(name)
        if tensor is not None:
            tensor.data = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)


# How much larger than the .vqm each export may be (docs/results/*: ONNX <= 1.01x + 16 KiB,
# TFLite <= 1.02x + 16 KiB), so that a --target-size plan leaves room for it.
OVERHEAD = {".onnx": (1.01, 16 << 10), ".tflite": (1.02, 16 << 10)}


def cmd_to_onnx(args) -> int:
    return _export(args, ".onnx", lambda cm, out, model: api.to_onnx(cm, out, model=model, quiet=args.quiet))


def cmd_to_tflite(args) -> int:
    coding = args.index_coding if args.decode == "load" else None  # the other modes carry no .vqm
    return _export(args, ".tflite", lambda cm, out, model: api.to_tflite(cm, out, model=model, decode=args.decode,
                                                                                 quiet=args.quiet, index_coding=coding))


def cmd_finetune(args) -> int:
    from .torch_bridge import to_torch

    check_outputs([(args.output, "the output")], inputs=[args.model, args.data])
    cm = api.read_vqm(args.model)
    source = api.load_model(args.source, arch=args.arch, trust_pickle=args.trust_pickle) if args.source else None
    to_torch(cm, source or args.arch, quiet=True)  # the model must fit before the data is read
    cm = _finetuned(args, cm, source or args.arch, args.data, args.epochs)
    api.write_vqm(cm, args.output)
    return 0


def _finetuned(args, cm, model, data: str, epochs: int | None):
    """cm with its codebooks and raw parameters trained on data (vqexport.finetune)."""
    from .finetune import EpochBars, FinetuneConfig, finetune, format_report, training_set
    from .torch_bridge import to_torch

    given = {"epochs": epochs, "lr": args.lr, "batch": args.batch, "seed": args.seed, "holdout": args.holdout}
    config = FinetuneConfig(**{k: v for k, v in given.items() if v is not None})  # unset: FinetuneConfig's defaults
    x, y = training_set(data, cm.metadata.get("input"), str(args.model), getattr(args, "scale", None))
    net = to_torch(cm, model, quiet=True)
    cm, report = finetune(cm, net, x, y, config, progress=EpochBars(config.epochs, args.quiet), source=data)
    if args.json and args.command == "finetune":
        emit(args, report, "")
    elif not args.quiet:
        print(format_report(report), file=sys.stderr if args.command != "finetune" else sys.stdout)
    return cm


def cmd_bench(args) -> int:
    from .evaluate.bench import format_bench, run_bench

    if not Path(args.file).is_file():
        raise VqexportError(f"{args.file}: no such file")
    result = run_bench(args.file, runs=args.runs, warmup=args.warmup, threads=args.threads,
                       input_shape=_shape_arg(args), layout=args.layout)
    emit(args, result, format_bench(result))
    return 0


def cmd_eval(args) -> int:
    from .evaluate.accuracy import evaluate_file, format_eval

    result = evaluate_file(args.model, args.data, source=args.source, arch=args.arch,
                           trust_pickle=args.trust_pickle, scale=args.scale, layout=args.layout,
                           input_shape=_shape_arg(args))
    emit(args, result, format_eval(result))
    return 0


def cmd_sweep(args) -> int:
    from .evaluate.sweep import OUTPUT_FILES, format_sweep, run_sweep

    check_output_folder(args.output, OUTPUT_FILES, inputs=[args.model, args.data])
    result = run_sweep(args.model, args.data, args.output, quick=args.quick, formats=args.formats.split(","),
                       arch=args.arch, trust_pickle=args.trust_pickle, quiet=args.quiet, scale=args.scale,
                       types=args.types, min_size=args.min_size, calib=args.calib, calib_images=args.calib_images)
    emit(args, result, format_sweep(result))
    return 0
