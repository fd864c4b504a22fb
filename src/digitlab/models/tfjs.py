"""TF.js Layers models, both ways, without torch: a saved model as `model.json` + one weight shard
that `tf.loadLayersModel` loads, and such a folder (e.g. saved by `model.save('downloads://x')`)
read back as PyTorch-layout arrays.

The server serves TF.js files from here, so this module imports numpy and safetensors only;
`import_model` imports torch inside (the CLI has it anyway).

Layouts: Keras conv kernels are HWIO (PyTorch: OIHW); dense kernels are (in, out) (PyTorch:
(out, in)); Keras flattens NHWC, so the rows of the first dense kernel are permuted from PyTorch's
CHW flatten order. A calibration temperature T (`record["calibration"]["temperature"]`) is baked
into the last dense layer (kernel and bias divided by T), as in the ONNX export: both give
softmax(logits / T).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..inference.confidence import of_record
from .store import DamagedModel, ModelStore, check_name, class_count

FORMAT = "layers-model"
SHARD = "group1-shard1of1.bin"  # the shard's name in exported folders and zips (as tfjs's converter names it)
INPUT_SHAPE = (28, 28, 1)  # NHWC, without the batch
DIGITS = [str(d) for d in range(10)]
MAX_JSON_BYTES = 4 << 20  # a Layers model.json of this size would be no CNN of ours
MAX_WEIGHT_BYTES = 64 << 20  # the blog CNN needs 215,464


class TfjsError(Exception):
    """A TF.js model that digitlab cannot read, or a model it cannot write as one; the message is one line."""


@dataclass(frozen=True)
class Layer:
    """One Keras layer of an architecture, as the summary names it and TF.js writes it."""

    kind: str  # Keras class: Conv2D, MaxPooling2D, Flatten, Dense
    name: str  # Keras-style name, as in the model summary
    size: int = 0  # filters (Conv2D) or units (Dense)
    kernel: int = 0  # kernel side (Conv2D) or pool side (MaxPooling2D)
    activation: str = "linear"
    torch: str = ""  # the PyTorch state-dict prefix of its weights: "0" -> "0.weight", "0.bias"


#: The registered architectures, layer for layer, in Keras terms (tests check them against
#: `architectures.py`, which this torch-free module cannot import).
ARCHITECTURES: dict[str, tuple[Layer, ...]] = {
    "blog-cnn": (
        Layer("Conv2D", "conv2d", 8, 3, "relu", torch="0"),
        Layer("MaxPooling2D", "max_pooling2d", kernel=2),
        Layer("Conv2D", "conv2d_1", 16, 3, "relu", torch="3"),
        Layer("MaxPooling2D", "max_pooling2d_1", kernel=2),
        Layer("Flatten", "flatten"),
        Layer("Dense", "dense", 128, activation="relu", torch="7"),
        Layer("Dense", "dense_1", 10, activation="softmax", torch="9"),
    ),
}


def layers_of(architecture: str, classes: int = 10) -> tuple[Layer, ...]:
    """The architecture's layers with a head of `classes` outputs (its last Dense layer)."""
    layers = ARCHITECTURES[architecture]
    last = max(i for i, layer in enumerate(layers) if layer.kind == "Dense")
    return layers[:last] + (replace(layers[last], size=classes),) + layers[last + 1:]


def head_size(layers: list[dict], architecture: str) -> int:
    """K read from a Keras layer list: the units of the layer where the architecture has its head,
    when that is a Dense layer of 2 to 256 units, else 10 (what the error messages then expect)."""
    offset = 1 if layers and layers[0]["class_name"] == "InputLayer" else 0
    at = offset + max(i for i, layer in enumerate(ARCHITECTURES[architecture]) if layer.kind == "Dense")
    head = layers[at] if at < len(layers) else None
    units = head["config"].get("units") if head and head["class_name"] == "Dense" else None
    ok = isinstance(units, int) and not isinstance(units, bool) and 2 <= units <= 256
    return units if ok else 10


@dataclass(frozen=True)
class Step:
    """A layer with its input shape; `image`: the (H, W, C) a Flatten just made flat, else None."""

    layer: Layer
    input: tuple[int, ...]
    image: tuple[int, int, int] | None


