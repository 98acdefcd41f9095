"""Where outputs may go, and write-then-rename, so that a failed run never leaves a partial file.

Every writer goes through atomic_path, which refuses a target that exists and is not a regular
file: a device, a FIFO, a socket, a folder, or a symbolic link. A link is refused rather than
followed, so `-o` never writes somewhere other than the name the user typed. The commands also
call check_outputs before any work, which adds what only they know: the files the command reads,
and the other files it writes beside the output.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ..errors import VqexportError


class OutputError(VqexportError):
    """An output path that would destroy an input, or is not a place for a regular file."""


_KINDS = ((stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def check_target(path) -> Path:
    """Refuse `path` as a file to write unless it is missing or a regular file, in a writable folder."""
    text = os.fspath(path)
    if not text:
        raise OutputError("the output name is empty")
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the folder's checks below say which
        mode = None
    except OSError as e:
        raise OutputError(f"{path}: cannot be written ({e.strerror})") from None
    if text.endswith(("/", os.sep)) or path.name in ("", ".", "..") or (mode is not None and stat.S_ISDIR(mode)):
        raise OutputError(f"{text}: names a folder; give a file name to write")
    if mode is not None and stat.S_ISLNK(mode):
        raise OutputError(f"{path}: is a symbolic link; vqexport does not write through links (name its target)")
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise OutputError(f"{path}: is {kind}; vqexport writes only regular files, and replaces no other kind")
    _check_folder(path.parent, path)
    return path


def _check_folder(folder: Path, path) -> None:
    folder = folder if str(folder) else Path(".")
    if not folder.exists():
        raise OutputError(f"{path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write in the folder {folder} (permission denied)")


def _try_writing(path: Path, shown=None) -> None:
    """Create and remove a file beside `path`: permissions alone do not tell (root, read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{shown or path}: cannot write in the folder {path.parent} ({e.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def same_file(a, b) -> bool:
    """The same file by inode (hard links, links, other spellings), or the same name once resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_outputs(outputs, inputs=()) -> None:
    """Before any work: each output may be written, none is an input, and no two are one file.

    outputs: [(path, label)], the first being -o's and the others written beside it, each label
    naming it in a message ("the .vqm written beside it"); inputs: the files the command reads
    (None entries are skipped).
    """
    first = outputs[0][0]
    seen = []
    for path, label in outputs:
        _try_writing(check_target(path))
        name = f"-o {first}" if not seen else f"-o {first}: {label}, {path},"
        for src in inputs:
            if src is not None and Path(src).exists() and same_file(path, src):
                raise OutputError(f"{name} is the input {src}; writing it would destroy the input")
        for other, other_label in seen:
            if same_file(path, other):
                raise OutputError(f"{name} would be the same file as {other_label} {other}; "
                                  "choose another output name")
        seen.append((path, label))


def check_output_folder(folder, files, inputs=()) -> Path:
    """For a command that writes `files` (names) into `folder`, which it creates when missing."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise OutputError(f"{folder}: is not a folder")
    else:
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        _check_folder(parent, folder)
        _try_writing(parent / folder.name, shown=folder)
    for src in inputs:
        if src is not None and Path(src).is_dir() and (same_file(folder, src) or _inside(folder, src)):
            raise OutputError(f"-o {folder}: is the input folder {src} or inside it; writing there would change "
                              "the input")
    for name in files:
        path = folder / name
        if folder.is_dir():
            check_target(path)
        for src in inputs:
            if src is not None and Path(src).is_file() and same_file(path, src):
                raise OutputError(f"-o {folder}: {path} is the input {src}; writing it would destroy the input")
    if folder.is_dir() and files:
        _try_writing(folder / files[0])
    return folder


def _inside(path, folder) -> bool:
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return folder in path.parents


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:  # e.g. a read-only file system, or a root-squashed network folder
        raise OutputError(f"{path}: cannot write in the folder {path.parent} ({e.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        check_target(path)  # again: something may have been put there while we worked
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
