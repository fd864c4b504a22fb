"""Predict digits with a saved model's ONNX export in onnxruntime (fast, no torch needed)."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .preprocess import PreprocessError, image_to_input

MAX_IMAGE_PIXELS = 25_000_000  # 5000 x 5000; larger is refused before decoding (decompression bombs)


@dataclass
class Prediction:
    digit: int
    confidence: float
    probabilities: list[float]

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": self.confidence, "probabilities": self.probabilities}


def decode_image(data: bytes):
    """PNG/JPEG bytes -> PIL image, refusing non-images, truncated files and pixel bombs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ("PNG", "JPEG"):
                raise PreprocessError(f"unsupported image format {img.format}; send a PNG or JPEG")
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise PreprocessError(f"image is {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} accepted")
            img.load()
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(f"image has more than the {MAX_IMAGE_PIXELS:,} pixels accepted") from None
    except UnidentifiedImageError:
        raise PreprocessError("not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PreprocessError(f"corrupt or truncated image ({exc})") from None
    return img


class Predictor:
    """One model's ONNX graph in an onnxruntime session; single-threaded so it never competes."""

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28) floats in [0, 1] -> (N, 10) probabilities."""
        x = np.ascontiguousarray(batch, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self.session.run(None, {self.input_name: x})[0]

    def predict_input(self, x28: np.ndarray) -> Prediction:
        p = self.probabilities(x28[None])[0].astype(float)
        digit = int(p.argmax())
        return Prediction(digit, float(p[digit]), [round(float(v), 6) for v in p])

    def predict_image(self, image) -> Prediction:
        return self.predict_input(image_to_input(image))

    def predict_bytes(self, data: bytes) -> Prediction:
        return self.predict_image(decode_image(data))
