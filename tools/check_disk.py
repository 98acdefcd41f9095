"""Fail early, in one line, when the disk cannot hold the pinned install.

pip's own failure comes minutes later, halfway through unpacking torch, as an OSError traceback
that does not say how much room was needed. Usage: check_disk.py DIR GIB
"""
import shutil
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_disk.py DIR GIB", file=sys.stderr)
        return 2
    path, need = argv[0], float(argv[1])
    free = shutil.disk_usage(path).free / 2**30
    if free < need:
        print(f"error: {path}: {free:.1f} GiB free, the pinned install (.venv, .venv-tf216, "
              f"Android tools) needs about {need:.0f} GiB", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
