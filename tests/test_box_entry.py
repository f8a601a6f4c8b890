"""firmware/main.py is the box's entry and `modgate run` (tools/cli.py) is
the same function; the box's code never reaches up into the host's tools/
(../shared/DESIGN.md: tools -> firmware -> hal, nothing imports tools)."""

import ast
import json
import os
import sys

import firmware.main
from tests.conftest import ROOT, modgate, run
from tools import cli


def test_modgate_run_is_the_box_entry():
    args = cli.build_parser().parse_args(["run", "--config", "x.json", "--console"])
    assert args.func is firmware.main.run
    assert (args.config, args.console) == ("x.json", "board")


def test_a_bad_config_stops_either_entry_with_the_same_line_and_status_2(tmp_path):
    path = tmp_path / "modgate.json"
    path.write_text(json.dumps({"spool": {"max_bytes": 10}}))
    box = run([sys.executable, "-m", "firmware.main", "--config", str(path)], timeout=60, cwd=ROOT)
    host = modgate("run", "--config", str(path), timeout=60)
    assert box.returncode == host.returncode == 2
    assert box.stderr == host.stderr
    assert box.stderr.startswith("modgate run: error: ") and "spool.max_bytes" in box.stderr
    assert len(box.stderr.splitlines()) == 1


def imported_modules(path):
    """Every module a file imports, at the top or inside a function."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_nothing_on_the_box_imports_tools():
    offenders = []
    for package in ("firmware", "hal", "board"):
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    offenders += ["%s: %s" % (os.path.relpath(path, ROOT), module)
                                  for module in imported_modules(path)
                                  if module == "tools" or module.startswith("tools.")]
    assert offenders == []
