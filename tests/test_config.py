"""One source of truth: TrainConfig's fields decide the HTTP schema, the CLI and the page's form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digitlab.training.config import FIELDS, ConfigError, TrainConfig, api_fields, spec


def test_http_schema_defaults_and_limits_equal_train_config():
    from digitlab.server.routes.runs import RunRequest
    props = RunRequest.model_json_schema()["properties"]
    for s in api_fields():
        p = props[s["name"]]
        if "anyOf" in p:  # the seed: an integer, or null for a random one
            p = {**p, **next(a for a in p["anyOf"] if a.get("type") != "null")}
        assert p["default"] == s["default"], s["name"]
        for word in ("minimum", "maximum", "exclusiveMinimum"):
            assert p.get(word) == s.get(word), (s["name"], word)
        assert p.get("enum", [p["const"]] if "const" in p else None) == s.get("enum"), s["name"]
    assert set(props) - {"dataset", "name", "resume", "with_drawings"} == {s["name"] for s in api_fields()}


def test_cli_defaults_and_limits_equal_train_config():
    from digitlab.cli import build_parser
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    actions = {a.dest: a for a in train._actions}
    for name in FIELDS:
        s = spec(name)
        assert actions[name].default == s["default"], name
        assert (list(actions[name].choices) if actions[name].choices else None) == s.get("enum"), name
        if "maximum" in s:
            assert f"to {s['maximum']}" in actions[name].help, name
    assert TrainConfig() == TrainConfig(**{n: actions[n].default for n in FIELDS})


@pytest.mark.parametrize("field, value", [("epochs", 0), ("epochs", 1001), ("epochs", 2.5), ("epochs", True),
                                          ("batch_size", 0), ("learning_rate", 0), ("learning_rate", float("nan")),
                                          ("learning_rate", 2), ("seed", -1), ("seed", 2**31), ("augment", 5),
                                          ("architecture", "resnet"), ("device", "tpu"), ("threads", 257)])
def test_validate_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value}).validate()


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(ConfigError, match="batch_size: 500 is larger than the 100 training images"):
        TrainConfig(batch_size=500).validate(train_size=100)


def test_registry_matches_the_declared_architectures():
    from digitlab.models.architectures import check_declared
    check_declared()


def test_server_import_does_not_load_torch():
    code = ("import sys, time; t = time.perf_counter(); import digitlab.server.app, digitlab.server.serve; "
            "print(time.perf_counter() - t); assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
