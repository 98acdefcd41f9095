"""Loading PyTorch models without running code from the file unless the user says so.

Accepted: TorchScript archives (torch.jit.save), torch.export programs (.pt2, read by
vqexport.pt2 without unpickling anything but tensors), and state_dicts together with an
architecture (torchvision:NAME or package.module:Class, see vqexport.arch). A fully pickled
nn.Module, or a .pt2 that needs Python objects, is unpickled only with trust_pickle=True
(--trust-pickle).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import arch as archs
from .errors import LoadError, first_line

EXTRA_FILE = "vqexport.json"  # TorchScript extra file holding labels and input spec
IMAGENET_INPUT = {"shape": [1, 3, 224, 224], "layout": "NCHW",
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass
class LoadedModel:
    module: object  # torch.nn.Module (eager, scripted, or an exported GraphModule)
    kind: str  # torchscript | export | state_dict | pickle | module
    name: str = "<module>"
    sha256: str = ""
    arch: str | None = None
    labels: list[str] | None = None
    input: dict | None = None
    info: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def weights(self) -> dict[str, str]:
        """{name: type} of the weights a method can take (vqexport.weights)."""
        from .weights import weight_tensors

        return weight_tensors(self.module)

    def dense_layers(self) -> list[str]:
        return [name for name, kind in self.weights().items() if kind == "linear"]

    def source_metadata(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "kind": self.kind, "arch": self.arch}


def load_model(path_or_module, arch: str | None = None, trust_pickle: bool = False) -> LoadedModel:
    """A LoadedModel from a path or an nn.Module. `arch` is the user's own choice (never a file's):
    it is checked to be torchvision:NAME or a torch.nn.Module class before the file is read."""
    import torch

    if arch is not None:
        archs.constructor(arch)
    if isinstance(path_or_module, torch.nn.Module):
        return LoadedModel(path_or_module.eval(), "module", arch=arch)
    path = Path(path_or_module)
    if not path.exists():
        raise LoadError(f"{path}: no such file")
    if path.is_dir():
        raise LoadError(f"{path}: is a folder, not a model file")
    digest = _sha256(path)
    names = _zip_names(path)
    if names is not None and any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return _load_torchscript(path, digest, arch)
    exported = ("/archive_format", "serialized_exported_program.json")
    if names is not None and any(n == "archive_format" or n.endswith(exported) for n in names):
        from . import pt2

        program = pt2.load_program(path, trust_pickle)
        try:
            module = pt2.exported_module(program)
        except Exception as e:  # noqa: BLE001 - torch raises many types for a program it cannot unlift
            raise LoadError(f"{path}: not a loadable torch.export program ({first_line(e)})") from None
        return LoadedModel(module, "export", path.name, digest, arch, input=pt2.example_input_spec(program))
    return _load_pickled(path, digest, arch, trust_pickle)


def _load_torchscript(path: Path, digest: str, arch: str | None) -> LoadedModel:
    import torch

    extra = {EXTRA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as e:
        raise LoadError(f"{path}: not a loadable TorchScript archive ({first_line(e)})") from None
    try:
        spec = json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else {}
    except (ValueError, RecursionError):
        raise LoadError(f"{path}: its {EXTRA_FILE} is not valid JSON") from None
    if not isinstance(spec, dict):
        raise LoadError(f"{path}: its {EXTRA_FILE} is not a JSON object")
    labels, inp = spec.get("labels"), spec.get("input")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(v, str) for v in labels)):
        raise LoadError(f"{path}: its {EXTRA_FILE} has labels that are not a list of strings")
    if inp is not None and not isinstance(inp, dict):
        raise LoadError(f"{path}: its {EXTRA_FILE} has an input spec that is not an object")
    # The file's own "arch" is recorded (a .vqm made from it can name it) but never imported from
    # here: rebuild_with_state takes it only when vqexport.arch allows it. The user's --arch wins.
    named = spec.get("arch") if isinstance(spec.get("arch"), str) else None
    return LoadedModel(module.eval(), "torchscript", path.name, digest, arch or named, labels, inp)


def _load_pickled(path: Path, digest: str, arch: str | None, trust_pickle: bool) -> LoadedModel:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            # torch wraps every failure in the same preamble; only "Unsupported global"
            # means a real pickle of Python objects rather than bytes that are no pickle at all.
            if "Unsupported global" in str(e) or "Unsupported class" in str(e):
                raise LoadError(f"{path}: holds a pickled Python object; unpickling it runs code from the file. "
                                "Re-run with --trust-pickle if you trust where it came from") from None
            raise LoadError(f"{path}: not a model file (TorchScript, .pt2 or state_dict)") from None
        obj = _trusted_load(path)
    except Exception as e:  # noqa: BLE001 - the weights-only unpickler raises KeyError, IndexError, ... on non-pickles
        raise LoadError(f"{path}: not a model file (TorchScript, .pt2 or state_dict): {first_line(e)}") from None
    if isinstance(obj, torch.nn.Module):
        return LoadedModel(obj.eval(), "pickle", path.name, digest, arch)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            raise LoadError(f"{path}: is a state_dict; say which architecture it belongs to with "
                            "--arch torchvision:NAME or --arch package.module:Class")
        try:
            module = build_with_state(arch, obj)
        except RuntimeError as e:
            raise LoadError(f"{path}: does not fit --arch {arch}: {first_line(e)}") from None
        labels, spec = _arch_defaults(arch, module)
        return LoadedModel(module.eval(), "state_dict", path.name, digest, arch, labels, spec)
    raise LoadError(f"{path}: holds a {type(obj).__name__}, not a model or a state_dict")


def _trusted_load(path: Path):
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - unpickling can raise anything the file's code raises
        raise LoadError(f"{path}: could not be unpickled: {first_line(e)}") from None


def build_arch(arch: str, state_dict: dict | None = None, *, from_file: bool = False):
    """Instantiate an architecture string: torchvision:NAME or package.module:Class (see vqexport.arch)."""
    import torch

    module = archs.constructor(arch, state_dict, from_file=from_file)()
    if not isinstance(module, torch.nn.Module):
        raise LoadError(f"--arch {arch}: {arch.split(':', 1)[1]} is not a torch.nn.Module")
    return module


def build_with_state(arch: str, state_dict: dict, *, from_file: bool = False):
    """The architecture holding `state_dict`'s tensors themselves (no copy, no random init).

    The module is built on the meta device, so its random initialisation allocates nothing,
    and the tensors are assigned rather than copied in: a VGG16 costs its weights once, not
    twice. An architecture that cannot be built there, or that has tensors outside its
    state_dict (non-persistent buffers), is built the ordinary way. Raises RuntimeError when
    the state_dict does not fit. from_file: `arch` came from a model file (see vqexport.arch).
    """
    import torch

    make = archs.constructor(arch, state_dict, from_file=from_file)
    try:
        with torch.device("meta"):
            module = make()
    except Exception:  # noqa: BLE001 - a user's __init__ that needs real tensors: built normally below
        module = None
    if not isinstance(module, torch.nn.Module):
        return _build_and_load(arch, state_dict, from_file)
    module.load_state_dict(state_dict, assign=True)
    if any(t.is_meta for t in itertools.chain(module.parameters(), module.buffers())):
        return _build_and_load(arch, state_dict, from_file)
    return module


def _build_and_load(arch: str, state_dict: dict, from_file: bool):
    module = build_arch(arch, state_dict, from_file=from_file)
    module.load_state_dict(state_dict)
    return module


def _arch_defaults(arch: str, module):
    """Labels and input spec that an architecture implies (torchvision's ImageNet models)."""
    if arch.startswith("torchvision:"):
        import torchvision

        weights = torchvision.models.get_model_weights(arch.split(":", 1)[1])
        labels = list(next(iter(weights)).meta.get("categories", [])) or None
        out = [p for n, p in module.named_parameters() if p.ndim == 2]
        if labels and out and out[-1].shape[0] != len(labels):
            labels = None
        return labels, dict(IMAGENET_INPUT)
    return None, None


def _zip_names(path: Path):
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
