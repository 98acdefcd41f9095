import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_tool(relpath: str):
    """A script under tools/ as a module (tools/ is not a package), for testing its functions."""
    path = ROOT / "tools" / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tf216_python() -> str | None:
    """TF 2.16.1's venv (the Android app's TFLite runtime, and tf_keras): make test builds it."""
    for cand in (os.environ.get("VQEXPORT_TF216_PYTHON"), str(ROOT / ".venv-tf216" / "bin" / "python"),
                 str(Path.home() / ".venv-tf216" / "bin" / "python")):
        if cand and Path(cand).exists():
            return cand
    return None


def tiny_mlp(seed: int = 0, n_in: int = 48, hidden: int = 32, n_out: int = 10) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out))


def tiny_cnn(seed: int = 0) -> torch.nn.Module:
    """A conv layer, then two dense layers: the reference CNN's shape at a hundredth of its size."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(4 * 6 * 6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10),
        ).eval()


TINY_CNN_INPUT = {"shape": [1, 1, 12, 12], "layout": "NCHW", "mean": [0.5], "std": [0.25]}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torchscript_cnn(tmp_path_factory):
    """A TorchScript file of the tiny CNN with its input spec inside, as a user would have."""
    from vqexport.zoo.reference import save_torchscript

    path = tmp_path_factory.mktemp("models") / "cnn.pt"
    save_torchscript(tiny_cnn(), path, {"input": TINY_CNN_INPUT, "labels": [str(i) for i in range(10)]})
    return path


def run_cli(*args, cwd=None):
    """The real command line in a subprocess: exit code, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "vqexport.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=600)
    return p.returncode, p.stdout, p.stderr


def cli(*args):
    """The real command line, in this process: (exit code, stdout, stderr). Faster than run_cli."""
    import contextlib
    import io
    import warnings

    from vqexport.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = warnings.showwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's own errors exit from inside parse_args
                code = e.code
    finally:
        warnings.showwarning = saved
    return code, out.getvalue(), err.getvalue()


# --- test tiers (issue 16) ----------------------------------------------------------------------
# Markers (pyproject.toml): `tflite` needs litert-torch or LiteRT; `slow` trains or reads the
# Fashion-MNIST set. A run whose -m expression leaves out `tflite` (make test-fast) is the fast tier:
# there those packages cannot be imported, in this process or in the CLI subprocesses, and a test
# that fails or skips for want of one is reported as failed, naming its missing mark.
# These modules import litert-torch or LiteRT when collected, so they are all `tflite` and the fast tier
# does not collect them.
TFLITE_MODULES = {"test_tflite.py", "test_tflite_load.py", "test_fuzz_load.py"}
_BLOCKER = Path(__file__).parent / "fast_tier" / "sitecustomize.py"


def _fast_tier(config) -> bool:
    from _pytest.mark.expression import Expression  # -m's own parser; pytest is pinned exactly

    expr = config.option.markexpr
    return bool(expr) and not Expression.compile(expr).evaluate(lambda name, **kwargs: name == "tflite")


def pytest_configure(config):
    config.fast_tier = None
    if not _fast_tier(config):
        return
    spec = importlib.util.spec_from_file_location("vqexport_fast_tier", _BLOCKER)
    blocker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blocker)
    already = [m for m in blocker.HEAVY if sys.modules.get(m) is not None]
    if already:
        raise pytest.UsageError(f"the fast tier cannot block {', '.join(already)}: imported before the tests")
    blocker.block()
    os.environ[blocker.FLAG] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_BLOCKER.parent), os.environ.get("PYTHONPATH")]))
    config.fast_tier = blocker.HEAVY


def pytest_ignore_collect(collection_path, config):
    if config.fast_tier and collection_path.name in TFLITE_MODULES:
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in TFLITE_MODULES:
            item.add_marker(pytest.mark.tflite)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    heavy = item.config.fast_tier
    if heavy and (report.failed or report.skipped) and call.excinfo is not None:
        text = f"{call.excinfo.value!r} {report.longrepr}"
        missing = [m for m in heavy if m in text]
        if missing:
            shown = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr  # a skip's reason
            report.outcome = "failed"
            report.longrepr = (f"{shown}\n\nfast tier: this test needs {', '.join(missing)}, which the "
                               f"fast tier blocks: mark it `tflite`")
    return report


def pytest_sessionfinish(session, exitstatus):
    heavy = session.config.fast_tier
    loaded = [m for m in heavy or () if sys.modules.get(m) is not None]
    if loaded:
        print(f"\nfast tier: {', '.join(loaded)} got imported all the same", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
