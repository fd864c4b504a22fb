"""TF.js interop, both ways, against the real @tensorflow/tfjs 4.22 in Node (its pure-JS CPU backend).

- `digitlab export --format tfjs` -> `tf.loadLayersModel` predicts what onnxruntime predicts;
- a model built and trained in TF.js, saved as `downloads://` saves it -> `digitlab import` ->
  the same predictions from the ONNX export and from PyTorch; it evaluates and trains further;
- the API's tfjs/model.json loads over HTTP; its routes answer 404/409 like the ONNX route;
- models that are not the blog CNN, or broken files, are refused in one line that names the
  first offending layer (or file), and the store is left as it was.

The Node scripts are in tests/node/. Only a missing `node` skips the tests that need it.
"""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digitlab.inference.confidence import of_record
from digitlab.models import ModelStore
from digitlab.models import tfjs
from server_util import serving
from test_cli import digitlab, one_line_error

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "node"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")
TOLERANCE = 1e-5
BLOG_NAMES = ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dense_1"]


def run_node(script: str, *args, timeout: float = 300) -> dict:
    """Run a tests/node script; it prints one JSON line last."""
    package = ROOT / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
    if not package.is_file():
        pytest.fail("@tensorflow/tfjs is not installed: run `npm ci` (make test does)")
    assert json.loads(package.read_text())["version"] == "4.22.0"
    proc = subprocess.run([NODE, str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_f32(path: Path, array: np.ndarray) -> Path:
    np.ascontiguousarray(array, dtype="<f4").tofile(path)
    return path


def read_probs(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4").reshape(-1, 10)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_home(trained_home: Path, home: Path) -> ModelStore:
    shutil.copytree(trained_home / "models", home / "models")
    return ModelStore(home)


def torch_probabilities(store: ModelStore, name: str, x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    import torch

    model, _ = store.load(name)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)[:, None]))
    return torch.softmax(logits.double() / temperature, dim=1).numpy()


@pytest.fixture(scope="module")
def sample():
    from digitlab.data import load_dataset
    return load_dataset("sample")


@pytest.fixture(scope="module")
def test_images(sample, tmp_path_factory):
    """The first 1,000 test images of the embedded sample, as floats and as a file for Node."""
    x = sample.test_images[:1000].astype(np.float32) / 255
    return x, sample.test_labels[:1000], write_f32(tmp_path_factory.mktemp("images") / "test_x.f32", x)


@pytest.fixture(scope="module")
def tfjs_saved(sample, test_images, tmp_path_factory):
    """The blog CNN built and trained briefly in TF.js, saved as downloads:// saves it (plus some
    untrained models that are not the blog CNN); its own predictions of the test images."""
    if NODE is None:
        pytest.skip("node is not installed")
    data = tmp_path_factory.mktemp("tfjs-data")
    write_f32(data / "train_x.f32", sample.train_images[:128].astype(np.float32) / 255)
    sample.train_labels[:128].astype(np.uint8).tofile(data / "train_y.u8")
    shutil.copyfile(test_images[2], data / "test_x.f32")
    out = tmp_path_factory.mktemp("tfjs-saved")
    return out, run_node("tfjs_train_save.js", out, data, timeout=600)


@pytest.fixture
def exported(trained_home, tmp_path) -> Path:
    """The trained model exported as a TF.js folder (model.json + group1-shard1of1.bin)."""
    out = tmp_path / "exported"
    tfjs.write_folder(ModelStore(trained_home), "base", out)
    return out


# --- the layers and layouts, without Node --------------------------------------------------------

def test_tfjs_layers_are_the_architectures_layers():
    """tfjs.py describes each architecture without torch; it must be the torch model layer for layer."""
    from torch import nn

    from digitlab.models import ARCHITECTURES, build, layer_table

    assert set(tfjs.ARCHITECTURES) == set(ARCHITECTURES)
    for name, layers in tfjs.ARCHITECTURES.items():
        model = build(name)
        rows = layer_table(model)
        steps = tfjs.walk(layers)
        assert [(layer.name, layer.kind) for layer in layers] == [(r["name"], r["type"]) for r in rows]
        assert [int(sum(np.prod(s) for s in tfjs.keras_shapes(step).values())) for step in steps] == \
            [r["params"] for r in rows]
        expected = {k: v for step in steps if step.layer.torch for k, v in tfjs.torch_shapes(step).items()}
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
        children = list(model.children())
        weighted = [i for i, m in enumerate(children) if isinstance(m, (nn.Conv2d, nn.Linear))]
        activations = ["relu" if i + 1 < len(children) and isinstance(children[i + 1], nn.ReLU)
                       else "softmax" if i == weighted[-1] else "linear" for i in weighted]
        assert [layer.activation for layer in layers if layer.torch] == activations


def test_flatten_order_and_layouts_round_trip():
    """Keras flattens NHWC: the first dense kernel's rows are permuted so both compute the same."""
    rng = np.random.default_rng(0)
    steps = {s.layer.name: s for s in tfjs.walk(tfjs.ARCHITECTURES["blog-cnn"])}
    dense = steps["dense"]
    assert dense.image == (5, 5, 16)
    weight, bias = rng.normal(size=(128, 400)).astype(np.float32), rng.normal(size=128).astype(np.float32)
    kernel, _ = tfjs.to_keras(dense, weight, bias)
    chw = rng.normal(size=(16, 5, 5))  # float64: the sums below differ only in their order
    np.testing.assert_allclose(chw.transpose(1, 2, 0).reshape(-1) @ kernel.astype(np.float64),
                               weight.astype(np.float64) @ chw.reshape(-1), rtol=1e-12)
    for step in steps.values():
        if step.layer.torch:
            shapes = tfjs.torch_shapes(step)
            w, b = (rng.normal(size=s).astype(np.float32) for s in shapes.values())
            k, kb = tfjs.to_keras(step, w, b)
            assert list(k.shape) == tfjs.keras_shapes(step)["kernel"]
            back = tfjs.to_torch(step, k, kb)
            assert np.array_equal(back[0], w) and np.array_equal(back[1], b)


def test_export_then_read_back_gives_the_same_weights(trained_home, exported):
    from safetensors.numpy import load_file

    store = ModelStore(trained_home)
    model = json.loads((exported / "model.json").read_text())
    assert model["format"] == "layers-model"
    topology = model["modelTopology"]
    assert topology["class_name"] == "Sequential" and topology["backend"] == "tensor_flow.js"
    assert topology["keras_version"].startswith("digitlab")
    layers = topology["config"]["layers"]
    assert [layer["config"]["name"] for layer in layers] == BLOG_NAMES
    assert layers[0]["config"]["batch_input_shape"] == [None, 28, 28, 1]
    assert layers[-1]["config"]["activation"] == "softmax"
    group = model["weightsManifest"][0]
    assert group["paths"] == ["group1-shard1of1.bin"]
    assert [w["name"] for w in group["weights"]] == [f"{n}/{k}" for n in ("conv2d", "conv2d_1", "dense", "dense_1")
                                                     for k in ("kernel", "bias")]
    assert (exported / "group1-shard1of1.bin").stat().st_size == 53866 * 4
    original = load_file(str(store.file_path("base", "weights")))
    back = tfjs.read_model(exported)
    assert back.architecture == "blog-cnn" and back.layer_names == BLOG_NAMES
    assert set(back.state) == set(original)
    assert all(np.array_equal(back.state[k], original[k]) for k in original if not k.startswith("9."))
    t = of_record(store.record("base"))["temperature"]  # baked into the last layer: logits / T
    assert model["userDefinedMetadata"]["digitlab"]["temperature"] == t
    for k in ("9.weight", "9.bias"):
        np.testing.assert_allclose(back.state[k] * t, original[k], rtol=1e-6, atol=1e-7)


def test_tfjs_conversion_needs_no_torch(trained_home, tmp_path):
    code = ("import sys; from digitlab.models import ModelStore, tfjs; import digitlab.server.app; "
            f"m = tfjs.export_model(ModelStore({str(trained_home)!r}), 'base'); "
            f"tfjs.read_model(tfjs.write_folder(ModelStore({str(trained_home)!r}), 'base', "
            f"__import__('pathlib').Path({str(tmp_path / 'x')!r}))[1]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print(len(m.shard))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == str(53866 * 4), proc.stderr


# --- 1. export -> TF.js ----------------------------------------------------------------------------

@needs_node
def test_exported_model_loads_in_tfjs_with_onnxruntimes_probabilities(trained_home, test_images, tmp_path):
    from digitlab.inference import Predictor

    x, labels, images = test_images
    out = tmp_path / "tfjs"
    said = digitlab("export", "base", "--format", "tfjs", "--out", str(out), home=trained_home).stdout
    assert "model.json" in said and sorted(p.name for p in out.iterdir()) == ["group1-shard1of1.bin", "model.json"]
    info = run_node("tfjs_predict.js", out, images, tmp_path / "probs.f32")
    store = ModelStore(trained_home)
    summary = store.record("base")["summary"]
    assert [layer["name"] for layer in info["layers"]] == [r["name"] for r in summary] == BLOG_NAMES
    assert [layer["outputShape"] for layer in info["layers"]] == [r["output_shape"] for r in summary]
    assert info["layers"][-1]["activation"] == "softmax" and info["inputShape"] == [None, 28, 28, 1]
    t = of_record(store.record("base"))["temperature"]  # fitted after training; the ONNX has it too
    assert info["metadata"]["digitlab"]["model"] == "base" and info["metadata"]["digitlab"]["temperature"] == t
    got = read_probs(tmp_path / "probs.f32")
    want = Predictor(store.onnx_path("base")).probabilities(x)
    diff = float(np.abs(got - want).max())
    print(f"\nexport (T={t:.3f}): tfjs vs onnxruntime, 1,000 images: max abs difference {diff:.3g}")
    assert got.shape == (1000, 10) and diff < TOLERANCE
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert (want.argmax(1) == labels).mean() > 0.9  # a trained model, not a degenerate one


@needs_node
def test_calibration_temperature_is_baked_into_the_last_layer(trained_home, test_images, tmp_path):
    x, _, _ = test_images
    store = copy_home(trained_home, tmp_path / "home")
    record_file = store.folder("base") / "model.json"
    record = json.loads(record_file.read_text())
    record["calibration"] = {"temperature": 2.5}
    record_file.write_text(json.dumps(record))
    out = tmp_path / "tfjs"
    tfjs.write_folder(store, "base", out)
    assert json.loads((out / "model.json").read_text())["userDefinedMetadata"]["digitlab"]["temperature"] == 2.5
    images = write_f32(tmp_path / "x.f32", x[:200])
    run_node("tfjs_predict.js", out / "model.json", images, tmp_path / "probs.f32")
    got = read_probs(tmp_path / "probs.f32")
    calibrated = torch_probabilities(store, "base", x[:200], temperature=2.5)
    plain = torch_probabilities(store, "base", x[:200])
    diff = float(np.abs(got - calibrated).max())
    print(f"\ncalibrated export (T=2.5): tfjs vs torch softmax(logits / T): max abs difference {diff:.3g}")
    assert diff < TOLERANCE and np.abs(got - plain).max() > 0.01


# --- 2. TF.js -> import ----------------------------------------------------------------------------

@needs_node
def test_model_trained_in_tfjs_imports_and_predicts_the_same(tfjs_saved, sample, test_images, tmp_path):
    from digitlab.inference import Predictor

    out, info = tfjs_saved
    x, _, _ = test_images
    assert all(info["weightsChanged"]) and info["trained"] == 128
    print(f"\ntfjs trained {info['trained']} images in {info['trainSeconds']:.1f} s, loss {info['loss']}")
    saved = out / "blog"
    assert info["saved"]["blog"] == ["blog-from-tfjs.json", "blog-from-tfjs.weights.bin"]
    home = tmp_path / "home"
    said = digitlab("import", str(saved), "--name", "from-tfjs", home=home).stdout
    assert "as model from-tfjs (blog-cnn, 53,866 parameters)" in said
    store = ModelStore(home)
    record = store.record("from-tfjs")
    assert record["architecture"] == "blog-cnn" and record["classes"] == [str(d) for d in range(10)]
    assert record["dataset_name"] == "imported" and "dataset" not in record and record["epochs"] == 0
    assert [r["name"] for r in record["summary"]] == BLOG_NAMES
    imported = record["provenance"]["imported"]
    assert imported["source"] == str((saved / "blog-from-tfjs.json").resolve())
    assert imported["files"] == ["blog-from-tfjs.weights.bin"] and imported["generated_by"].startswith("TensorFlow.js")

    want = read_probs(saved / "probs.f32")
    onnx = Predictor(store.onnx_path("from-tfjs")).probabilities(x)
    torch_probs = torch_probabilities(store, "from-tfjs", x)
    d_onnx, d_torch = float(np.abs(onnx - want).max()), float(np.abs(torch_probs - want).max())
    print(f"import: onnxruntime vs tfjs max abs difference {d_onnx:.3g}, torch vs tfjs {d_torch:.3g} (1,000 images)")
    assert d_onnx < TOLERANCE and d_torch < TOLERANCE
    assert np.array_equal(onnx.argmax(1), want.argmax(1)) and np.array_equal(torch_probs.argmax(1), want.argmax(1))

    # evaluated (on the sample: an imported model's own dataset is unknown), and trained further
    report = json.loads(digitlab("evaluate", "--model", "from-tfjs", "--json", home=home).stdout)
    all_x = sample.test_images.astype(np.float32) / 255
    expected = (Predictor(store.onnx_path("from-tfjs")).probabilities(all_x).argmax(1) == sample.test_labels).mean()
    assert report["count"] == 2000 and report["accuracy"] == pytest.approx(expected)
    resumed = json.loads(digitlab("train", "--resume", "from-tfjs", "--epochs", "1", "--json",
                                  home=home).stdout.strip().splitlines()[-1])
    assert resumed["model"] == "from-tfjs" and resumed["epochs"] == 1
    assert store.record("from-tfjs")["provenance"]["resumed"] == "from-tfjs"

    # never replaced without --force; the .json path itself is accepted too
    before = snapshot(home / "models")
    one_line_error(digitlab("import", str(saved), "--name", "from-tfjs", home=home, check=False), "exists")
    assert snapshot(home / "models") == before
    tfjs.import_model(store, saved / "blog-from-tfjs.json", "from-tfjs", force=True)
    assert store.record("from-tfjs")["epochs"] == 0


# --- 3. the API --------------------------------------------------------------------------------------

@needs_node
def test_api_tfjs_model_json_loads_over_http(trained_home, test_images, tmp_path):
    from digitlab.inference import Predictor

    x, _, _ = test_images
    images = write_f32(tmp_path / "x.f32", x[:200])
    with serving(tmp_path / "home", models_from=trained_home) as srv:
        info = run_node("tfjs_predict.js", f"{srv.base}/api/models/base/tfjs/model.json", images, tmp_path / "p.f32")
    assert [layer["name"] for layer in info["layers"]] == BLOG_NAMES
    got = read_probs(tmp_path / "p.f32")
    want = Predictor(ModelStore(trained_home).onnx_path("base")).probabilities(x[:200])
    diff = float(np.abs(got - want).max())
    print(f"\nAPI over HTTP: tfjs vs onnxruntime, 200 images: max abs difference {diff:.3g}")
    assert diff < TOLERANCE and np.array_equal(got.argmax(1), want.argmax(1))


def test_api_tfjs_routes(trained_home, tmp_path):
    from starlette.testclient import TestClient

    from digitlab.server.app import create_app

    store = copy_home(trained_home, tmp_path / "home")
    client = TestClient(create_app(tmp_path / "home"))  # no lifespan: file routes need no worker
    r = client.get("/api/models/base/tfjs/model.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    model = r.json()
    group = model["weightsManifest"][0]
    shard = group["paths"][0]
    assert shard == store.record("base")["weights"].replace(".safetensors", ".bin")  # the weights' version
    assert [layer["config"]["name"] for layer in model["modelTopology"]["config"]["layers"]] == BLOG_NAMES
    s = client.get(f"/api/models/base/tfjs/{shard}")
    need = sum(4 * int(np.prod(w["shape"])) for w in group["weights"])
    assert s.status_code == 200 and len(s.content) == need == 53866 * 4
    folder = tfjs.write_folder(store, "base", tmp_path / "cli")
    assert s.content == folder[0].read_bytes()  # the CLI's export, byte for byte
    cli_model = json.loads(folder[1].read_text())
    cli_model["weightsManifest"][0]["paths"] = [shard]
    assert cli_model == model
    again = client.get("/api/models/base/tfjs/model.json", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    z = client.get("/api/models/base/tfjs.zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert 'filename="base-tfjs.zip"' in z.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert zf.namelist() == ["base/model.json", "base/group1-shard1of1.bin"]
        assert zf.read("base/group1-shard1of1.bin") == s.content
        assert json.loads(zf.read("base/model.json"))["weightsManifest"][0]["paths"] == ["group1-shard1of1.bin"]

    def one_line(resp, status, text):
        assert resp.status_code == status, resp.text
        assert text in resp.json()["error"] and "\n" not in resp.json()["error"]

    # a save in between model.json and its shard: the old shard is gone, never mixed in
    model_obj, record = store.load("base")
    store.save("base", model_obj, record)
    current = client.get("/api/models/base/tfjs/model.json").json()["weightsManifest"][0]["paths"]
    assert current != [shard]
    one_line(client.get(f"/api/models/base/tfjs/{shard}"), 404, f"its tfjs/model.json names {current[0]}")

    for route in ("tfjs/model.json", f"tfjs/{shard}", "tfjs.zip"):
        one_line(client.get(f"/api/models/ghost/{route}"), 404, "no model named 'ghost'")
        one_line(client.get(f"/api/models/bad..name/{route}"), 400, "invalid model name")
    record_file = store.folder("base") / "model.json"
    good = record_file.read_text()
    for change, status, text in [
        (lambda r: r.update(weights="/etc/passwd"), 409, "damaged"),
        (lambda r: r.update(architecture="resnet"), 409, "no TF.js form"),
    ]:
        record = json.loads(good)
        change(record)
        record_file.write_text(json.dumps(record))
        for route in ("tfjs/model.json", "tfjs.zip"):
            one_line(client.get(f"/api/models/base/{route}"), status, text)
    for nonsense in (-1, "hot", None):  # read as everywhere else (confidence.of_record): no temperature
        record = json.loads(good)
        record["calibration"] = {"temperature": nonsense}
        record_file.write_text(json.dumps(record))
        meta = client.get("/api/models/base/tfjs/model.json").json()["userDefinedMetadata"]["digitlab"]
        assert meta["temperature"] == 1
    record_file.write_text(good)
    (store.folder("base") / json.loads(good)["weights"]).write_bytes(b"not safetensors at all")
    for route in ("tfjs/model.json", "tfjs.zip"):
        one_line(client.get(f"/api/models/base/{route}"), 409, "cannot read its weights")


# --- 4. refused imports ----------------------------------------------------------------------------

@needs_node
@pytest.mark.parametrize("variant, position, text", [
    ("dense64", 6, "expected Dense with 128 units, relu activation, got Dense with 64 units, relu activation"),
    ("conv32", 3, "expected Conv2D with 16 filters, 3x3 kernel, relu activation, got Conv2D with 32 filters, "
                  "3x3 kernel, relu activation"),
    ("dropout", 6, "expected Dense with 128 units, relu activation, got Dropout"),
    ("extra", 8, "expected the end of the model (blog-cnn has 7 layers), got Dense with 10 units, softmax activation"),
])
def test_foreign_tfjs_models_are_refused_naming_the_layer(tfjs_saved, trained_home, tmp_path, variant, position, text):
    out, _ = tfjs_saved
    folder = out / variant
    layers = json.loads((folder / f"{variant}.json").read_text())["modelTopology"]["config"]["layers"]
    name = layers[position - 1]["config"]["name"]
    home = tmp_path / "home"
    copy_home(trained_home, home)
    before = snapshot(home / "models")
    # even --force over an existing model changes nothing when the file is refused
    proc = digitlab("import", str(folder), "--name", "base", "--force", home=home, check=False)
    one_line_error(proc, f"layer {position} '{name}': {text}")
    assert snapshot(home / "models") == before


def _edit(path: Path, change) -> None:
    model = json.loads(path.read_text())
    change(model)
    path.write_text(json.dumps(model))


def _layers(model: dict) -> list:
    return model["modelTopology"]["config"]["layers"]


def _spec(model: dict, i: int = 0) -> dict:
    return model["weightsManifest"][0]["weights"][i]


def _poison(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[400:404] = np.array([np.nan], dtype="<f4").tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, text", [
    (lambda d: (d / "group1-shard1of1.bin").unlink(), "missing weight file group1-shard1of1.bin"),
    (lambda d: (d / "group1-shard1of1.bin").write_bytes((d / "group1-shard1of1.bin").read_bytes()[:-4]),
     "group1-shard1of1.bin holds 215,460 bytes, but the 8 float32 weights listed for it need 215,464"),
    (lambda d: (d / "group1-shard1of1.bin").write_bytes((d / "group1-shard1of1.bin").read_bytes() * 2),
     "holds 430,928 bytes"),
    (lambda d: _edit(d / "model.json", lambda m: _spec(m).update(dtype="int32")),
     "weight 'conv2d/kernel' is int32; only float32 weights can be imported"),
    (lambda d: _edit(d / "model.json", lambda m: _spec(m).update(quantization={"dtype": "uint8", "scale": 1})),
     "weight 'conv2d/kernel' is quantized (uint8)"),
    (lambda d: (d / "model.json").write_text((d / "model.json").read_text()[:500]), "not valid JSON ("),
    (lambda d: (d / "model.json").write_bytes(b"\xff\xfe{}"), "not a JSON file"),
    (lambda d: _edit(d / "model.json", lambda m: m["weightsManifest"][0].update(paths=["../outside.bin"])),
     "weight file '../outside.bin': only files next to model.json are read"),
    (lambda d: _poison(d / "group1-shard1of1.bin"), "holds NaN or infinite values"),
    (lambda d: _edit(d / "model.json", lambda m: m["modelTopology"].update(class_name="Functional")),
     "expected a Sequential model, got 'Functional'"),
    (lambda d: _edit(d / "model.json", lambda m: m.update(format="graph-model")),
     "format 'graph-model' is not a TF.js Layers model"),
    (lambda d: _edit(d / "model.json", lambda m: _spec(m, 4).update(name="dense/weights")),
     "layer 'dense' has no weight 'dense/kernel'"),
    (lambda d: _edit(d / "model.json", lambda m: _layers(m)[0]["config"].update(strides=[2, 2])),
     "layer 1 'conv2d': expected Conv2D with 8 filters, 3x3 kernel, relu activation, stride 1x1, "
     "got Conv2D with 8 filters, 3x3 kernel, relu activation, stride 2x2"),
    (lambda d: _edit(d / "model.json", lambda m: _layers(m)[0]["config"].update(batch_input_shape=[None, 32, 32, 1])),
     "layer 1 'conv2d': expected input shape [null, 28, 28, 1], got [null, 32, 32, 1]"),
    (lambda d: _edit(d / "model.json", lambda m: _layers(m)[6]["config"].update(activation="linear")),
     "layer 7 'dense_1': expected Dense with 10 units, softmax activation, got Dense with 10 units, linear activation"),
    (lambda d: _edit(d / "model.json", lambda m: _layers(m).pop()),
     "layer 7: expected Dense with 10 units, softmax activation, got the end of the model"),
    (lambda d: (d / "model.json").unlink(), "no model.json (nor any other .json file)"),
])
def test_broken_tfjs_files_are_refused_in_one_line(exported, tmp_path, damage, text):
    damage(exported)
    store = ModelStore(tmp_path / "home")
    with pytest.raises(tfjs.TfjsError) as err:
        tfjs.import_model(store, exported, "x")
    message = str(err.value)
    assert text in message and "\n" not in message, message
    assert not store.root.exists()  # nothing written


def test_cli_import_errors_are_one_line_and_change_nothing(trained_home, exported, tmp_path):
    home = tmp_path / "home"
    copy_home(trained_home, home)
    before = snapshot(home / "models")
    one_line_error(digitlab("import", str(exported), "--name", "../evil", home=home, check=False), "invalid model name")
    one_line_error(digitlab("import", str(exported), "--name", "base", home=home, check=False), "exists")
    (exported / "group1-shard1of1.bin").unlink()
    one_line_error(digitlab("import", str(exported), "--name", "new", home=home, check=False),
                   "missing weight file group1-shard1of1.bin")
    one_line_error(digitlab("import", str(tmp_path / "nowhere"), home=home, check=False), "no such file or folder")
    assert snapshot(home / "models") == before
    assert "--name" in digitlab("import", "--help", home=home).stdout


def test_keras_style_input_layer_is_accepted(exported):
    """Keras (Python) writes Sequential models with a leading InputLayer carrying the input shape."""
    original = tfjs.read_model(exported)

    def add_input_layer(model):
        first = _layers(model)[0]["config"]
        shape = first.pop("batch_input_shape")
        _layers(model).insert(0, {"class_name": "InputLayer", "config": {"batch_input_shape": shape, "name": "input"}})
    _edit(exported / "model.json", add_input_layer)
    again = tfjs.read_model(exported)
    assert again.layer_names == BLOG_NAMES
    assert all(np.array_equal(again.state[k], v) for k, v in original.state.items())