def walk(layers: tuple[Layer, ...]) -> list[Step]:
    """Each layer with the NHWC shape that reaches it (valid padding, stride 1 convs, stride = pool)."""
    shape: tuple[int, ...] = INPUT_SHAPE
    steps, flattened = [], None
    for layer in layers:
        steps.append(Step(layer, shape, flattened if layer.kind == "Dense" else None))
        flattened = None
        if layer.kind == "Conv2D":
            shape = (shape[0] - layer.kernel + 1, shape[1] - layer.kernel + 1, layer.size)
        elif layer.kind == "MaxPooling2D":
            shape = (shape[0] // layer.kernel, shape[1] // layer.kernel, shape[2])
        elif layer.kind == "Flatten":
            flattened, shape = shape, (int(np.prod(shape)),)
        elif layer.kind == "Dense":
            shape = (layer.size,)
    return steps


def keras_shapes(step: Step) -> dict[str, list[int]]:
    """The layer's Keras weights by suffix (`kernel`, `bias`) and their shapes."""
    layer = step.layer
    if layer.kind == "Conv2D":
        return {"kernel": [layer.kernel, layer.kernel, step.input[-1], layer.size], "bias": [layer.size]}
    if layer.kind == "Dense":
        return {"kernel": [step.input[0], layer.size], "bias": [layer.size]}
    return {}


def to_keras(step: Step, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch (weight, bias) -> Keras (kernel, bias)."""
    if step.layer.kind == "Conv2D":
        kernel = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif step.image is not None:  # rows in PyTorch's CHW flatten order -> Keras' HWC order
        h, w, c = step.image
        kernel = weight.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    else:
        kernel = weight.T
    return np.ascontiguousarray(kernel, dtype="<f4"), np.ascontiguousarray(bias, dtype="<f4")


def to_torch(step: Step, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras (kernel, bias) -> PyTorch (weight, bias): the inverse of `to_keras`."""
    if step.layer.kind == "Conv2D":
        weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    elif step.image is not None:
        h, w, c = step.image
        weight = kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, h * w * c)
    else:
        weight = kernel.T
    return np.ascontiguousarray(weight, dtype=np.float32), np.ascontiguousarray(bias, dtype=np.float32)


def torch_shapes(step: Step) -> dict[str, tuple[int, ...]]:
    """The layer's PyTorch state-dict entries and their shapes."""
    kernel, bias = keras_shapes(step)["kernel"], keras_shapes(step)["bias"]
    if step.layer.kind == "Conv2D":
        weight = (kernel[3], kernel[2], kernel[0], kernel[1])
    else:
        weight = (kernel[1], kernel[0])
    return {f"{step.layer.torch}.weight": weight, f"{step.layer.torch}.bias": tuple(bias)}


# --- export -----------------------------------------------------------------------------------

_GLOROT = {"class_name": "VarianceScaling", "config": {"scale": 1, "mode": "fan_avg", "distribution": "normal",
                                                       "seed": None}}
_ZEROS = {"class_name": "Zeros", "config": {}}


def layer_config(step: Step, first: bool) -> dict:
    """The layer as TF.js 4's `model.save` writes it (class_name + config)."""
    layer = step.layer
    if layer.kind == "Conv2D":
        config = {"filters": layer.size, "kernel_initializer": _GLOROT, "kernel_regularizer": None,
                  "kernel_constraint": None, "kernel_size": [layer.kernel] * 2, "strides": [1, 1],
                  "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                  "activation": layer.activation, "use_bias": True, "bias_initializer": _ZEROS,
                  "bias_regularizer": None, "activity_regularizer": None, "bias_constraint": None}
    elif layer.kind == "MaxPooling2D":
        config = {"pool_size": [layer.kernel] * 2, "padding": "valid", "strides": [layer.kernel] * 2,
                  "data_format": "channels_last"}
    elif layer.kind == "Dense":
        config = {"units": layer.size, "activation": layer.activation, "use_bias": True,
                  "kernel_initializer": _GLOROT, "bias_initializer": _ZEROS, "kernel_regularizer": None,
                  "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                  "bias_constraint": None}
    else:
        config = {}
    config.update(name=layer.name, trainable=True)
    if first:
        config.update(batch_input_shape=[None, *INPUT_SHAPE], dtype="float32")
    return {"class_name": layer.kind, "config": config}


@dataclass(frozen=True)
class TfjsModel:
    """A model as TF.js files: model.json (bytes) naming one weight shard."""

    json: bytes
    shard_name: str
    shard: bytes
    weights_file: str  # the store's weights file it was made from (its version)
    updated: float  # when that version was saved


def convert(name: str, record: dict, weights: bytes, shard_name: str = SHARD) -> tuple[bytes, bytes]:
    """A saved model's record and safetensors bytes -> (model.json, weight shard), float32 little-endian."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    architecture = record.get("architecture")
    if architecture not in ARCHITECTURES:
        raise TfjsError(f"model {name!r} has architecture {str(architecture)[:40]!r}, which has no TF.js form "
                        f"(known: {', '.join(ARCHITECTURES)})")
    t = of_record(record)["temperature"]  # 1.0 when absent (or nonsense), as everywhere else
    classes = class_count(record)
    try:
        state = load(weights)
    except (SafetensorError, ValueError, TypeError, OSError) as exc:
        raise DamagedModel(f"model {name!r} is damaged: cannot read its weights ({str(exc)[:120]})") from None
    steps = walk(layers_of(architecture, classes))
    expected = {k: v for s in steps if s.layer.torch for k, v in torch_shapes(s).items()}
    for key, shape in expected.items():
        if key not in state or tuple(state[key].shape) != shape:
            got = "missing" if key not in state else f"of shape {list(state[key].shape)}"
            raise DamagedModel(f"model {name!r} is damaged: its weights do not fit {architecture} "
                               f"({key} is {got}, expected {list(shape)})")
    if set(state) != set(expected):
        raise DamagedModel(f"model {name!r} is damaged: its weights hold entries {architecture} has not "
                           f"({', '.join(sorted(set(state) - set(expected)))[:80]})")
    layers, specs, blobs = [], [], []
    last = max(i for i, s in enumerate(steps) if s.layer.kind == "Dense")
    for i, step in enumerate(steps):
        layers.append(layer_config(step, first=i == 0))
        if not step.layer.torch:
            continue
        weight = state[f"{step.layer.torch}.weight"].astype(np.float32)
        bias = state[f"{step.layer.torch}.bias"].astype(np.float32)
        if i == last and t != 1.0:  # softmax(logits / T), baked in
            weight, bias = weight / np.float32(t), bias / np.float32(t)
        for suffix, array in zip(("kernel", "bias"), to_keras(step, weight, bias)):
            specs.append({"name": f"{step.layer.name}/{suffix}", "shape": list(array.shape), "dtype": "float32"})
            blobs.append(array.tobytes())
    model = {
        "format": FORMAT,
        "generatedBy": f"digitlab {__version__}",
        "convertedBy": f"digitlab {__version__} (from PyTorch weights)",
        "modelTopology": {
            "class_name": "Sequential",
            "config": {"name": "sequential", "layers": layers},
            "keras_version": f"digitlab {__version__}",
            "backend": "tensor_flow.js",
        },
        "weightsManifest": [{"paths": [shard_name], "weights": specs}],
        "userDefinedMetadata": {"digitlab": {
            "model": name, "architecture": architecture, "classes": record.get("classes") or DIGITS,
            "temperature": t, "input": "28x28 grayscale in [0, 1], white digit on black (MNIST style)"}},
    }
    return json.dumps(model, indent=1).encode(), b"".join(blobs)


def read_saved(store: ModelStore, name: str, tries: int = 5) -> tuple[dict, bytes, str]:
    """The model's record, its weights file's bytes and name, from one and the same save."""
    for _ in range(tries):
        record = store.record(name)
        fh, filename = store.open_file(name, "weights")
        with fh:
            if filename == record.get("weights"):
                return record, fh.read(), filename
    raise DamagedModel(f"model {name!r} is being saved over and over; try again")


def export_model(store: ModelStore, name: str, shard_name: str | None = None) -> TfjsModel:
    """The saved model `name` as TF.js files; the shard is named `shard_name`, or after the
    weights file's version (`weights-<id>.bin`) so that a model.json never mixes with a later save."""
    record, weights, filename = read_saved(store, name)
    shard_name = shard_name or Path(filename).stem + ".bin"
    model_json, shard = convert(name, record, weights, shard_name)
    updated = record.get("updated")
    return TfjsModel(model_json, shard_name, shard, filename,
                     float(updated) if isinstance(updated, (int, float)) and math.isfinite(updated) else 0.0)


def write_folder(store: ModelStore, name: str, out: Path) -> list[Path]:
    """Write `out/model.json` and `out/group1-shard1of1.bin` (the folder is made if missing)."""
    model = export_model(store, name, SHARD)
    if out.exists() and not out.is_dir():
        raise TfjsError(f"{out} is a file; a TF.js model is a folder (model.json + its weights)")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / SHARD, out / "model.json"]  # the shard first: a model.json never names a missing file
    written[0].write_bytes(model.shard)
    written[1].write_bytes(model.json)
    return written


def zip_bytes(store: ModelStore, name: str) -> bytes:
    """A zip of one folder `NAME/` holding model.json and its shard: the page's one-click download."""
    model = export_model(store, name, SHARD)
    when = time.localtime(model.updated if 315532800 < model.updated < 4102444800 else None)[:6]  # zip: 1980-2099
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for filename, data in (("model.json", model.json), (SHARD, model.shard)):
            zf.writestr(zipfile.ZipInfo(f"{name}/{filename}", date_time=when), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# --- import -----------------------------------------------------------------------------------

@dataclass
class Imported:
    """A TF.js Layers model read from disk, its weights in PyTorch layout."""

    architecture: str
    state: dict[str, np.ndarray]  # ready for load_state_dict
    source: Path  # the model.json read
    classes: list[str]  # one name per output (from our own export's metadata, else numbered)
    files: list[Path]  # the weight files read
    generated_by: str | None
    sha256: str  # of model.json and its weight files, in order
    layer_names: list[str]


def _pair(value, default):
    """Keras writes sizes as [a, b] or a; None/absent means the default."""
    if value is None:
        value = default
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    return value


def _word(value) -> str:
    return value.lower() if isinstance(value, str) else json.dumps(value)[:40]


def _input_shape(config: dict):
    """A layer's declared batch input shape, if it declares one."""
    for key in ("batch_input_shape", "batch_shape", "batchInputShape"):
        if config.get(key) is not None:
            shape = config[key]
            return tuple(shape) if isinstance(shape, list) else shape
    if isinstance(config.get("input_shape"), list):
        return (None, *config["input_shape"])
    return None


def _fields(kind: str, config: dict) -> dict:
    """What decides a layer's computation, normalised (defaults filled in as TF.js fills them)."""
    channels = config.get("data_format") or "channels_last"
    if kind == "Conv2D":
        return {"filters": config.get("filters"), "kernel_size": _pair(config.get("kernel_size"), None),
                "strides": _pair(config.get("strides"), 1), "padding": _word(config.get("padding") or "valid"),
                "dilation_rate": _pair(config.get("dilation_rate"), 1),
                "activation": _word(config.get("activation") or "linear"),
                "use_bias": config.get("use_bias", True), "data_format": channels}
    if kind == "MaxPooling2D":
        pool = _pair(config.get("pool_size"), 2)
        return {"pool_size": pool, "strides": _pair(config.get("strides"), pool),
                "padding": _word(config.get("padding") or "valid"), "data_format": channels}
    if kind == "Flatten":
        return {"data_format": channels}
    if kind == "Dense":
        return {"units": config.get("units"), "activation": _word(config.get("activation") or "linear"),
                "use_bias": config.get("use_bias", True)}
    return {}


def _expected_fields(layer: Layer) -> dict:
    return _fields(layer.kind, layer_config(Step(layer, INPUT_SHAPE, None), first=False)["config"])


_MAIN = {"Conv2D": ("filters", "kernel_size", "activation"), "MaxPooling2D": ("pool_size",),
         "Flatten": (), "Dense": ("units", "activation")}


def _describe(kind: str, fields: dict, also: set[str]) -> str:
    """`Conv2D with 16 filters, 3x3 kernel, relu activation` (plus the fields in `also`)."""
    words = []
    for key in (*_MAIN.get(kind, ()), *sorted(also - set(_MAIN.get(kind, ())))):
        v = fields.get(key)
        pair = "x".join(map(str, v)) if isinstance(v, tuple) else json.dumps(v)[:40]
        words.append({"filters": f"{v} filters", "kernel_size": f"{pair} kernel", "strides": f"stride {pair}",
                      "padding": f"{v} padding", "dilation_rate": f"dilation {pair}",
                      "activation": f"{v} activation", "use_bias": "a bias" if v is True else "no bias",
                      "data_format": str(v), "pool_size": f"{pair} pool", "units": f"{v} units"}[key])
    return f"{kind} with {', '.join(words)}" if words else kind


def _shape_text(shape) -> str:
    return "[" + ", ".join("null" if d is None else str(d) for d in shape) + "]" if isinstance(shape, tuple) \
        else "none" if shape is None else json.dumps(shape)[:40]


def _topology_layers(topology) -> list[dict]:
    """The Sequential model's layer list (Keras' `model_config` wrapper and old list form accepted)."""
    if not isinstance(topology, dict):
        raise TfjsError("modelTopology is not a JSON object")
    topology = topology.get("model_config", topology)
    kind = topology.get("class_name") if isinstance(topology, dict) else None
    if kind != "Sequential":
        raise TfjsError(f"expected a Sequential model, got {str(kind)[:40]!r}")
    config = topology.get("config")
    layers = config.get("layers") if isinstance(config, dict) else config
    if not isinstance(layers, list):
        raise TfjsError("the Sequential model has no list of layers")
    for i, layer in enumerate(layers, 1):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str) \
                or not isinstance(layer.get("config"), dict):
            raise TfjsError(f"layer {i} is not a Keras layer (class_name + config)")
    return layers


def _layer_name(layer: dict) -> str:
    name = layer["config"].get("name")
    return name[:64] if isinstance(name, str) else "?"


def match_topology(topology, architecture: str) -> list[str]:
    """The file's names of the architecture's layers, in order; else TfjsError naming the first
    layer that differs (its position, class and name, what was expected and what is there)."""
    layers = _topology_layers(topology)
    offset = 0
    if layers and layers[0]["class_name"] == "InputLayer":
        shape = _input_shape(layers[0]["config"])
        if shape != (None, *INPUT_SHAPE):
            raise TfjsError(f"layer 1 '{_layer_name(layers[0])}': expected InputLayer with input shape "
                            f"{_shape_text((None, *INPUT_SHAPE))}, got {_shape_text(shape)}")
        offset = 1
    names = []
    expected = layers_of(architecture, head_size(layers, architecture))
    for j, layer in enumerate(expected):
        i = offset + j
        if i >= len(layers):
            raise TfjsError(f"layer {i + 1}: expected {_describe(layer.kind, _expected_fields(layer), set())}, "
                            "got the end of the model")
        got, name = layers[i], _layer_name(layers[i])
        want, have = _expected_fields(layer), _fields(got["class_name"], got["config"])
        if got["class_name"] != layer.kind or have != want:
            differ = {k for k in want if have.get(k) != want[k]} if got["class_name"] == layer.kind else set()
            raise TfjsError(f"layer {i + 1} '{name}': expected {_describe(layer.kind, want, differ)}, "
                            f"got {_describe(got['class_name'], have, differ)}")
        if i == 0:
            shape = _input_shape(got["config"])
            if shape != (None, *INPUT_SHAPE):
                raise TfjsError(f"layer 1 '{name}': expected input shape {_shape_text((None, *INPUT_SHAPE))}, "
                                f"got {_shape_text(shape)}")
        names.append(name)
    if len(layers) > offset + len(expected):
        extra = layers[offset + len(expected)]
        raise TfjsError(f"layer {offset + len(expected) + 1} '{_layer_name(extra)}': expected the end of the model "
                        f"({architecture} has {len(expected)} layers), "
                        f"got {_describe(extra['class_name'], _fields(extra['class_name'], extra['config']), set())}")
    return names


def _check_topology(topology) -> tuple[str, list[str]]:
    """(architecture, layer names) of the first registered architecture the topology is; else the
    error of the one that matched furthest."""
    errors = []
    for architecture in ARCHITECTURES:
        try:
            return architecture, match_topology(topology, architecture)
        except TfjsError as exc:
            errors.append(exc)
    raise errors[0]


def _find_json(path: Path) -> Path:
    """`path` itself, or the model JSON in folder `path` (model.json, or the only *.json there)."""
    if not path.is_dir():
        if not path.is_file():
            raise TfjsError(f"{path}: no such file or folder")
        return path
    if (path / "model.json").is_file():
        return path / "model.json"
    found = sorted(p.name for p in path.glob("*.json"))
    if len(found) != 1:
        raise TfjsError(f"{path}: no model.json" + (f" (and several .json files: {', '.join(found[:4])}; name one)"
                                                      if found else " (nor any other .json file)"))
    return path / found[0]


def _weight_file(folder: Path, path) -> Path:
    """A weightsManifest path, as a file next to model.json (never a path elsewhere)."""
    rel = path[2:] if isinstance(path, str) and path.startswith("./") else path
    if not isinstance(rel, str) or not rel or "/" in rel or "\\" in rel or rel in (".", ".."):
        raise TfjsError(f"weightsManifest names weight file {str(path)[:80]!r}: only files next to model.json are read")
    return folder / rel


def _read_weights(folder: Path, manifest, digest) -> tuple[dict[str, np.ndarray], list[Path]]:
    """Every weight of the manifest by name (float32 only), checked against its shard files' sizes."""
    if not isinstance(manifest, list) or not manifest:
        raise TfjsError("model.json has no weightsManifest (weights saved elsewhere cannot be imported)")
    weights: dict[str, np.ndarray] = {}
    files: list[Path] = []
    total = 0
    for g, group in enumerate(manifest, 1):
        paths, specs = (group.get("paths"), group.get("weights")) if isinstance(group, dict) else (None, None)
        if not isinstance(paths, list) or not paths or not isinstance(specs, list):
            raise TfjsError(f"weightsManifest group {g} has no paths and weights lists")
        counts = []
        for spec in specs:
            name = spec.get("name") if isinstance(spec, dict) else None
            shape = spec.get("shape") if isinstance(spec, dict) else None
            if not isinstance(name, str) or not isinstance(shape, list) \
                    or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
                raise TfjsError(f"weightsManifest group {g}: an entry without a name and a shape ({str(spec)[:60]})")
            if spec.get("quantization") is not None:
                dtype = spec["quantization"].get("dtype") if isinstance(spec["quantization"], dict) else "?"
                raise TfjsError(f"weight {name[:64]!r} is quantized ({str(dtype)[:16]}); only float32 weights "
                                "can be imported")
            if spec.get("dtype") != "float32":
                raise TfjsError(f"weight {name[:64]!r} is {str(spec.get('dtype'))[:16]}; only float32 weights "
                                "can be imported")
            if name in weights or name in (n for n, _ in counts):
                raise TfjsError(f"weight {name[:64]!r} is listed twice in weightsManifest")
            counts.append((name, shape))
        need = 4 * sum(int(np.prod(shape, dtype=np.int64)) for _, shape in counts)
        shards = [_weight_file(folder, p) for p in paths]
        for shard in shards:
            if not shard.is_file():
                raise TfjsError(f"missing weight file {shard.name} (named in model.json's weightsManifest)")
        have = sum(s.stat().st_size for s in shards)
        total += have
        if have != need or total > MAX_WEIGHT_BYTES:
            raise TfjsError(f"weight file{'s' * (len(shards) > 1)} {', '.join(s.name for s in shards)[:120]} "
                            f"hold{'s' * (len(shards) == 1)} {have:,} bytes, but the {len(counts)} float32 weights "
                            f"listed for {'them' if len(shards) > 1 else 'it'} need {need:,}")
        data = b"".join(s.read_bytes() for s in shards)
        if len(data) != need:  # changed while we read it
            raise TfjsError(f"weight files of group {g} changed while being read")
        digest.update(data)
        values = np.frombuffer(data, dtype="<f4")
        offset = 0
        for name, shape in counts:
            n = int(np.prod(shape, dtype=np.int64))
            weights[name] = values[offset:offset + n].reshape(shape)
            offset += n
        files += shards
    return weights, files


def _find_weight(weights: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """`LAYER/kernel` exactly, or the only weight ending in `/LAYER/kernel` (a converter's scope prefix)."""
    if name in weights:
        return weights[name]
    found = [k for k in weights if k.endswith("/" + name)]
    return weights[found[0]] if len(found) == 1 else None


def read_model(path: str | Path) -> Imported:
    """Read a TF.js Layers model (a folder, or its .json file) whose topology is a registered
    architecture; its weights come back in PyTorch layout. Anything else: one-line TfjsError."""
    source = _find_json(Path(path))
    try:
        return _read_model(source)
    except TfjsError as exc:
        raise TfjsError(f"cannot import {source}: {exc}") from None


def _read_model(source: Path) -> Imported:
    try:
        size = source.stat().st_size
        if size > MAX_JSON_BYTES:
            raise TfjsError(f"{size:,} bytes, more than a Layers model.json of a small CNN ({MAX_JSON_BYTES:,})")
        raw = source.read_bytes()
    except OSError as exc:
        raise TfjsError(exc.strerror or str(exc)) from None
    try:
        model = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TfjsError("not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise TfjsError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(model, dict) or "modelTopology" not in model:
        raise TfjsError("no modelTopology: not a TF.js model.json")
    if model.get("format", FORMAT) != FORMAT:
        raise TfjsError(f"format {str(model['format'])[:40]!r} is not a TF.js Layers model ({FORMAT!r})")
    architecture, names = _check_topology(model["modelTopology"])
    digest = hashlib.sha256(raw)
    weights, files = _read_weights(source.parent, model.get("weightsManifest"), digest)
    state: dict[str, np.ndarray] = {}
    k = head_size(_topology_layers(model["modelTopology"]), architecture)
    for step, name in zip(walk(layers_of(architecture, k)), names):
        if not step.layer.torch:
            continue
        found = {}
        for suffix, shape in keras_shapes(step).items():
            array = _find_weight(weights, f"{name}/{suffix}")
            if array is None:
                raise TfjsError(f"layer '{name}' has no weight '{name}/{suffix}' in weightsManifest")
            if list(array.shape) != shape:
                raise TfjsError(f"weight '{name}/{suffix}' has shape {list(array.shape)}, expected {shape}")
            if not np.isfinite(array).all():
                raise TfjsError(f"weight '{name}/{suffix}' holds NaN or infinite values")
            found[suffix] = array
        weight, bias = to_torch(step, found["kernel"], found["bias"])
        state[f"{step.layer.torch}.weight"], state[f"{step.layer.torch}.bias"] = weight, bias
    generated = model.get("generatedBy")
    return Imported(architecture, state, source, _class_names(model, k), files,
                    generated if isinstance(generated, str) else None, digest.hexdigest(), names)


def _class_names(model: dict, k: int) -> list[str]:
    """The K class names a digitlab export wrote into userDefinedMetadata; else "0".."K-1"."""
    meta = model.get("userDefinedMetadata")
    names = meta.get("digitlab", {}).get("classes") if isinstance(meta, dict) and isinstance(meta.get("digitlab"), dict) else None
    if isinstance(names, list) and len(names) == k and len(set(names)) == k \
            and all(isinstance(n, str) and 0 < len(n) <= 64 and n.isprintable() for n in names):
        return list(names)
    return [str(i) for i in range(k)]


def import_model(store: ModelStore, path: str | Path, name: str | None = None, force: bool = False) -> dict:
    """Read a TF.js Layers model and save it in the store as a new model (an existing `name` only
    with `force`), with its ONNX export, so it can be evaluated, drawn with and trained further."""
    if name is not None:
        store.check_free(check_name(name), None, force)
    imported = read_model(path)  # all checks before anything is written
    if name is None:
        stem = imported.source.stem if imported.source.stem != "model" else imported.source.parent.resolve().name
        name = store.unique_name(stem or "imported")
    store.check_free(name, None, force)
    store.ensure_writable()

    import torch

    from ..provenance import versions
    from .architectures import build
    from .export import onnx_bytes
    from .summary import layer_table

    model = build(imported.architecture, classes=len(imported.classes))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in imported.state.items()}, strict=True)
    model.eval()
    record = {
        "architecture": imported.architecture, "dataset_name": "imported", "classes": imported.classes,
        "history": [], "epochs": 0, "test_accuracy": None, "test_loss": None, "summary": layer_table(model),
        "provenance": {
            "imported": {"source": str(imported.source.resolve()), "files": [p.name for p in imported.files],
                         "format": FORMAT, "generated_by": imported.generated_by, "sha256": imported.sha256,
                         "layers": imported.layer_names, "at": time.time()},
            "versions": versions(),
        },
    }
    return store.save(name, model, record, onnx=onnx_bytes(model))
