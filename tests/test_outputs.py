"""Where -o may write: never over an input, never over anything but a regular file, and a
user's mistake is one line with exit 2, leaving every file as it was and no new file behind."""
import os
import shutil
import socket
import stat
import sys

import pytest

from vqexport import write_vqm
from vqexport.errors import VqexportError

from conftest import cli, run_cli


@pytest.fixture
def d(tmp_path, torchscript_cnn):
    """A folder holding the model as inp.pt and its compressed good.vqm."""
    shutil.copyfile(torchscript_cnn, tmp_path / "inp.pt")
    code, _, err = run_cli("compress", tmp_path / "inp.pt", "-o", tmp_path / "good.vqm", "--quiet")
    assert code == 0, err
    return tmp_path


def snapshot(folder):
    """Every entry under `folder`: its kind, and the bytes of regular files."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), st.st_ino,
                                              open(p, "rb").read() if stat.S_ISREG(st.st_mode) else os.readlink(p)
                                              if stat.S_ISLNK(st.st_mode) else None)
    return out


def refused(argv, expect, folder):
    """Run the CLI and require exit 2, one line naming `expect`, and `folder` exactly as it was."""
    before = snapshot(folder)
    code, stdout, stderr = cli(*argv)  # in this process: the same main(), without a new interpreter
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqexport: error: "), stderr
    assert "Traceback" not in stderr
    for text in expect:
        assert text in lines[0], lines[0]
    assert snapshot(folder) == before, "a file was changed, replaced, or left behind"


# -- item 3: an output that is an input, or that another output of the same run collides with ----
SAME = [
    (["compress", "{d}/inp.pt", "-o", "{d}/inp.pt"], ["inp.pt is the input", "destroy"]),
    (["compress", "{d}/inp.pt", "-o", "{d}/sub/../inp.pt"], ["is the input"]),  # another spelling
    (["to-tflite", "{d}/inp.pt", "-o", "{d}/inp.pt"], ["inp.pt is the input"]),
    (["to-onnx", "{d}/inp.pt", "-o", "{d}/inp.vqm"], ["the .vqm written beside it", "same file as the output"]),
    (["to-onnx", "{d}/good.vqm", "-o", "{d}/good.vqm"], ["good.vqm is the input"]),
    (["to-tflite", "{d}/good.vqm", "--model", "{d}/inp.pt", "-o", "{d}/inp.pt"], ["is the input", "inp.pt"]),
    (["to-onnx", "{d}/inp.pt", "-o", "{d}/hard.onnx"], ["hard.onnx is the input"]),  # a hard link of inp.pt
    (["to-onnx", "{d}/inp.pt", "-o", "{d}/x.onnx"], ["the .vqm written beside it, ", "x.vqm, is the input"]),
]


@pytest.mark.parametrize("argv,expect", SAME)
def test_output_that_is_an_input_is_refused(d, argv, expect):
    (d / "sub").mkdir()
    os.link(d / "inp.pt", d / "hard.onnx")
    os.link(d / "inp.pt", d / "x.vqm")  # the sibling .vqm of x.onnx is the input by inode
    refused([a.format(d=d) for a in argv], expect, d)


def test_sweep_never_writes_over_its_input(d, tmp_path_factory):
    # A model named like one of sweep's outputs, in the output folder.
    os.replace(d / "inp.pt", d / "results.md")
    refused(["sweep", d / "results.md", "--quick", "-o", d], ["results.md is the input", "destroy"], d)
    # The output folder inside an image-folder data set would add files to the data.
    data = tmp_path_factory.mktemp("images")
    (data / "0").mkdir()
    refused(["sweep", d / "results.md", "--quick", "--data", data, "-o", data / "out"],
            ["is the input folder", str(data)], data)
    refused(["sweep", d / "results.md", "--quick", "-o", d / "good.vqm"], ["good.vqm: is not a folder"], d)


def test_check_outputs_compares_inodes_and_resolved_names(tmp_path):
    from vqexport.util.fileio import OutputError, check_outputs

    a = tmp_path / "a.pt"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.pt")
    os.symlink("a.pt", tmp_path / "s.pt")
    check_outputs([(tmp_path / "c.vqm", "the output")], inputs=[a, None])
    with pytest.raises(OutputError, match="is the input"):
        check_outputs([(tmp_path / "b.pt", "the output")], inputs=[tmp_path / "s.pt"])
    os.symlink(tmp_path, tmp_path / "alias")
    with pytest.raises(OutputError, match="same file as the output"):
        check_outputs([(tmp_path / "c.vqm", "the output"), (tmp_path / "alias" / "c.vqm", "a sibling")])


# -- item 4: devices, FIFOs, sockets, folders and links are never replaced ---------------------------
def test_non_regular_outputs_are_refused(d):
    os.mkfifo(d / "fifo.vqm")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.vqm"))
    os.symlink("inp.pt", d / "link.vqm")  # to an input
    (d / "target.vqm").write_bytes(b"unrelated")
    os.symlink("target.vqm", d / "other.vqm")  # to some other file
    os.symlink("nowhere.vqm", d / "dangling.vqm")
    try:
        for name, kind in (("fifo.vqm", "is a FIFO"), ("sock.vqm", "is a socket"),
                           ("link.vqm", "is a symbolic link"), ("other.vqm", "is a symbolic link"),
                           ("dangling.vqm", "is a symbolic link")):
            refused(["compress", d / "inp.pt", "-o", d / name], [name, kind], d)
        refused(["to-onnx", d / "inp.pt", "-o", d / "fifo.onnx", "--quiet"], ["fifo.vqm", "is a FIFO"], d)
    finally:
        sock.close()
    assert not (d / "nowhere.vqm").exists()


def test_a_device_is_not_replaced(d):
    # A node of its own, not /dev/null: the code before this fix, run as root, replaced the real one.
    dev = d / "null.vqm"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    refused(["compress", d / "inp.pt", "-o", dev], ["null.vqm: is a character device"], d)
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_atomic_path_checks_the_target_again_before_renaming(tmp_path):
    """Every writer goes through atomic_path: a link or FIFO made while it works is not replaced."""
    from vqexport.util.fileio import atomic_path

    out = tmp_path / "m.vqm"
    with pytest.raises(VqexportError, match="symbolic link"):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"new")
            os.symlink("elsewhere", out)
    assert os.readlink(out) == "elsewhere"
    assert [p.name for p in tmp_path.iterdir()] == ["m.vqm"], "the temporary file was left behind"
    os.mkfifo(tmp_path / "f.vqm")
    with pytest.raises(VqexportError, match="FIFO"):
        with atomic_path(tmp_path / "f.vqm"):
            pass


def test_api_writers_refuse_links(tmp_path, torchscript_cnn):
    import vqexport

    cm = vqexport.compress(vqexport.load_model(torchscript_cnn), "kmeans", k=4, min_size=0)
    (tmp_path / "real.vqm").write_bytes(b"keep")
    os.symlink("real.vqm", tmp_path / "link.vqm")
    with pytest.raises(VqexportError, match="symbolic link"):
        write_vqm(cm, tmp_path / "link.vqm")
    assert (tmp_path / "real.vqm").read_bytes() == b"keep"


# -- item 11: folders, and folders that cannot be written ------------------------------------------
@pytest.mark.parametrize("out,expect", [(".", ".: names a folder"), ("{d}", "names a folder"),
                                        ("", "the output name is empty"),
                                        ("{d}/new/", "new/: names a folder"),
                                        ("{d}/missing/m.vqm", "the folder {d}/missing does not exist"),
                                        ("{d}/good.vqm/m.vqm", "good.vqm is not a folder")])
@pytest.mark.parametrize("command", ["compress", "to-onnx"])
def test_output_folder_mistakes(d, command, out, expect):
    refused([command, d / "inp.pt", "-o", out.format(d=d)], [expect.format(d=d)], d)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_in_a_folder_nobody_can_write(d):
    refused(["compress", d / "inp.pt", "-o", "/proc/m.vqm"], ["/proc/m.vqm: cannot write in the folder /proc"], d)
    refused(["sweep", d / "inp.pt", "--quick", "-o", "/proc/vqexport/sweep"],
            ["/proc/vqexport/sweep: cannot write in the folder /proc"], d)


@pytest.mark.skipif(os.geteuid() == 0 or sys.platform == "win32", reason="root writes into read-only folders")
def test_output_in_a_read_only_folder(d):
    ro = d / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(["to-tflite", d / "inp.pt", "-o", ro / "m.tflite"], ["cannot write in the folder"], d)
    finally:
        ro.chmod(0o755)
