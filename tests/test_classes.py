"""Datasets of K classes (2 to 256): an IDX folder with labels 0..K-1 and an optional classes.txt
trains a model with K outputs, and the summary, ONNX, TF.js, evaluation, CLI and API follow K.

The K > 10 dataset is 26 capital letters drawn as strokes (tests/letters.py), written as IDX +
classes.txt, trained end to end through the CLI and through the API.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import DatasetError, load_dataset, load_folder, write_idx
from digitlab.data.datasets import DIGITS, STEMS, with_printed
from digitlab.models import ModelStore, build
from letters import NAMES, render, write_letters
from server_util import serving
from test_cli import digitlab, one_line_error

EPOCHS = 6


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> Path:
    return write_letters(tmp_path_factory.mktemp("data") / "letters")


@pytest.fixture(scope="module")
def trained(letters, tmp_path_factory) -> Path:
    """A home holding `letters`, trained on the letters through the CLI."""
    home = tmp_path_factory.mktemp("home")
    out = digitlab("train", "--dataset", str(letters), "--epochs", str(EPOCHS), "--name", "letters", "--json", home=home)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["model"] == "letters" and result["test_accuracy"] > 0.9, result
    return home


def folder(path: Path, train_labels, test_labels, classes: str | bytes | None = None) -> Path:
    path.mkdir(parents=True)
    train_labels, test_labels = np.asarray(train_labels, np.uint8), np.asarray(test_labels, np.uint8)
    for stem, array in zip(STEMS, (np.zeros((len(train_labels), 28, 28), np.uint8), train_labels,
                                   np.zeros((len(test_labels), 28, 28), np.uint8), test_labels)):
        write_idx(path / stem, array)
    if classes is not None:
        (path / "classes.txt").write_bytes(classes.encode() if isinstance(classes, str) else classes)
    return path


def test_the_classes_come_from_the_labels_and_classes_txt(tmp_path):
    assert load_folder(folder(tmp_path / "digits", [0, 3, 9], [1])).classes == DIGITS  # as before classes.txt
    assert load_folder(folder(tmp_path / "few", [0, 3], [1])).classes == DIGITS  # a split may lack some digits
    numbered = load_folder(folder(tmp_path / "k13", [0, 12, 5], [3]))
    assert numbered.classes == tuple(str(k) for k in range(13)) and len(numbered.describe()["train_counts"]) == 13
    named = load_folder(folder(tmp_path / "pets", [0, 1, 2, 1], [2, 0], "cat\ndog\r\nbird"))
    assert named.classes == ("cat", "dog", "bird") and named.describe()["train_counts"] == [1, 2, 1]
    assert load_folder(folder(tmp_path / "two", [0, 1], [1], "no\nyes\n")).classes == ("no", "yes")
    wide = load_folder(folder(tmp_path / "k256", list(range(256)), [255], "".join(f"c{k}\n" for k in range(256))))
    assert len(wide.classes) == 256
    assert with_printed(named, 4) is named  # the printed digits join only datasets of the digits 0-9


@pytest.mark.parametrize("train, test, classes, text", [
    ([0, 1, 2], [1], "a\nb\n", "classes.txt names 2 classes (labels 0..1) label 2 in train-labels-idx1-ubyte is not one of them"),
    ([0, 1], [1], "a\nb\nc\n", "classes.txt names 3 classes (labels 0..2) but the labels stop at 1"),
    ([0, 0], [0], "only\n", "classes.txt: 1 names; a dataset has 2 to 256 classes"),
    ([0, 1], [0], "".join(f"c{k}\n" for k in range(257)), "classes.txt: 257 names; a dataset has 2 to 256 classes"),
    ([0, 1, 2], [0], "a\n\nc\n", "classes.txt: line 2 is empty"),
    ([0, 1, 2], [0], "a\nb\na\n", "classes.txt: line 3: 'a' is named twice (line 1)"),
    ([0, 1], [0], b"\xff\xfe\n", "classes.txt: not UTF-8 text"),
    ([0, 1], [0], "a\n" + "b" * 65 + "\n", "classes.txt: line 2: a class name is 1-64 printable characters"),
])
def test_bad_class_lists_are_one_line_errors(tmp_path, train, test, classes, text):
    path = folder(tmp_path / "bad", train, test, classes)
    with pytest.raises(DatasetError) as err:
        load_folder(path)
    assert text in str(err.value) and "\n" not in str(err.value), str(err.value)
    if "named twice" in text:  # and the CLI says it in one line (one case: each costs a process)
        one_line_error(digitlab("train", "--dataset", str(path), home=tmp_path / "home", check=False), text)


def test_models_have_2_to_256_outputs():
    import torch

    assert build("blog-cnn", classes=26)(torch.zeros(3, 1, 28, 28)).shape == (3, 26)
    assert build("blog-cnn")(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    for bad in (1, 257, 2.5, True):
        with pytest.raises(ValueError, match="a model has 2 to 256 classes"):
            build("blog-cnn", classes=bad)


def test_letters_through_the_cli(letters, trained, tmp_path):
    home = trained
    record = ModelStore(home).record("letters")
    assert record["classes"] == list(NAMES) and record["summary"][-1]["output_shape"] == [None, 26]
    assert "dense_1 (Dense)" in (s := digitlab("summary", "--model", "letters", home=home).stdout) \
        and "(None, 26)" in s and "Total params: 55,930" in s

    images = []
    for letter in ("K", "T", "W"):
        render(letter).save(tmp_path / f"{letter}.png")
        images.append(str(tmp_path / f"{letter}.png"))
    preds = [json.loads(line) for line in digitlab("predict", *images, "--model", "letters", "--json",
                                                      home=home).stdout.splitlines()]
    assert [p["class"] for p in preds] == ["K", "T", "W"], preds
    assert all(len(p["probabilities"]) == 26 and p["digit"] == NAMES.index(p["class"]) for p in preds)
    text = digitlab("predict", images[0], "--model", "letters", home=home).stdout
    assert text.startswith(f"{images[0]}: K (") and ", class 10" in text, text

    report = json.loads(digitlab("evaluate", "--model", "letters", "--json", home=home).stdout)
    assert len(report["confusion"]) == 26 and all(len(row) == 26 for row in report["confusion"])
    assert len(report["per_class_accuracy"]) == 26 and report["count"] == 26 * 15 and report["accuracy"] > 0.9
    assert report["classes"] == list(NAMES)
    assert sum(map(sum, report["confusion"])) == 26 * 15
    printed = digitlab("evaluate", "--model", "letters", home=home).stdout
    assert "per class: A: " in printed and " Z: " in printed and len(printed.splitlines()) == 3 + 1 + 26

    # a model of 26 classes goes on training only on 26 classes; the digits get a digits model
    one_line_error(digitlab("train", "--resume", "letters", "--epochs", "1", home=home, check=False),
                   "model 'letters' has 26 classes, dataset sample has 10")
    one_line_error(digitlab("evaluate", "--model", "letters", "--dataset", "sample", home=home, check=False),
                   "the model has 26 classes but dataset sample has 10")
    one_line_error(digitlab("train", "--dataset", str(letters), "--with-drawings", "--epochs", "1", home=home,
                            check=False), "with_drawings: the taught drawings are digits")
    resumed = json.loads(digitlab("train", "--resume", "letters", "--dataset", str(letters), "--epochs", "1",
                                  "--name", "letters-more", "--json", home=home).stdout)
    assert resumed["epochs"] == EPOCHS + 1 and ModelStore(home).record("letters-more")["classes"] == list(NAMES)


def test_letters_onnx_and_tfjs_round_trip(trained, letters, tmp_path):
    """The ONNX export has 26 outputs; the TF.js export carries the names, and imports back as the same model."""
    import onnx

    from digitlab.inference import Predictor
    from digitlab.models import tfjs

    home = trained
    store = ModelStore(home)
    onnx_path = tmp_path / "letters.onnx"
    digitlab("export", "letters", "--format", "onnx", "--out", str(onnx_path), home=home)
    graph = onnx.load(str(onnx_path)).graph
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 26
    digitlab("export", "letters", "--format", "tfjs", "--out", str(tmp_path / "tfjs"), home=home)
    model_json = json.loads((tmp_path / "tfjs" / "model.json").read_text())
    assert model_json["modelTopology"]["config"]["layers"][-1]["config"]["units"] == 26
    assert model_json["userDefinedMetadata"]["digitlab"]["classes"] == list(NAMES)
    digitlab("import", str(tmp_path / "tfjs"), "--name", "letters-back", home=home)
    back = store.record("letters-back")
    assert back["classes"] == list(NAMES) and back["summary"][-1]["output_shape"] == [None, 26]
    x = load_dataset(str(letters)).test_images[:200].astype(np.float32) / 255
    t = store.record("letters")["calibration"]["temperature"]
    want = Predictor(store.onnx_path("letters")).probabilities(x)  # softmax(logits / T)
    got = Predictor(store.onnx_path("letters-back")).probabilities(x)  # T baked into the last layer
    assert got.shape == (200, 26) and np.abs(got - want).max() < 1e-5, (t, np.abs(got - want).max())
    # without our metadata the classes are numbered
    del model_json["userDefinedMetadata"]
    (tmp_path / "tfjs" / "model.json").write_text(json.dumps(model_json))
    assert tfjs.read_model(tmp_path / "tfjs").classes == [str(k) for k in range(26)]


def test_letters_tfjs_export_loads_in_tfjs(trained, letters, tmp_path):
    """tf.loadLayersModel reads the 26-class export and predicts what onnxruntime predicts."""
    from test_tfjs import NODE, run_node, write_f32

    if NODE is None:
        pytest.skip("node is not installed")
    from digitlab.inference import Predictor

    x = load_dataset(str(letters)).test_images[:100].astype(np.float32) / 255
    digitlab("export", "letters", "--format", "tfjs", "--out", str(tmp_path / "tfjs"), home=trained)
    info = run_node("tfjs_predict.js", tmp_path / "tfjs", write_f32(tmp_path / "x.f32", x), tmp_path / "p.f32")
    got = np.fromfile(tmp_path / "p.f32", dtype="<f4").reshape(-1, 26)
    assert info["outputShape"] == [100, 26] and info["metadata"]["digitlab"]["classes"] == list(NAMES)
    want = Predictor(ModelStore(trained).onnx_path("letters")).probabilities(x)
    assert np.abs(got - want).max() < 1e-5


def test_letters_through_the_api(letters, tmp_path):
    """`serve --dataset FOLDER` offers the folder under its name; a run trains K outputs; predict and
    evaluation answer in K classes."""
    with serving(tmp_path / "home", "--dataset", str(letters)) as server:
        client = server.client
        entry = next(d for d in client.get("/api/datasets").json()["datasets"] if d["name"] == "letters")
        assert entry["classes"] == list(NAMES) and entry["train_counts"] == [60] * 26
        started = client.post("/api/runs", json={"dataset": "letters", "epochs": EPOCHS, "name": "api-letters"})
        assert started.status_code == 201, started.text
        run = server.wait_run(started.json()["id"], timeout=240)
        assert run["state"] == "finished", run
        model = client.get("/api/models/api-letters").json()
        assert model["classes"] == list(NAMES) and model["test_accuracy"] > 0.9
        buf = io.BytesIO()
        render("X").save(buf, format="PNG")
        said = client.post("/api/models/api-letters/predict", content=buf.getvalue(),
                           headers={"content-type": "image/png"}).json()
        assert len(said["probabilities"]) == 26 and NAMES[said["digit"]] == "X", said
        report = client.get("/api/models/api-letters/evaluation").json()
        assert report["classes"] == list(NAMES) and len(report["confusion"]) == 26
        summary = client.get("/api/models/api-letters/summary").json()
        rows = summary["layers"] if isinstance(summary, dict) and "layers" in summary else summary
        assert rows[-1]["output_shape"] == [None, 26]
