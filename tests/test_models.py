import json
import pickle

import pytest
import torch

from digitlab.models import DamagedModel, ModelExists, ModelStore, StoreError, build, format_summary, layer_table
from digitlab.models.export import onnx_bytes


def test_blog_cnn_matches_the_blog_table():
    rows = layer_table(build("blog-cnn"))
    assert [(r["type"], r["output_shape"], r["params"]) for r in rows] == [
        ("Conv2D", [None, 26, 26, 8], 80),
        ("MaxPooling2D", [None, 13, 13, 8], 0),
        ("Conv2D", [None, 11, 11, 16], 1168),
        ("MaxPooling2D", [None, 5, 5, 16], 0),
        ("Flatten", [None, 400], 0),
        ("Dense", [None, 128], 51328),
        ("Dense", [None, 10], 1290),
    ]
    text = format_summary(rows)
    assert "Total params: 53,866" in text and "max_pooling2d_1 (MaxPooling2D)" in text


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'x'"):
        build("x")


def _save(store, name, seed=0):
    torch.manual_seed(seed)
    model = build("blog-cnn")
    return model, store.save(name, model, {"architecture": "blog-cnn", "dataset": "sample"}, onnx=onnx_bytes(model))


def test_save_load_list_delete(tmp_path):
    store = ModelStore(tmp_path)
    model, record = _save(store, "a")
    _save(store, "b", seed=1)
    loaded, rec = store.load("a")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert rec["parameters"] == 53866
    assert [r["name"] for r in store.list()] == ["b", "a"]
    assert store.resolve(None) == "b"
    store.delete("b")
    assert [r["name"] for r in store.list()] == ["a"]
    with pytest.raises(StoreError, match="no model named 'b'"):
        store.load("b")


def test_resave_replaces_files_and_keeps_one_version(tmp_path):
    store = ModelStore(tmp_path)
    _save(store, "m", seed=0)
    _, rec = _save(store, "m", seed=1)
    files = sorted(p.name for p in store.folder("m").iterdir())
    assert files == sorted(["model.json", rec["weights"], rec["onnx"]])


@pytest.mark.parametrize("name", ["../x", "a/b", "a\x00b", "x" * 4000, "", ".hidden", "..", "a..b"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(StoreError, match="invalid model name"):
        ModelStore(tmp_path).folder(name)


def test_failed_save_keeps_previous_model(tmp_path, monkeypatch):
    store = ModelStore(tmp_path)
    model, first = _save(store, "m")
    import digitlab.models.store as store_mod

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    import safetensors.torch
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        store.save("m", build("blog-cnn"), {"architecture": "blog-cnn"})
    loaded, rec = store.load("m")
    assert rec["weights"] == first["weights"]
    assert torch.equal(loaded.state_dict()["0.weight"], model.state_dict()["0.weight"])
    assert not [p for p in store.folder("m").iterdir() if p.name.startswith(".")]


def test_planted_pickle_is_never_loaded(tmp_path):
    store = ModelStore(tmp_path)
    _save(store, "m")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = store.folder("m")
    rec = json.loads((folder / "model.json").read_text())
    (folder / rec["weights"]).write_bytes(pickle.dumps(Evil()))
    (folder / "model.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(StoreError, match="cannot load weights"):
        store.load("m")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "abc\n\n", " abc", "abc "])
def test_names_with_trailing_or_leading_whitespace_are_refused(tmp_path, name):
    """`abc\\n` used to pass the pattern and create a second folder that listed as `abc`."""
    with pytest.raises(StoreError, match="invalid model name"):
        ModelStore(tmp_path).folder(name)


@pytest.mark.parametrize("field, value", [("weights", "/etc/passwd"), ("weights", "../../../../etc/passwd"),
                                          ("onnx", "/etc/passwd"), ("weights", "sub/weights-ab.safetensors"),
                                          ("weights", 42)])
def test_planted_record_paths_are_never_followed(tmp_path, field, value):
    store = ModelStore(tmp_path)
    _save(store, "good")
    _save(store, "m")
    record_file = store.folder("m") / "model.json"
    rec = json.loads(record_file.read_text())
    rec[field] = value
    record_file.write_text(json.dumps(rec))
    for read in (lambda: store.load("m"), lambda: store.onnx_path("m"), lambda: store.open_file("m", field),
                 lambda: store.file_path("m", "weights")):
        with pytest.raises(DamagedModel, match="damaged"):
            read()
    listed = {r["name"]: r for r in store.list(damaged=True)}
    assert "damaged" in listed["m"] and "damaged" not in listed["good"]
    assert [r["name"] for r in store.list()] == ["good"]  # never "the newest" to use
    store.delete("m")  # the user can still remove it
    assert [r["name"] for r in store.list(damaged=True)] == ["good"]


def test_links_out_of_the_store_are_never_followed(tmp_path):
    store = ModelStore(tmp_path / "home")
    _, rec = _save(store, "m")
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"secret")
    weights = store.folder("m") / rec["weights"]
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(DamagedModel, match="link"):
        store.open_file("m", "weights")
    elsewhere = tmp_path / "elsewhere"
    _save(ModelStore(elsewhere), "x")
    (store.root / "linked").symlink_to(elsewhere / "models" / "x")
    with pytest.raises(DamagedModel, match="link"):
        store.record("linked")
    store.delete("linked")
    assert (elsewhere / "models" / "x" / "model.json").is_file()  # the link went, not its target


def test_open_file_survives_a_save_that_replaces_it(tmp_path):
    store = ModelStore(tmp_path)
    _save(store, "m", seed=0)
    fh, name = store.open_file("m", "weights")
    first = fh.read(10)
    _save(store, "m", seed=1)
    assert not (store.folder("m") / name).exists()  # replaced on disk...
    rest = fh.read()  # ...but the open download reads to the end
    fh.close()
    assert len(first) + len(rest) > 200_000


def test_check_free_refuses_to_replace_another_model(tmp_path):
    store = ModelStore(tmp_path)
    _save(store, "victim")
    with pytest.raises(ModelExists, match="exists"):
        store.check_free("victim")
    with pytest.raises(ModelExists):
        store.check_free("victim", resume="other")
    store.check_free("victim", resume="victim")
    store.check_free("victim", force=True)
    store.check_free("new")
