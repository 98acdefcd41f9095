"""torch.export archives (.pt2), read without running code from the file.

torch.export.load is not safe on a stranger's file. It unpickles the weights, constants and
example inputs with weights_only=False (any __reduce__ runs), loads the AOTInductor shared
libraries it finds, parses the symbolic-shape expressions with sympy.sympify (which is eval),
and torch.fx writes the graph's node names and input names into Python source that it exec()s.
So vqexport reads the archive itself:

- the three pickles with torch's weights_only unpickler (tensors and plain containers only);
- the program's JSON checked before torch sees it: names must be plain identifiers, module
  paths dotted identifiers, node targets aten operators (or the symbolic-int and control-flow
  ones torch.export writes), shape expressions a small arithmetic grammar; node metadata
  (stack traces, source locations) is dropped;
- AOTInductor code, extra files and anything else in the archive are never read.

With trust_pickle the file is trusted as a whole and torch.export.load reads it.
"""
from __future__ import annotations

import io
import json
import math
import pickle
import re
import types
import zipfile
import zlib
from pathlib import Path

from .errors import LoadError, VqexportError, first_line

MAX_PROGRAM_BYTES = 256 << 20  # the JSON of a ResNet-152 program is a few MB
MAX_EXPANSION_FLOOR = 1 << 20
MAX_EXPR_CHARS = 4096
MAX_DEPTH = 200
PICKLES = (("weights", dict), ("constants", dict), ("sample_inputs", tuple))  # torch 2.8's archives
WEIGHTS_CONFIG = "data/weights/model_weights_config.json"  # only in torch 2.9's
_PAYLOAD_NAME = re.compile(r"(weight|tensor)_[0-9]{1,9}\Z")
TRUST = "Re-run with --trust-pickle if you trust where it came from"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ATOM = re.compile(r"[A-Za-z0-9_]+\Z")
_VERSION = re.compile(r"[A-Za-z0-9_.+\-]*\Z")
_ATEN = re.compile(r"torch\.ops\.aten\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\Z")
_ATEN_DENIED = {"from_file"}  # maps a file named in the graph, creating it when shared
_SYM_TARGETS = {f"_operator.{n}" for n in ("add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "neg", "pos",
                                           "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "getitem")} | {
    "math.trunc", "torch.sym_float", "torch.sym_int", "torch.sym_max", "torch.sym_min", "torch.sym_not",
    "torch.sym_ite", "torch.sym_sum", "torch._sym_sqrt"}
_HOP_TARGETS = {f"torch.ops.higher_order.{n}" for n in ("cond", "while_loop", "map_impl", "scan",
                                                        "wrap_with_set_grad_enabled", "wrap_with_autocast")}
# Keys whose strings become identifiers in the code torch.fx generates.
_IDENT_KEYS = {"name", "as_name", "forward_arg_names"}
_NAME_TABLES = {"tensor_values", "sym_int_values", "sym_bool_values", "sym_float_values"}
_FREE_TEXT_KEYS = {"as_string", "as_strings"}  # argument values: torch.fx writes them with repr()
_TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict",
                   "torch.fx.immutable_collections.immutable_list",
                   "torch.fx.immutable_collections.immutable_dict"}

