"""What the model sees: the feature maps of its first two convolutions, and which input pixels its
answer rests on (an occlusion map). Built from the model's own ONNX file with the `onnx` package,
so the server stays torch-free; web/infer-worker.js runs the same graph and the same arithmetic.

- `activation_graph(onnx)`: the model's graph with two more outputs, `conv1` and `conv2`: the
  ReLU outputs of its first two Conv nodes (found by walking the graph, not by node names), for
  the batch's first image only (a Slice), so a batch of occluded copies costs no extra copying.
  The model's own outputs stay first and untouched (whatever follows its last layer: softmax,
  a temperature).
- `occlusion_batch(x)`: the input, then one copy per 4x4 patch (stride 2, 13 x 13 = 169 patches)
  with that patch erased (set to 0, the background).
- `saliency(probabilities, digit)`: per pixel, the mean over the patches covering it of how much
  erasing the patch lowers the answer's log-odds, log p / (1 - p) with 1 - p summed from the other
  classes (accurate where p rounds to 1; unlike log p, it does not flatten when the model is sure):
  positive where the ink supports the answer, negative where erasing it makes the answer likelier.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np

SIZE, PATCH, STRIDE = 28, 4, 2
POSITIONS = tuple(range(0, SIZE - PATCH + 1, STRIDE))  # 0, 2, ..., 24
PATCHES = tuple((r, c) for r in POSITIONS for c in POSITIONS)  # row-major, as the worker builds them
OUTPUTS = ("conv1", "conv2")
MIN_PROBABILITY = 1e-12  # log() of a probability that underflowed to 0


class ActivationError(ValueError):
    """The model's graph has no two convolutions to show."""


def activation_graph(onnx_bytes: bytes) -> bytes:
    """The model's ONNX graph plus outputs `conv1` (1, C1, H1, W1) and `conv2` (1, C2, H2, W2)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    if len(convs) < 2:
        raise ActivationError(f"the model has {len(convs)} convolution(s); the activation view needs two")
    taken = {v for node in graph.node for v in (*node.input, *node.output)} | {o.name for o in graph.output}
    clash = [name for name in (*OUTPUTS, "act_starts", "act_ends", "act_axes") if name in taken]
    if clash:
        raise ActivationError(f"the model's graph already has values named {', '.join(clash)}")
    one = lambda name, v: numpy_helper.from_array(np.array([v], dtype=np.int64), name)  # noqa: E731
    graph.initializer.extend([one("act_starts", 0), one("act_ends", 1), one("act_axes", 0)])
    for name, conv in zip(OUTPUTS, convs[:2]):
        tap = conv.output[0]
        after = consumers.get(tap, [])
        if len(after) == 1 and after[0].op_type == "Relu":
            tap = after[0].output[0]
        graph.node.append(helper.make_node("Slice", [tap, "act_starts", "act_ends", "act_axes"], [name],
                                           name=f"activations/{name}"))
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None, None]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def occlusion_batch(x28: np.ndarray) -> np.ndarray:
    """(28, 28) input -> (1 + 169, 1, 28, 28) float32: the input, then each patch erased in turn."""
    x = np.asarray(x28, dtype=np.float32).reshape(SIZE, SIZE)
    batch = np.repeat(x[None], 1 + len(PATCHES), axis=0)
    for k, (r, c) in enumerate(PATCHES, start=1):
        batch[k, r:r + PATCH, c:c + PATCH] = 0.0
    return batch[:, None]


def log_odds(probabilities: np.ndarray, digit: int) -> np.ndarray:
    """log p / (1 - p) of `digit` for each row, 1 - p summed over the other classes."""
    p = np.asarray(probabilities, dtype=np.float64)
    others = np.zeros(len(p))
    for j in range(p.shape[1]):  # in class order, as the worker adds them (never 1 - p: it rounds to 0)
        if j != digit:
            others += p[:, j]
    return np.log(np.maximum(p[:, digit], MIN_PROBABILITY)) - np.log(np.maximum(others, MIN_PROBABILITY))


def saliency(probabilities: np.ndarray, digit: int) -> np.ndarray:
    """(1 + 169, classes) probabilities of an occlusion batch -> (28, 28) float64 map (see above)."""
    odds = log_odds(probabilities, digit)
    drops = odds[0] - odds[1:]
    total = np.zeros((SIZE, SIZE))
    count = np.zeros((SIZE, SIZE))
    for drop, (r, c) in zip(drops, PATCHES):
        total[r:r + PATCH, c:c + PATCH] += drop
        count[r:r + PATCH, c:c + PATCH] += 1
    return total / count


class ActivationModel:
    """The activation graph in onnxruntime (one thread); `run(x)` gives everything the view shows."""

    def __init__(self, graph: bytes):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()

    def run(self, x28: np.ndarray) -> dict:
        """(28, 28) input -> digit, probabilities, conv1 (C1, H1, W1), conv2 (C2, H2, W2), saliency (28, 28)."""
        with self._lock:
            outputs = dict(zip(self.names, self.session.run(None, {self.input_name: occlusion_batch(x28)})))
        probabilities = outputs[self.names[0]]
        digit = int(np.argmax(probabilities[0]))
        return {"digit": digit, "probabilities": probabilities[0], "conv1": outputs["conv1"][0],
                "conv2": outputs["conv2"][0], "saliency": saliency(probabilities, digit)}
