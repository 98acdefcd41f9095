"""The fast test tier's stand-in for a machine without litert-torch and LiteRT.

tests/conftest.py calls block() in the pytest process and puts this folder first on PYTHONPATH
with VQEXPORT_FAST_TIER=1, so the CLI subprocesses that tests start load it too (as their
sitecustomize). A None in sys.modules is Python's own "not installed": `import tensorflow` raises
ModuleNotFoundError, and importlib.util.find_spec("tensorflow") answers None, as torch's probes expect.
"""
import os
import sys

HEAVY = ("litert_torch", "ai_edge_litert", "tensorflow")  # tensorflow is not installed; a stray import fails too
FLAG = "VQEXPORT_FAST_TIER"


def block():
    for name in HEAVY:
        if sys.modules.get(name) is None:
            sys.modules[name] = None


if os.environ.get(FLAG) == "1":
    block()
