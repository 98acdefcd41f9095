"""Architecture strings: which code they may import, checked before anything is imported.

An architecture is `torchvision:NAME` or `package.module:Class`. The user's own --arch may name
any class that subclasses torch.nn.Module (importing it is the user's choice). A model file
(.vqm metadata, a TorchScript's vqexport.json) may only *name* one: that name is used when it is
on the fixed allow-list below and is never imported otherwise, so a file cannot make vqexport
import a module or call a function.
"""
from __future__ import annotations

import importlib
import re

from .errors import LoadError, first_line

# vqexport's own reference networks (vqexport.zoo.cnn.NETWORKS), which their cached files record.
OWN = {"vqexport.zoo.cnn:MnistCNN": ("vqexport.zoo.cnn", "MnistCNN"),
       "vqexport.zoo.mobile:MobileCNN": ("vqexport.zoo.mobile", "MobileCNN")}
_TORCHVISION = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def allowed_from_file(arch) -> bool:
    """Whether a file may choose `arch`: torchvision's registry or vqexport's own networks, by name only."""
    if not isinstance(arch, str):
        return False
    where, _, name = arch.partition(":")
    return arch in OWN or (where == "torchvision" and bool(_TORCHVISION.match(name)))


def shown(arch) -> str:
    """An architecture string from a file, safe to put in a one-line message."""
    text = repr(arch)
    return text if len(text) <= 80 else text[:77] + "..."


def constructor(arch: str, state_dict: dict | None = None, *, from_file: bool = False):
    """A zero-argument callable that builds `arch`.

    from_file: the string came from a model file, so only the allow-list is accepted. Modules
    are imported here, outside any device context (a library imported under
    torch.device("meta") runs its module-level code there, and breaks).
    """
    if from_file and not allowed_from_file(arch):
        raise LoadError(f"the file names the architecture {shown(arch)}, which vqexport does not import on a "
                        "file's word; pass the model it came from with --model, or its architecture with --arch")
    if not isinstance(arch, str) or ":" not in arch:
        raise LoadError(f"--arch {shown(arch)}: expected torchvision:NAME or package.module:Class")
    where, name = arch.split(":", 1)
    if arch in OWN:
        module, attr = OWN[arch]
        return getattr(importlib.import_module(module), attr)
    if where == "torchvision":
        return _torchvision(arch, name, state_dict)
    if not _MODULE.match(where) or not _CLASS.match(name):
        raise LoadError(f"--arch {shown(arch)}: expected torchvision:NAME or package.module:Class")
    try:
        cls = getattr(importlib.import_module(where), name)
    except (ImportError, AttributeError) as e:
        raise LoadError(f"--arch {arch}: cannot import it ({first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - the user's module raised while importing: its own error, one line
        raise LoadError(f"--arch {arch}: importing {where} failed: {type(e).__name__}: {first_line(e)}") from None
    import torch

    # Checked before anything is called: `os:system` or `builtins:exec` must never run.
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise LoadError(f"--arch {arch}: {name} is not a class that subclasses torch.nn.Module")
    return cls


def _torchvision(arch: str, name: str, state_dict: dict | None):
    if not _TORCHVISION.match(name):
        raise LoadError(f"--arch {shown(arch)}: torchvision has no model named {name[:64]!r}")
    import torchvision

    kwargs = {}
    if state_dict is not None:
        last = [v for k, v in state_dict.items() if k.endswith(".weight") and v.ndim == 2]
        if last and last[-1].shape[0] != 1000:
            kwargs["num_classes"] = int(last[-1].shape[0])
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise LoadError(f"--arch {arch}: torchvision has no model named {name!r}") from None
    return lambda: builder(weights=None, **kwargs)