# The shape-expression grammar: sympy constructors and torch's shape functions applied to numbers,
# quoted symbol names and assumption keywords. No attribute access, no '**' (9**9**9 never ends).
_EXPR_TOKEN = re.compile(r"\s+|(?P<num>\d{1,40}(\.\d{1,40})?(e[+-]?\d{1,4})?)|(?P<str>'[A-Za-z0-9_.+\-]{0,64}')"
                         r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>//|==|!=|<=|>=|[-+*/%(),<>=])")
_EXPR_NAMES = {
    "Symbol", "Integer", "Float", "Rational", "Mul", "Add", "Max", "Min", "Mod", "Abs", "floor", "ceiling",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan",
    "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "ExprCondPair", "true", "false", "True",
    "False", "oo", "zoo", "nan", "Half", "One", "Zero", "NegativeOne", "Infinity", "NegativeInfinity",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat",
    "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity",
    "positive", "negative", "integer", "real", "nonnegative", "nonpositive", "finite", "infinite", "zero",
    "nonzero", "commutative", "even", "odd", "rational", "extended_real", "precision",
}


class Pt2Error(LoadError):
    """A .pt2 archive that is damaged, or holds something that would run code when loaded."""


def load_program(path: Path, trust_pickle: bool = False):
    """The ExportedProgram in `path`; raises Pt2Error for anything unsafe or damaged."""
    if trust_pickle:
        import torch

        try:
            return torch.export.load(str(path))
        except Exception as e:  # noqa: BLE001 - torch raises many types for a bad archive; all are the file's
            raise Pt2Error(f"{path}: not a loadable torch.export program ({first_line(e)})") from None
    program, pickled = _read_archive(path)
    _check_program(program, path)
    from torch._export.serde.serialize import SerializedArtifact, deserialize

    # torch's deserializer takes already-unpickled dicts and tuples as they are.
    artifact = SerializedArtifact(json.dumps(program).encode(), *pickled)
    try:
        return deserialize(artifact)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad program; all are the file's
        raise Pt2Error(f"{path}: not a loadable torch.export program ({first_line(e)})") from None


def _read_archive(path: Path):
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            roots = [n[: -len("archive_format")] for n in names
                     if n == "archive_format" or n.endswith("/archive_format")]
            if not roots:
                if any(n.endswith("serialized_exported_program.json") for n in names):
                    raise Pt2Error(f"{path}: a torch.export archive of torch 2.7 or older; re-save it with "
                                   "torch.export.save from the torch vqexport uses")
                raise Pt2Error(f"{path}: not a torch.export archive (no archive_format)")
            if len(roots) > 1:
                raise Pt2Error(f"{path}: holds {len(roots)} torch.export archives; expected one")
            root = roots[0]
            if _member(z, path, root + "archive_format", 64).strip() != b"pt2":
                raise Pt2Error(f"{path}: archive_format is not pt2")
            version = _member(z, path, root + "archive_version", 64).strip()
            if version != b"0":
                raise Pt2Error(f"{path}: archive version {version[:16]!r}; this torch reads version 0")
            text = _member(z, path, root + "models/model.json", MAX_PROGRAM_BYTES)
            if root + WEIGHTS_CONFIG in names:  # torch 2.9's layout: raw tensor bytes described in JSON
                pickled = [_payloads(z, path, root, "weights"), _payloads(z, path, root, "constants"),
                           _unpickle(_member(z, path, f"{root}data/sample_inputs/model.pt", None),
                                     "sample_inputs", tuple, path)]
            else:  # torch 2.8's: each table one pickle
                pickled = [_unpickle(_member(z, path, f"{root}data/{kind}/model.pt", None), kind, want, path)
                           for kind, want in PICKLES]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise Pt2Error(f"{path}: damaged zip archive ({first_line(e)})") from None
    try:
        program = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Pt2Error(f"{path}: models/model.json is not valid JSON ({first_line(e)})") from None
    return program, pickled


def _member(z: zipfile.ZipFile, path: Path, name: str, limit: int | None) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise Pt2Error(f"{path}: the archive has no {name}") from None
    if limit is not None and info.file_size > limit:
        raise Pt2Error(f"{path}: {name} declares {info.file_size} bytes, more than the {limit} allowed")
    # torch.export.save stores members uncompressed; a deflated one may expand at most 100-fold
    # (zipfile never returns more than the declared size, so this bounds the memory read).
    if info.file_size > max(MAX_EXPANSION_FLOOR, 100 * info.compress_size):
        raise Pt2Error(f"{path}: {name} declares {info.file_size} bytes from {info.compress_size} compressed; "
                       "refusing a decompression bomb")
    return z.read(info)


def _payloads(z: zipfile.ZipFile, path: Path, root: str, kind: str) -> dict:
    """The weights or constants of a torch 2.9 archive: each tensor's raw bytes in its own member,
    its dtype, sizes, strides and offset in data/<kind>/model_<kind>_config.json. Checked before
    any allocation beyond the member's bytes; a pickled entry (a tensor subclass, a TorchBind
    object) is refused, as it would run code."""
    import torch
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    where = f"data/{kind}/model_{kind}_config.json"
    try:
        config = json.loads(_member(z, path, root + where, MAX_PROGRAM_BYTES))["config"]
    except (ValueError, RecursionError, KeyError, TypeError) as e:
        raise Pt2Error(f"{path}: {where} is not a tensor table ({first_line(e)})") from None
    if not isinstance(config, dict):
        raise Pt2Error(f"{path}: {where} is not a tensor table")
    files, out = {}, {}
    for name, meta in config.items():
        bad = f"{path}: {where}: entry {str(name)[:80]!r}"
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            raise Pt2Error(f"{bad} is not a tensor entry")
        if meta.get("use_pickle") is not False:
            raise Pt2Error(f"{bad} is pickled; unpickling it runs code from the file. {TRUST}")
        if not _PAYLOAD_NAME.match(meta["path_name"]):
            raise Pt2Error(f"{bad} names the member {meta['path_name'][:80]!r}, not a tensor file")
        tm = meta.get("tensor_meta")
        try:
            dtype = _SERIALIZE_TO_TORCH_DTYPE[tm["dtype"]]
            size = [_as_int(v) for v in tm["sizes"]]
            stride = [_as_int(v) for v in tm["strides"]]
            offset = _as_int(tm["storage_offset"])
        except (KeyError, TypeError, ValueError):
            raise Pt2Error(f"{bad} has no valid dtype, sizes, strides and offset") from None
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8,
                         torch.int16, torch.int32, torch.int64, torch.bool):
            raise Pt2Error(f"{bad} has the unsupported dtype {dtype}")
        if len(size) != len(stride) or min([offset, *size, *stride], default=0) < 0:
            raise Pt2Error(f"{bad} has inconsistent sizes {size}, strides {stride} and offset {offset}")
        key = (meta["path_name"], dtype)
        if key not in files:
            data = bytearray(_member(z, path, f"{root}data/{kind}/{meta['path_name']}", None))
            if len(data) % dtype.itemsize:
                raise Pt2Error(f"{bad}: {len(data)} bytes is not a whole number of {dtype} values")
            files[key] = torch.frombuffer(data, dtype=dtype) if data else torch.zeros(0, dtype=dtype)
        flat = files[key]
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else -1
        if last >= flat.numel():
            raise Pt2Error(f"{bad} reaches element {last} of {meta['path_name']}, which holds {flat.numel()}")
        if math.prod(size) > flat.numel():  # a stride of 0 lets a few bytes declare any size; loading copies it
            raise Pt2Error(f"{bad} declares {math.prod(size)} elements over {meta['path_name']}'s {flat.numel()}")
        tensor = torch.as_strided(flat, size, stride, offset) if all(size) else torch.zeros(size, dtype=dtype)
        out[name] = torch.nn.Parameter(tensor, requires_grad=False) if meta.get("is_param") else tensor
    return out


