import io

import numpy as np
import pytest
from PIL import Image

from digitlab.inference import Predictor, PreprocessError, center_of_mass_crop, image_to_input, pixels_to_input
from digitlab.inference.predict import decode_image
from digitlab.models import ModelStore
from strokes import render


def test_dark_on_light_and_light_on_dark_give_the_same_input():
    a = image_to_input(render(7))
    b = image_to_input(render(7, ink=(250, 250, 250), paper=(0, 0, 0)))
    assert np.abs(a - b).max() < 0.02
    assert a.max() == pytest.approx(1.0, abs=0.05) and a[0].max() == 0


def test_small_off_centre_digit_is_boxed_and_centred():
    x = image_to_input(render(4, left=10, top=200, height=60, width=6))
    rows, cols = np.flatnonzero(x.sum(1) > 0), np.flatnonzero(x.sum(0) > 0)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21 and cols[-1] - cols[0] + 1 <= 20  # fits the 20x20 box
    cy = (x.sum(1) * np.arange(28)).sum() / x.sum()
    cx = (x.sum(0) * np.arange(28)).sum() / x.sum()
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5


def test_empty_drawing_is_an_error_not_a_guess():
    with pytest.raises(PreprocessError, match="nothing drawn"):
        image_to_input(Image.new("RGB", (280, 280), "white"))
    with pytest.raises(PreprocessError, match="nothing drawn"):
        pixels_to_input(np.zeros((28, 28)))


@pytest.mark.parametrize("pixels, message", [
    ([[1, 2], [3]], "rectangular"), (np.zeros((10, 10)), "at least 28x28"),
    (np.full((28, 28), np.nan), "NaN"), (np.full((28, 28), 300.0), "0..255"),
])
def test_bad_pixel_arrays(pixels, message):
    with pytest.raises(PreprocessError, match=message):
        pixels_to_input(pixels)


def test_bad_images_are_refused():
    with pytest.raises(PreprocessError, match="not a PNG or JPEG"):
        decode_image(b"hello")
    buf = io.BytesIO()
    render(3).save(buf, "PNG")
    with pytest.raises(PreprocessError, match="corrupt or truncated"):
        decode_image(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(PreprocessError, match="at least 8x8"):
        center_of_mass_crop(np.zeros((1, 1)))


@pytest.mark.parametrize("digit, place", [
    (1, dict()), (4, dict()), (7, dict()), (2, dict()), (3, dict()), (0, dict()),
    (7, dict(left=10, top=10, height=80, width=8)),      # small, top-left
    (4, dict(left=180, top=170, height=100, width=9)),   # small, bottom-right
    (1, dict(left=200, top=60, height=150, width=14)),
])
def test_drawn_digits_are_recognised(trained_home, digit, place):
    predictor = Predictor(ModelStore(trained_home).onnx_path("base"))
    p = predictor.predict_image(render(digit, **place))
    assert p.digit == digit, p
    assert len(p.probabilities) == 10 and abs(sum(p.probabilities) - 1) < 1e-4
