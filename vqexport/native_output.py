"""Silence what native libraries write straight to file descriptors 1 and 2.

TensorFlow's C++ logging (absl) prints "Unable to register cuDNN factory ..." and similar lines
when it is imported and when the converter runs, before TF_CPP_MIN_LOG_LEVEL can apply, and
Python's redirect_stdout/redirect_stderr cannot reach it: it writes to the descriptors. The
converters' real failures still reach the user as exceptions, which are raised after the
descriptors are restored.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile


@contextlib.contextmanager
def silenced():
    """Send fds 1 and 2 (and Python's sys.stdout) to a scratch file for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)
