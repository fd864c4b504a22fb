"""Image bytes to model input: odd encodings decode right, and any accepted image costs bounded memory."""

import io
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.inference import Predictor, image_to_input
from digitlab.inference import predict
from digitlab.inference.predict import decode_image
from digitlab.inference.preprocess import resize_area
from digitlab.models import ModelStore
from strokes import render


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def upright_seven() -> Image.Image:
    return render(7).convert("L")


def test_16_bit_grayscale_png_is_scaled_not_clipped():
    eight = np.asarray(upright_seven())
    png16 = encoded(Image.fromarray(eight.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(png16)).mode == "I;16"
    expected = image_to_input(upright_seven())
    assert np.abs(image_to_input(decode_image(png16)) - expected).max() < 1e-6
    as_int32 = Image.fromarray(eight.astype(np.int32) * 257)  # older Pillow opens 16-bit PNGs as mode "I"
    assert as_int32.mode == "I"
    assert np.abs(image_to_input(as_int32) - expected).max() < 1e-6


@pytest.mark.parametrize("fmt, tolerance", [("PNG", 1e-6), ("JPEG", 0.05)])
def test_exif_orientation_is_applied(fmt, tolerance):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": stored turned a quarter anticlockwise
    stored = upright_seven().transpose(Image.Transpose.ROTATE_90)
    expected = image_to_input(decode_image(encoded(upright_seven(), fmt, quality=95)))
    got = image_to_input(decode_image(encoded(stored, fmt, quality=95, exif=exif.tobytes())))
    assert np.abs(got - expected).max() < tolerance
    assert np.abs(image_to_input(stored) - expected).max() > 0.5  # the check can tell a turned 7 apart


def test_orientation_applies_despite_a_malformed_exif_tag():
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "phone"  # orientation; Make (text)
    raw = exif.tobytes()
    assert raw.startswith(b"Exif\0\0MM") and raw.count(bytes.fromhex("010f0002")) == 1  # big-endian entry
    bad = raw.replace(bytes.fromhex("010f0002"), bytes.fromhex("011e0002"))  # text under XPosition (a fraction)
    stored = upright_seven().transpose(Image.Transpose.ROTATE_90)
    expected = image_to_input(upright_seven())
    assert np.abs(image_to_input(decode_image(encoded(stored, "PNG", exif=bad))) - expected).max() < 1e-6


def test_mpo_from_a_phone_is_read_as_its_first_frame():
    first, second = upright_seven().convert("RGB"), render(1)
    mpo = encoded(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    expected = image_to_input(decode_image(encoded(first, "JPEG", quality=95)))
    assert np.abs(image_to_input(decode_image(mpo)) - expected).max() < 1e-6


def odd_encodings_of_a_seven() -> dict[str, bytes]:
    """The same upright 7 as a 16-bit PNG, a turned JPEG with EXIF orientation 6, and a phone's MPO."""
    exif = Image.Exif()
    exif[0x0112] = 6
    seven = upright_seven()
    return {
        "png16": encoded(Image.fromarray(np.asarray(seven).astype(np.uint16) * 257), "PNG"),
        "exif6": encoded(seven.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes()),
        "mpo": encoded(seven.convert("RGB"), "MPO", save_all=True, append_images=[render(1)], quality=95),
    }


def test_a_trained_model_reads_the_seven_in_every_encoding(trained_home):
    predictor = Predictor(ModelStore(trained_home).onnx_path("base"))
    digits = {name: predictor.predict_bytes(data).digit for name, data in odd_encodings_of_a_seven().items()}
    assert digits == {"png16": 7, "exif6": 7, "mpo": 7}


def dense_resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """The original resize_area (dense weight matrices built in a loop): the reference the browser matches."""
    def weights(src: int, dst: int) -> np.ndarray:
        scale = src / dst
        w = np.zeros((dst, src))
        for i in range(dst):
            lo, hi = i * scale, (i + 1) * scale
            j = int(np.floor(lo))
            while j < src and j < hi:
                w[i, j] = min(hi, j + 1) - max(lo, j)
                j += 1
            w[i] /= scale
        return w
    return weights(img.shape[0], height) @ img @ weights(img.shape[1], width).T


def test_resize_area_matches_the_dense_reference():
    rng = np.random.default_rng(0)
    shapes = [(2000, 7, 20, 1), (280, 280, 20, 20), (1, 1, 20, 20), (3, 2000, 1, 20), (997, 1999, 11, 20)]
    shapes += [tuple(int(v) for v in rng.integers(1, 400, 2)) + tuple(int(v) for v in rng.integers(1, 41, 2))
               for _ in range(60)]
    for src_h, src_w, dst_h, dst_w in shapes:
        img = rng.random((src_h, src_w))
        got = resize_area(img, dst_h, dst_w)
        assert got.shape == (dst_h, dst_w)
        assert np.abs(got - dense_resize_area(img, dst_h, dst_w)).max() < 1e-9, (src_h, src_w, dst_h, dst_w)


def test_images_up_to_2000_pixels_are_not_reduced_before_preprocessing():
    img = Image.new("RGB", (2000, 1500), "white")
    ImageDraw.Draw(img).line([(500, 300), (1500, 300), (900, 1400)], fill="black", width=1)
    decoded = decode_image(encoded(img, "PNG"))
    assert decoded.size == (2000, 1500)
    assert np.abs(image_to_input(decoded) - image_to_input(img)).max() == 0


def large_seven(side: int = 4200) -> Image.Image:
    return upright_seven().resize((side, side))


def large_turned_jpeg() -> bytes:
    """A large JPEG of a 7 stored turned, EXIF orientation 6: decoded at reduced scale, shrunk, turned upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(large_seven().transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif.tobytes())


def large_16_bit_png() -> bytes:
    """A large 16-bit grayscale PNG of a 7: shrunk band by band, each band scaled to 8 bits."""
    return encoded(Image.fromarray(np.asarray(large_seven()).astype(np.uint16) * 257), "PNG")


@pytest.mark.parametrize("make, tolerance", [(large_turned_jpeg, 0.05), (large_16_bit_png, 1e-6)])
def test_large_images_are_shrunk_early_and_read_right(make, tolerance):
    decoded = decode_image(make())
    assert max(decoded.size) <= 2000 and decoded.mode == "L"
    assert np.abs(image_to_input(decoded) - image_to_input(large_seven())).max() < tolerance


def big_png(width: int, height: int) -> bytes:
    """A mostly white RGB PNG with a thick 7-like stroke: compresses to a few hundred KB."""
    img = Image.new("L", (width, height), 255)
    stroke = max(2, min(width, height) // 15)
    ImageDraw.Draw(img).line([(width * 0.2, height * 0.1), (width * 0.8, height * 0.1), (width * 0.4, height * 0.95)],
                             fill=0, width=stroke)
    return encoded(img.convert("RGB"), "PNG", compress_level=1)


MEASURE = r"""
import sys
from digitlab.inference import image_to_input
from digitlab.inference.predict import decode_image

def megabytes(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

data = open(sys.argv[1], "rb").read()
image_to_input(decode_image(open(sys.argv[2], "rb").read()))  # warm up: imports, plugins
open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from the current size
before = megabytes("VmRSS")
x = image_to_input(decode_image(data))
print(megabytes("VmHWM") - before, float(x.sum()))
"""


def extra_memory_mb(tmp_path, data: bytes) -> tuple[float, float]:
    """Peak resident memory (MB) that decoding and preprocessing `data` adds, in a fresh process; and the ink."""
    (tmp_path / "big.png").write_bytes(data)
    (tmp_path / "small.png").write_bytes(encoded(render(7), "PNG"))
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "big.png"), str(tmp_path / "small.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    extra, ink = map(float, proc.stdout.split())
    return extra, ink


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures peak memory through Linux /proc")
@pytest.mark.parametrize("width, height", [(5000, 5000), (8, 3_125_000)])
def test_largest_accepted_images_cost_bounded_memory(tmp_path, width, height):
    extra, ink = extra_memory_mb(tmp_path, big_png(width, height))
    assert extra < 200, f"{width}x{height} took {extra:.0f} MB extra"
    assert ink > 1  # some ink came out, not an empty frame


def test_decode_to_input_runs_a_bounded_number_of_decodes_at_once(monkeypatch):
    active, peak, lock, release = 0, 0, threading.Lock(), threading.Event()

    def slow_preprocess(image):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(10)
        with lock:
            active -= 1
        return image_to_input(image)

    monkeypatch.setattr(predict, "image_to_input", slow_preprocess)
    data = encoded(render(7), "PNG")
    results = []
    threads = [threading.Thread(target=lambda: results.append(predict.decode_to_input(data))) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in range(200):  # wait (at most 10 s) for the slots to fill, then give extra threads a moment to overrun
        if active >= predict.MAX_CONCURRENT_DECODES:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    release.set()
    for t in threads:
        t.join(10)
    assert peak == predict.MAX_CONCURRENT_DECODES
    assert len(results) == 6 and all(np.array_equal(r, image_to_input(render(7))) for r in results)