def _as_int(value) -> int:
    if not isinstance(value, dict) or not isinstance(value.get("as_int"), int) or isinstance(value["as_int"], bool):
        raise ValueError("not a concrete int")
    return value["as_int"]


def _unpickle(data: bytes, kind: str, want: type, path: Path):
    import torch

    if not data:  # torch.export.save writes nothing for "none"; its deserializer reads b"" as empty
        return data
    member = f"data/{kind}/model.pt"
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or "Unsupported class" in str(e):
            raise Pt2Error(f"{path}: {member} holds a pickled Python object; unpickling it runs code from the "
                           f"file. {TRUST}") from None
        raise Pt2Error(f"{path}: {member} is damaged ({first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - the weights-only unpickler raises many types on damaged bytes
        raise Pt2Error(f"{path}: {member} is damaged ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(obj, want):
        raise Pt2Error(f"{path}: {member} holds a {type(obj).__name__}, expected a {want.__name__}")
    if want is dict and not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise Pt2Error(f"{path}: {member} holds something other than named tensors")
    if want is tuple and not (len(obj) == 2 and isinstance(obj[0], tuple) and isinstance(obj[1], dict)):
        raise Pt2Error(f"{path}: {member} is not (args, kwargs)")
    return obj


# -- the program's JSON ----------------------------------------------------------------------------

def _check_program(program, path: Path) -> None:
    gm = program.get("graph_module") if isinstance(program, dict) else None
    if not isinstance(gm, dict) or not isinstance(gm.get("graph"), dict):
        raise Pt2Error(f"{path}: models/model.json holds no graph_module")
    if gm.get("treespec_namedtuple_fields"):
        raise Pt2Error(f"{path}: the program's inputs or outputs are namedtuples, which vqexport does not load. "
                       f"{TRUST}")
    if gm["graph"].get("custom_obj_values"):
        raise Pt2Error(f"{path}: the program uses TorchBind objects, which need unpickling code. {TRUST}")
    # Stack traces, module paths and source functions are for debugging; torch.fx writes parts of
    # them into the code it generates, and nothing here needs them.
    gm["metadata"] = {}
    _strip_node_metadata(gm["graph"], 0, path)
    _walk(program, None, None, 0, path)


def _strip_node_metadata(graph, depth: int, path: Path) -> None:
    if depth > MAX_DEPTH:
        raise Pt2Error(f"{path}: the program nests more than {MAX_DEPTH} levels deep")
    if isinstance(graph, dict):
        for key, value in graph.items():
            if key == "nodes" and isinstance(value, list):
                for node in value:
                    if isinstance(node, dict):
                        node["metadata"] = {}
            _strip_node_metadata(value, depth + 1, path)
    elif isinstance(graph, list):
        for value in graph:
            _strip_node_metadata(value, depth + 1, path)


def _walk(obj, key, parent, depth: int, path: Path) -> None:
    if depth > MAX_DEPTH:
        raise Pt2Error(f"{path}: the program nests more than {MAX_DEPTH} levels deep")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if key in _NAME_TABLES or key == "range_constraints":  # value names; symbol names
                _identifier(k, key, path)
            elif not (isinstance(k, str) and _IDENT.match(k)):
                raise Pt2Error(f"{path}: the program has an unexpected field {_shown(k)}")
            if k in ("as_custom_obj", "custom_obj"):
                raise Pt2Error(f"{path}: the program uses TorchBind objects, which need unpickling code. {TRUST}")
            _walk(v, k, key, depth + 1, path)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, key, parent, depth + 1, path)
    elif isinstance(obj, str):
        _check_string(obj, key, path)
    elif not (obj is None or isinstance(obj, (bool, int, float))):
        raise Pt2Error(f"{path}: the program holds a {type(obj).__name__}")


def _check_string(s: str, key, path: Path) -> None:
    if key in _FREE_TEXT_KEYS:
        return
    if key in _IDENT_KEYS:
        _identifier(s, key, path)
    elif key in ("target", "as_operator"):  # the callables a node runs, or hands to a control-flow op
        _target(s, path)
    elif key == "expr_str":
        _expression(s, path)
    elif key in ("in_spec", "out_spec"):
        _treespec(s, key, path)
    elif key == "torch_version":
        if not _VERSION.match(s):
            raise Pt2Error(f"{path}: the program's torch_version {_shown(s)} is not a version")
    elif s and not all(_ATOM.match(a) and not a.startswith("__") for a in s.split(".")):
        # module paths ("features.3"), parameter names ("0.weight"), devices, verifiers
        raise Pt2Error(f"{path}: the program's {key} {_shown(s)} is not a dotted name")


def _identifier(s, key, path: Path) -> None:
    # An identifier cannot break out of the code torch.fx writes (a keyword or "" only makes it fail to
    # compile); "" is the name of a control-flow operator's positional arguments.
    if not (isinstance(s, str) and (s == "" or _IDENT.match(s))) or s.startswith("__"):
        raise Pt2Error(f"{path}: the program's {key} {_shown(s)} is not a plain identifier")


def _target(s: str, path: Path) -> None:
    if _ATEN.match(s):
        if s.split(".")[3] not in _ATEN_DENIED:
            return
    elif s in _SYM_TARGETS or s in _HOP_TARGETS:
        return
    raise Pt2Error(f"{path}: the program calls {_shown(s)}, which vqexport does not load from a file. {TRUST}")


def _expression(s: str, path: Path) -> None:
    bad = len(s) > MAX_EXPR_CHARS or "**" in s
    pos = 0
    while not bad and pos < len(s):
        m = _EXPR_TOKEN.match(s, pos)
        if m is None or m.end() == pos or (m.group("id") and m.group("id") not in _EXPR_NAMES):
            bad = True
        else:
            pos = m.end()
    if bad:
        raise Pt2Error(f"{path}: the program's shape expression {_shown(s)} is outside the grammar vqexport "
                       f"reads. {TRUST}")


def _treespec(s: str, key: str, path: Path) -> None:
    try:
        spec = json.loads(s)
    except (ValueError, RecursionError):
        spec = None
    if not (isinstance(spec, list) and len(spec) == 2):
        raise Pt2Error(f"{path}: the program's {key} is not a tree spec")
    _treespec_node(spec[1], key, 0, path)


def _treespec_node(node, key: str, depth: int, path: Path) -> None:
    if depth > MAX_DEPTH or not isinstance(node, dict) or node.get("type") not in _TREESPEC_TYPES:
        raise Pt2Error(f"{path}: the program's {key} holds a type vqexport does not load. {TRUST}")
    context = node.get("context")
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except (ValueError, RecursionError):
            raise Pt2Error(f"{path}: the program's {key} has a damaged context") from None
    # dict keys become keyword-argument names in the generated forward()
    if context is not None and not (isinstance(context, list) and all(
            isinstance(k, int) or (isinstance(k, str) and _IDENT.match(k))
            for k in context)):
        raise Pt2Error(f"{path}: the program's {key} has keys that are not identifiers")
    children = node.get("children_spec")
    if not isinstance(children, list):
        raise Pt2Error(f"{path}: the program's {key} is not a tree spec")
    for child in children:
        _treespec_node(child, key, depth + 1, path)


# -- the module ------------------------------------------------------------------------------------

def example_input_spec(program) -> dict | None:
    """{"shape", "layout"} from the program's example inputs: one positional tensor, no kwargs."""
    import torch

    example = getattr(program, "example_inputs", None)
    if not (isinstance(example, tuple) and len(example) == 2):
        return None
    args, kwargs = example
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or args[0].ndim < 1:
        return None
    shape = [int(d) for d in args[0].shape]
    return {"shape": shape, "layout": "NCHW"} if len(shape) == 4 else {"shape": shape}


def exported_module(program):
    """program.module() that eval() and any batch size work on.

    torch makes train()/eval() raise on it, because the graph was fixed at export; here they only
    set the flag. A program exported at a fixed batch size (no dynamic dimensions) runs a larger
    batch in slices of that size, so `eval` can feed it 100 images at a time.
    """
    module = program.module()
    keep = {"train": types.MethodType(_set_mode, module), "eval": types.MethodType(_eval_mode, module)}
    example = example_input_spec(program)
    if example and not program.range_constraints:
        keep.update(validate_inputs=False,  # checked per slice in _forward_in_slices
                    _vqexport_example=tuple(example["shape"]),
                    forward=types.MethodType(_forward_in_slices, module))
    for name, value in keep.items():
        setattr(module, name, value)
    # GraphModule's deepcopy (to_torch makes one) re-applies these, bound to the copy.
    module.meta["_user_preserved_attributes"] = {**module.meta.get("_user_preserved_attributes", {}), **keep}
    return module


def _set_mode(self, mode: bool = True):
    self.training = mode
    return self


def _eval_mode(self):
    return self.train(False)


def _forward_in_slices(self, x):
    import torch

    fixed = self._vqexport_example
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != fixed[1:] or x.shape[0] % fixed[0]:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise VqexportError(f"the exported program takes inputs of shape {fixed} (or a multiple of its batch), "
                            f"got {got}")
    forward = type(self).forward
    if x.shape[0] == fixed[0]:
        return forward(self, x)
    outs = [forward(self, part) for part in x.split(fixed[0])]
    if isinstance(outs[0], torch.Tensor):
        return torch.cat(outs)
    if isinstance(outs[0], (tuple, list)) and all(isinstance(o, torch.Tensor) for o in outs[0]):
        return type(outs[0])(torch.cat(parts) for parts in zip(*outs, strict=True))
    raise VqexportError("the exported program returns something other than tensors; feed it its own batch size")


def _shown(s) -> str:
    text = repr(s)
    return text if len(text) <= 80 else text[:77] + "..."
