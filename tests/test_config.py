"""The config file: validated whole, an unknown key or bad value names itself."""

import json

import pytest

from firmware import config
from firmware.config import ConfigError
from tests.conftest import modgate


def load(tree):
    return config.load(text=json.dumps(tree))


def test_defaults_are_valid():
    values = config.load()
    assert values == config.defaults()
    for key, value in values.items():
        config.check(key, value)
    config.validate(values)


def test_nested_file_overrides():
    values = load({"pacs": {"host": "pacs.example", "port": 11112}, "clip": {"frames": 5}})
    assert values["pacs.host"] == "pacs.example" and values["pacs.port"] == 11112
    assert values["clip.frames"] == 5 and values["clip.mode"] == "frames"


@pytest.mark.parametrize("tree, key, words", [
    ({"pacs": {"hots": "x"}}, "pacs.hots", "unknown key"),
    ({"pacs": {"port": 70000}}, "pacs.port", "1 to 65535"),
    ({"pacs": {"port": "104"}}, "pacs.port", "whole number"),
    ({"pacs": {"port": True}}, "pacs.port", "whole number"),
    ({"pacs": {"ae_title": "A" * 17}}, "pacs.ae_title", "16 characters"),
    ({"pacs": {"ae_title": "  "}}, "pacs.ae_title", "empty"),
    ({"clip": {"mode": "forever"}}, "clip.mode", "one of"),
    ({"clip": {"iod": "ct"}}, "clip.iod", "one of"),
    ({"acquisition": {"rate": [30]}}, "acquisition.rate", "numerator"),
    ({"patient": {"name": "a\\b"}}, "patient.name", "backslash"),
    ({"pacs": 5}, "pacs", "unknown key"),
    ({"pacs": {"port": {"x": 1}}}, "pacs.port", "not an object"),
    ({"pacs": {"tls": True}}, "pacs.ca", "CA file"),
    ({"pacs": {"cert": "c.pem"}}, "pacs.key", "go together"),
    ({"spool": {"backoff_initial": 10, "backoff_max": 1}}, "spool.backoff_max", "backoff_initial"),
    ({"clip": {"iod": "vl-endoscopic", "frames": 5}}, "clip.frames", "single-frame"),
    ([1, 2], "(top)", "object"),
])
def test_bad_values_name_the_key(tree, key, words):
    with pytest.raises(ConfigError) as caught:
        load(tree)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_not_json():
    with pytest.raises(ConfigError) as caught:
        config.load(text="{pacs: 1}")
    assert "not valid JSON" in str(caught.value)


def test_run_refuses_a_bad_config_with_the_key(tmp_path):
    path = tmp_path / "modgate.json"
    path.write_text(json.dumps({"spool": {"max_bytes": 10}}))
    result = modgate("run", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert "spool.max_bytes" in result.stderr and "must be" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content, words", [
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"pacs": {"host": "caf\xe9"}}', "not UTF-8"),
    (b'{"a": ' * 50 + b"1" + b"}" * 50, "nested deeper than any key"),
    (b" " * (2 << 20), "larger than"),
], ids=["nested-json", "latin-1", "nested-keys", "huge"])
def test_a_config_file_that_is_no_configuration_is_one_line_naming_it(tmp_path, content, words):
    path = tmp_path / "modgate.json"
    path.write_bytes(content)
    result = modgate("run", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert words in result.stderr, result.stderr
    if words != "nested deeper than any key":  # that one names the key instead
        assert str(path) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_renamed_key_is_read_under_its_new_name():
    """pacs.max_pdu, as boxes saved it before the PS3.8 D.1 name
    (pacs.maximum_length), still loads; a value it never allowed is
    refused under the new name."""
    values = config.load(text='{"pacs": {"max_pdu": 16384}}')
    assert values["pacs.maximum_length"] == 16384 and "pacs.max_pdu" not in values
    with pytest.raises(config.ConfigError) as err:
        config.load(text='{"pacs": {"max_pdu": 100}}')
    assert err.value.key == "pacs.maximum_length"
