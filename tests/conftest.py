import subprocess
import sys

import numpy as np
import pytest
import torch


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
