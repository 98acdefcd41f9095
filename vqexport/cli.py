"""Command line: argument parsing only; the work is done by vqexport.api and friends."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from .calibrate import DEFAULT_IMAGES as DEFAULT_CALIB_IMAGES
from .config import MIN_SIZE, CompressConfig
from .errors import ConfigError, VqexportError
from .finetune import FinetuneConfig
from .methods import registry
from .weights import TYPES

EPILOG = {
    "compress": "example:\n  vqexport compress model.pt --method pq --d 4 --k 16 -o model.vqm",
    "inspect": "example:\n  vqexport inspect model.vqm --json",
    "to-onnx": "example:\n  vqexport to-onnx model.pt --method pq --d 4 --k 16 -o model.onnx\n"
               "  vqexport to-onnx model.vqm --model model.pt -o model.onnx",
    "to-tflite": "example:\n  vqexport to-tflite model.pt --method kmeans --k 16\n"
                 "  vqexport to-tflite model.pt --method kmeans --k 16 --decode load   # dense speed, "
                 "for vqexport's or the app's loader",
    "bench": "example:\n  vqexport bench model.tflite --runs 200 --json",
    "eval": "example:\n  vqexport eval model.tflite --data mnist5k",
    "sweep": "example:\n  vqexport sweep model.pt --data mnist5k -o sweep/",
    "finetune": "example:\n  vqexport finetune model.vqm --data fashion --epochs 2 -o tuned.vqm",
}


class _Parser(argparse.ArgumentParser):
    """A usage mistake gets the same single line and exit code 2 as every other user error."""

    def error(self, message):
        self.exit(2, f"vqexport: error: {message} (see `{self.prog} --help`)\n")


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples keep their line breaks; every flag with a default says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


# The method flags default to None so that a flag the user gave can be told from one left out;
# resolve_method_flags fills in these documented defaults after checking what was given.
METHOD_FLAGS = {"k": "--k", "d": "--d", "rows": "--rows", "stages": "--stages", "rank": "--rank",
                "group_size": "--group-size", "codebook_dtype": "--codebook-dtype", "seed": "--seed"}
DEFAULTS = {"method": CompressConfig().quant.method, **registry.defaults(), "seed": CompressConfig.seed}


def _method_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compression")
    g.add_argument("--method", choices=registry.NAMES, help=f"(default: {DEFAULTS['method']})")
    g.add_argument("--k", type=int, help=f"{_readers('k')}: codebook entries, 2 to 65536 (default: {DEFAULTS['k']})")
    g.add_argument("--d", type=int, help=f"{_readers('d')}: sub-vector length (default: {DEFAULTS['d']})")
    g.add_argument("--rows", action="store_true", default=None,
                   help="pq: segments of d rows instead of d columns (default: columns)")
    g.add_argument("--stages", type=int, help=f"rq: number of stages t (default: {DEFAULTS['stages']})")
    g.add_argument("--rank", type=int, help=f"svd: rank r (default: {DEFAULTS['rank']})")
    g.add_argument("--group-size", type=int, metavar="G",
                   help=f"{_readers('group_size')}: one codebook per G output channels (rows) "
                        "(default: one codebook per tensor)")
    g.add_argument("--codebook-dtype", choices=["float32", "float16"],
                   help=f"{_readers('codebook_dtype')}: how codebooks are stored "
                        f"(default: {DEFAULTS['codebook_dtype']})")
    g.add_argument("--types", type=_types, metavar="TYPE[,TYPE]",
                   help=f"the kinds of weight to compress, from {','.join(TYPES)} (default: all)")
    g.add_argument("--raw-dtype", choices=["float32", "float16"],
                   help="how the float32 tensors left raw (biases, norms, small weights) are stored; float16 halves "
                        "them, widened back on load (default: float32)")
    g.add_argument("--min-size", type=_at_least(0), metavar="N",
                   help=f"weights with fewer elements stay raw (default: {MIN_SIZE})")
    g.add_argument("--layers", action="append", metavar="GLOB",
                   help="layers to compress (repeatable) (default: every weight of the chosen types)")
    g.add_argument("--type-override", action="append", default=[], metavar="TYPE:KEY=V[,KEY=V]",
                   help="per-type setting, before the per-layer ones, e.g. 'conv:k=32' or 'embedding:method=vq,d=8'")
    g.add_argument("--override", action="append", default=[], metavar="GLOB:KEY=V[,KEY=V]",
                   help="per-layer setting, e.g. '13:k=8' or 'classifier.*:method=svd,rank=16'")
    g.add_argument("--seed", type=int, help=f"{_readers('seed')}: random seed (default: {DEFAULTS['seed']})")
    c = p.add_argument_group("calibration (data-aware fitting: codebooks and indices fitted to each layer's "
                             "output error on sample inputs)")
    c.add_argument("--calib", metavar="DATA",
                   help="mnist5k | digits | fashion (their training split) | FOLDER | FILE.npz")
    c.add_argument("--calib-images", type=_at_least(1), metavar="N",
                   help=f"calibration inputs drawn by --seed (default: {DEFAULT_CALIB_IMAGES})")
    c.add_argument("--bias-correction", action="store_true", default=None,
                   help="also add (W - W') E[x] to each calibrated layer's bias (its mean output stays put)")
    f = p.add_argument_group("fine-tuning (train the codebooks on labelled data; the indices stay)")
    f.add_argument("--finetune-data", metavar="DATA", help="mnist5k | digits | fashion (their training split) | "
                   "FOLDER | FILE.npz")
    f.add_argument("--finetune-epochs", type=_at_least(1), metavar="E",
                   help=f"passes over the data (default: {TRAINING.epochs})")
    _training_flags(f)
    b = p.add_argument_group("budget (instead of the method flags: a setting per layer, from measured sensitivity)")
    b.add_argument("--target-size", type=_size, metavar="SIZE",
                   help="the largest file to write, e.g. 400KB or 1.5MiB; the budget picks each layer's setting")
    b.add_argument("--max-drop", type=float, metavar="POINTS",
                   help="the largest top-1 drop, in points, on held-out images of --data; the smallest file within it")
    b.add_argument("--data", help="images for the budget's measurements: mnist5k | digits | fashion (their training "
                                  "split) | FOLDER | FILE.npz")


TRAINING = FinetuneConfig()  # the defaults, in one place: unset flags stay None and take these


def _training_flags(g) -> None:
    g.add_argument("--lr", type=float, help=f"Adam's learning rate (default: {TRAINING.lr})")
    g.add_argument("--batch", type=_at_least(1), help=f"images per step (default: {TRAINING.batch})")
    g.add_argument("--holdout", type=_at_least(0), help="training images kept aside to report held-out top-1 "
                   f"after each epoch (default: {TRAINING.holdout})")


def _readers(setting: str) -> str:
    return ", ".join(m for m in registry.NAMES if setting in registry.reads(m))


def _types(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in TYPES]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown type {unknown[0] if unknown else text!r}; "
                                         f"the types are {','.join(TYPES)}")
    return kinds


def resolve_method_flags(args) -> None:
    """Refuse a method flag that nothing will read, then fill in the defaults of those left out."""
    given = [key for key in METHOD_FLAGS if getattr(args, key) is not None]
    if hasattr(args, "source") and Path(args.model).suffix == ".vqm":  # to-onnx / to-tflite of a .vqm
        flags = (["--method"] if args.method else []) + [METHOD_FLAGS[k] for k in given] \
            + (["--layers"] if args.layers else []) + (["--override"] if args.override else []) \
            + (["--type-override"] if args.type_override else []) + (["--types"] if args.types else []) \
            + (["--min-size"] if args.min_size is not None else []) \
            + (["--raw-dtype"] if args.raw_dtype is not None else []) \
            + [f for f, v in (("--target-size", args.target_size), ("--max-drop", args.max_drop),
                              ("--data", args.data), ("--calib", args.calib), ("--calib-images", args.calib_images),
                              ("--bias-correction", args.bias_correction),
                              ("--finetune-data", args.finetune_data),
                              ("--finetune-epochs", args.finetune_epochs)) if v is not None]
        if flags:
            raise ConfigError(f"{flags[0]} has no effect with a .vqm input: {args.model} is already compressed; "
                              "give the model itself to compress it again")
    _check_budget_flags(args, given)
    if args.calib is None:
        needs = [f for f, v in (("--calib-images", args.calib_images), ("--bias-correction", args.bias_correction))
                 if v is not None]
        if needs:
            raise ConfigError(f"{needs[0]} has no effect without --calib DATA")
    if args.finetune_data is None:
        training = (("--finetune-epochs", "finetune_epochs"), ("--lr", "lr"), ("--batch", "batch"),
                    ("--holdout", "holdout"))
        given_training = [f for f, key in training if getattr(args, key) is not None]
        if given_training:
            raise ConfigError(f"{given_training[0]} has no effect without --finetune-data DATA")
    method = args.method or DEFAULTS["method"]
    methods = {method} | {value.strip() for text in args.override + args.type_override
                          for key, _, value in (item.partition("=") for item in text.rpartition(":")[2].split(","))
                          if key.strip() == "method"}
    for key in given:
        if not any(key in registry.reads(m) for m in methods if m in registry.NAMES):
            raise ConfigError(f"{METHOD_FLAGS[key]} has no effect with --method {method}")
    # Kept for the check against the model's layers (CompressConfig.check_used).
    args.given_method_flags = {key: METHOD_FLAGS[key] for key in given}
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.min_size is None:
        args.min_size = MIN_SIZE




def input_shape(text: str) -> list[int]:
    """--input-shape: 2 to 5 positive whole numbers, the batch first (layouts.parse_shape)."""
    from .layouts import parse_shape

    try:
        return parse_shape(text, "")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).strip()) from None


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--arch", help="for a state_dict: torchvision:NAME or package.module:Class")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling a pickled nn.Module (runs code from the file)")
    g.add_argument("--input-shape", type=input_shape, help="e.g. 1,3,224,224 when the model does not say")


def _scale_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, metavar="S",
                   help="divide your data (FOLDER, FILE.npz) by S, e.g. 255 for 0-255 pixels; default: fed as given")


def _layout_flag(p: argparse.ArgumentParser) -> None:
    from .layouts import NAMES

    p.add_argument("--layout", choices=NAMES, metavar="LAYOUT",
                   help="the file's input layout (NCHW, NHWC, NCW, NWC, NC, ...) when it records none, or to "
                        "override it; data is always given channels first")


def _check_budget_flags(args, given) -> None:
    budget = [f for f, v in (("--target-size", args.target_size), ("--max-drop", args.max_drop)) if v is not None]
    if len(budget) > 1:
        raise ConfigError("--target-size and --max-drop: give one budget, not both")
    if not budget:
        if args.data is not None:
            raise ConfigError("--data has no effect without --target-size or --max-drop")
        return
    chosen = (["--method"] if args.method else []) + [METHOD_FLAGS[k] for k in given if k != "seed"] \
        + (["--layers"] if args.layers else []) + (["--override"] if args.override else [])
    if chosen:
        raise ConfigError(f"{chosen[0]} has no effect with {budget[0]}: the budget chooses each layer's setting")
    if args.data is None:
        raise ConfigError(f"{budget[0]} needs --data: the images on which each layer's sensitivity is measured")


def _size(text: str) -> int:
    from .formats.limits import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _index_coding_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--index-coding", choices=["auto", "packed"],
                   help=f"how {what} stores indices: auto codes each tensor's with canonical Huffman where that is "
                        "smaller (a .vqm 3.0), packed keeps them plain (the 1.0/2.0 file older readers read) "
                        "(default: auto)")


def _limit_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-decoded-size", type=_size, metavar="SIZE",
                   help="the largest decoded model a .vqm or --decode load .tflite may declare, e.g. 16GiB "
                        "(default: 4 GiB, and at most 4096x the file's size); raise it only for files you trust")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vqexport", formatter_class=_Help,
        description="Compress the weights of PyTorch networks with vector quantization and export them "
                    "still compressed.",
        epilog="example:\n  vqexport to-tflite model.pt --method kmeans --k 16\n  vqexport inspect model.vqm")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_):
        p = sub.add_parser(name, help=help_, epilog=EPILOG[name], formatter_class=_Help)
        # SUPPRESS: when left out here, the global `vqexport --quiet CMD` keeps its value.
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or notes")
        return p

    p = add("compress", "compress a model's weights into a .vqm")
    p.add_argument("model")
    _method_flags(p)
    _model_flags(p)
    p.add_argument("-o", "--output", required=True, help="the .vqm to write")
    _index_coding_flag(p, "the .vqm")
    p.add_argument("--json", action="store_true")

    p = add("inspect", "show the layers of a .vqm")
    p.add_argument("file")
    _limit_flag(p)
    p.add_argument("--json", action="store_true")

    for name, what in (("to-onnx", "ONNX"), ("to-tflite", "TFLite")):
        p = add(name, f"compress and write {what} that decodes with Gather (plus the .vqm beside it)")
        p.add_argument("model", help="a model file, or a .vqm together with --model")
        p.add_argument("--model", dest="source", help="with a .vqm input: the model it came from")
        _method_flags(p)
        _model_flags(p)
        p.add_argument("-o", "--output", help="default: the input's name with the new suffix")
        _index_coding_flag(p, "the .vqm written beside it" + (" and the one a --decode load file carries"
                                                                if name == "to-tflite" else ""))
        _limit_flag(p)
        p.add_argument("--json", action="store_true")
        if name == "to-tflite":
            p.add_argument("--decode", choices=["once", "every-run", "load"], default="once",
                           help="once: decode on the first invoke into variables (default); every-run: no "
                                "extra memory, slow; load: dense speed, but the file needs vqexport's loader "
                                "(Python, or the demo app) to fill in its weights")

    p = add("finetune", "train a .vqm's codebooks (and its raw tensors) on labelled data; the indices stay")
    p.add_argument("model", help="the .vqm to fine-tune")
    p.add_argument("--data", required=True,
                   help="mnist5k | digits | fashion (their training split) | FOLDER | FILE.npz")
    p.add_argument("--epochs", type=_at_least(1), help=f"passes over the data (default: {TRAINING.epochs})")
    _training_flags(p)
    p.add_argument("--seed", type=int, default=0, help="shuffling and the held-out split (default: 0)")
    p.add_argument("--model", dest="source", help="for a .vqm without an importable arch: its source model")
    p.add_argument("--arch", help="for a .vqm without an importable arch: torchvision:NAME or package.module:Class")
    p.add_argument("--trust-pickle", action="store_true", help="allow --model to be a pickled nn.Module")
    p.add_argument("-o", "--output", required=True, help="the fine-tuned .vqm to write")
    p.add_argument("--json", action="store_true")

    p = add("bench", "time a .onnx or .tflite like onnxruntime_perf_test / benchmark_model")
    p.add_argument("file")
    p.add_argument("--runs", type=_at_least(1), default=100, help="timed runs")
    p.add_argument("--warmup", type=_at_least(0), default=10, help="untimed runs before them")
    p.add_argument("--threads", type=_at_least(1), help="intra-op threads (default: the runtime's own)")
    p.add_argument("--input-shape", type=input_shape,
                   help="channels first, e.g. 1,3,224,224 or 1,64: for a file that does not say, or to override it")
    _layout_flag(p)
    _limit_flag(p)
    p.add_argument("--json", action="store_true")

    p = add("eval", "top-1/top-5 accuracy and sizes of a .pt, .vqm, .onnx or .tflite")
    p.add_argument("model")
    p.add_argument("--data", default="mnist5k", help="mnist5k | digits | FOLDER | FILE.npz")
    p.add_argument("--model", dest="source", help="for a .vqm without an importable arch: its source model")
    _scale_flag(p)
    _layout_flag(p)
    _model_flags(p)
    _limit_flag(p)
    p.add_argument("--json", action="store_true")

    p = add("sweep", "accuracy against compression for every method (the paper's experiment)")
    p.add_argument("model")
    p.add_argument("--data", default="mnist5k", help="mnist5k | digits | FOLDER | FILE.npz")
    p.add_argument("-o", "--output", required=True, help="folder for results.json, results.md and plots")
    p.add_argument("--quick", action="store_true", help="three points only")
    p.add_argument("--formats", default="vqm", help="comma list of vqm,onnx,tflite for the size plot")
    p.add_argument("--types", type=_types, default=("linear",), metavar="TYPE[,TYPE]",
                   help="the weights every point compresses: linear is the paper's experiment, conv,linear the "
                        "whole model (default: linear)")
    p.add_argument("--calib", metavar="DATA", help="calibrated fitting (as compress --calib) for every point "
                   "whose method takes it")
    p.add_argument("--calib-images", type=_at_least(1), metavar="N",
                   help=f"calibration inputs (default: {DEFAULT_CALIB_IMAGES})")
    p.add_argument("--min-size", type=_at_least(0), default=0, metavar="N",
                   help="weights with fewer elements stay raw")
    _scale_flag(p)
    _model_flags(p)
    _limit_flag(p)
    p.add_argument("--json", action="store_true")
    return parser


def main(argv=None) -> int:
    # LiteRT and litert-torch (through JAX and the MLIR converter) log from C++ at import; users
    # should see our one-line messages, not that. A user who sets the variable keeps theirs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    quiet = args.quiet
    warnings.showwarning = _one_line_warning(quiet)
    try:
        if hasattr(args, "method"):
            resolve_method_flags(args)
        from . import commands
        from .formats.limits import max_decoded_size

        with max_decoded_size(getattr(args, "max_decoded_size", None)):  # seen by bench's child process too
            code = getattr(commands, "cmd_" + args.command.replace("-", "_"))(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return code
    except VqexportError as e:
        print(f"vqexport: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`vqexport inspect --json | head -1`): stop quietly, as a shell tool
        # does, and keep Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # what a shell reports for a process that SIGPIPE ended
    except KeyboardInterrupt:
        print("vqexport: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(quiet: bool):
    def show(message, category, filename, lineno, file=None, line=None):
        if quiet or not category.__module__.startswith("vqexport"):
            return
        print(f"vqexport: note: {message}", file=sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
