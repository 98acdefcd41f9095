"""Silence what native libraries write straight to file descriptors 1 and 2.

The converters' C++ logging (absl) prints "oneDNN custom operations are on ..." and similar lines
when it is imported and when the converter runs, before TF_CPP_MIN_LOG_LEVEL can apply, and
Python's redirect_stdout/redirect_stderr cannot reach it: it writes to the descriptors. The
converters' real failures still reach the user as exceptions, which are raised after the
descriptors are restored.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile


class Captured:
    """What was silenced, for an error message: the last line that names an error."""

    def __init__(self):
        self.text = ""

    def error_line(self) -> str:
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        for ln in reversed(lines):
            if "error" in ln.lower():
                return _ANSI.sub("", ln)[:300]
        return _ANSI.sub("", lines[-1])[:300] if lines else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def silenced():
    """Send fds 1 and 2 (and Python's sys.stdout) to a scratch file for the duration.

    Yields a Captured whose .text holds all of it once the block has ended (also when it raised).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    captured = Captured()
    try:
        with tempfile.TemporaryFile() as sink:
            python_out = io.StringIO()
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                with contextlib.redirect_stdout(python_out):
                    yield captured
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                sink.seek(0)
                captured.text = python_out.getvalue() + sink.read().decode("utf-8", "replace")
    finally:
        for fd in saved:
            os.close(fd)
