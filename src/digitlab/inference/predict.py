"""Predict digits with a saved model's ONNX export in onnxruntime (fast, no torch needed)."""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from . import confidence
from .preprocess import PreprocessError, bounded_image, image_to_input, reduce_factors

MAX_IMAGE_PIXELS = 25_000_000  # 5000 x 5000; larger is refused before decoding (decompression bombs)
FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the multi-picture JPEG many phones save; its first frame is the photo
MAX_CONCURRENT_DECODES = 2  # each may hold a full-size decoded image (up to ~100 MB) for a moment
_decode_slots = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
#: EXIF orientation -> the transpose that turns the stored pixels upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class Prediction:
    digit: int
    confidence: float  # the calibrated probability of `digit`
    probabilities: list[float]
    sure: bool = True  # False: the model is not sure (confidence or lead over the runner-up too low)
    runner_up: int = 0  # the second most likely class

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": self.confidence, "sure": self.sure, "runner_up": self.runner_up,
                "probabilities": self.probabilities}


def decode_image(data: bytes) -> Image.Image:
    """PNG/JPEG/MPO bytes -> an upright (EXIF orientation applied) 8-bit PIL image whose long side
    is at most preprocess.MAX_SIDE, refusing non-images, truncated files and pixel bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise PreprocessError(f"unsupported image format {img.format}; send a PNG or JPEG")
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise PreprocessError(f"image is {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} accepted")
            fx, fy = reduce_factors(w, h)
            if (fx, fy) != (1, 1):
                img.draft(None, (-(-w // fx), -(-h // fy)))  # JPEG decodes at 1/2, 1/4 or 1/8 scale; PNG ignores it
            img.load()
            img = upright(bounded_image(img))  # shrink first: turning a small image is cheap
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(f"image has more than the {MAX_IMAGE_PIXELS:,} pixels accepted") from None
    except UnidentifiedImageError:
        raise PreprocessError("not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PreprocessError(f"corrupt or truncated image ({exc})") from None
    return img


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phones store photos turned and say so). Unlike
    ImageOps.exif_transpose this never rewrites the EXIF, which fails on some malformed tags."""
    method = _UPRIGHT.get(image.getexif().get(ExifTags.Base.Orientation))
    return image if method is None else image.transpose(method)


def decode_to_input(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> (28, 28) model input. At most MAX_CONCURRENT_DECODES run at once, so a
    burst of large uploads costs bounded memory (the server calls this from its thread pool)."""
    with _decode_slots:
        return image_to_input(decode_image(data))


class Predictor:
    """One model's ONNX graph in an onnxruntime session; single-threaded so it never competes."""

    def __init__(self, onnx: str | os.PathLike | bytes, threads: int = 1, calibration: dict | None = None):
        """`onnx`: the model file's path, or its bytes (read from a handle that a save cannot pull away);
        `calibration`: the record's (confidence.of_record), for the "sure" thresholds."""
        self.calibration = calibration or confidence.of_record({})
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = None if isinstance(onnx, bytes) else Path(onnx)
        self.session = ort.InferenceSession(onnx if isinstance(onnx, bytes) else str(self.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28) floats in [0, 1] -> (N, K) probabilities, one per class of the model."""
        x = np.ascontiguousarray(batch, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self.session.run(None, {self.input_name: x})[0]

    def predict_input(self, x28: np.ndarray) -> Prediction:
        p = self.probabilities(x28[None])[0].astype(float)
        order = np.argsort(-p, kind="stable")
        digit, runner_up = int(order[0]), int(order[1])
        return Prediction(digit, float(p[digit]), [round(float(v), 6) for v in p],
                          confidence.is_sure(p, self.calibration), runner_up)

    def predict_image(self, image: Image.Image) -> Prediction:
        return self.predict_input(image_to_input(image))

    def predict_bytes(self, data: bytes) -> Prediction:
        return self.predict_input(decode_to_input(data))
