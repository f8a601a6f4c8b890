"""The import graph keeps DESIGN.md's layers: tools -> firmware -> hal,
board -> hal, the protocol cores import neither hal nor board, nothing
imports tools, and no module imports itself round a circle. And the firmware
above the HAL does no I/O of its own: no socket, select, ssl, time or os
outside firmware/compat and the box's entry, firmware/main.py."""

import ast
import os
import re

from tests.conftest import ROOT

PACKAGES = ("firmware", "hal", "board", "tools")
CORES = ("firmware.dicom", "firmware.net", "firmware.rtv", "firmware.console")
IO_MODULES = ("socket", "select", "ssl", "time", "os")
IO_ALLOWED = ("firmware/compat/", "firmware/main.py")


def modules():
    """{module name: path} of every module of the four packages."""
    found = {}
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def imports(path, name, known):
    """The project modules a module imports, anywhere in it (a lazy import
    inside a function is an edge too)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from package import module` imports that module; importing
            # a package's own __init__ on the way is no edge of its own.
            names = ["%s.%s" % (base, a.name) for a in node.names]
            targets = [n for n in names if n in known] or [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and not _under(name, target):  # a module's own packages come with it
                out.add(target)
    return out


def graph():
    known = modules()
    return {name: imports(path, name, known) for name, path in known.items()}


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def test_imports_point_down_the_layers():
    wrong = []
    for name, targets in graph().items():
        for target in targets:
            if not _under(name, "tools") and _under(target, "tools"):
                wrong.append("%s imports %s: nothing imports tools" % (name, target))
            if _under(name, "hal") and (_under(target, "firmware") or _under(target, "board")):
                wrong.append("%s imports %s: hal is the bottom layer" % (name, target))
            if _under(name, "board") and _under(target, "firmware"):
                wrong.append("%s imports %s: a board is data and hal drivers" % (name, target))
            if any(_under(name, core) for core in CORES) and (_under(target, "hal") or _under(target, "board")):
                wrong.append("%s imports %s: a protocol core is sans-I/O" % (name, target))
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle():
    edges = graph()
    circles = []
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, "\n".join(circles)


def test_firmware_does_its_io_through_hal():
    pattern = re.compile(r"^\s*(import|from)\s+(%s)\b" % "|".join(IO_MODULES))
    found = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, "firmware")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
            if not name.endswith(".py") or rel.startswith(IO_ALLOWED):
                continue
            for number, line in enumerate(open(os.path.join(ROOT, rel), encoding="utf-8"), 1):
                if pattern.match(line):
                    found.append("%s:%d: %s" % (rel, number, line.strip()))
    assert not found, "\n".join(found)


def test_the_checks_see_a_bad_import(tmp_path):
    """The graph is read from the files themselves: a lazy import of tools
    inside a function is an edge, and so is a relative one."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from tools import cli\n    from . import sibling\n")
    known = {"firmware.x": str(path), "firmware.sibling": "", "tools": "", "tools.cli": ""}
    assert imports(str(path), "firmware.x", known) == {"tools.cli", "firmware.sibling"}


def test_firmware_reaches_hal_only_through_the_board_it_is_given():
    """Above the entry (firmware/main.py wires a board), the firmware gets
    its drivers from board.open_*: it imports neither hal nor board, so a
    board with other drivers (a MicroPython board's) runs it unchanged."""
    wrong = sorted("%s imports %s" % (name, target) for name, targets in graph().items()
                   if _under(name, "firmware") and name != "firmware.main"
                   for target in targets if _under(target, "hal") or _under(target, "board"))
    assert not wrong, "\n".join(wrong)
