import gzip
import tracemalloc
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from digitlab.data import DatasetError, parse_idx, read_idx, write_idx


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_roundtrip_images_and_labels(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / f"i{suffix}", images)
    write_idx(tmp_path / f"l{suffix}", labels)
    assert np.array_equal(read_idx(tmp_path / f"i{suffix}"), images)
    assert np.array_equal(read_idx(tmp_path / f"l{suffix}"), labels)


def test_parse_is_a_view_not_a_copy():
    data = bytearray(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    arr = parse_idx(data)
    data[-1] = 7
    assert arr[-1, -1, -1] == 7


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x00\x00\x09\x03" + b[4:], "bad IDX magic"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"xx", "trailing bytes"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b"", "truncated IDX header"),
])
def test_malformed_files_name_file_and_problem(tmp_path, mutate, message):
    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mutate(raw))
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_truncated_gzip_and_huge_header_are_refused(tmp_path):
    raw = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "a.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="a.gz"):
        read_idx(tmp_path / "a.gz")
    # a header claiming 2^32 x 2^32 x 2^32 bytes must not make us try to allocate it
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\xff" * 12))
    with pytest.raises(DatasetError, match="claims"):
        read_idx(tmp_path / "b.gz")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_dataset_error(data):
    try:
        parse_idx(data)
    except DatasetError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_valid_files_raise_only_dataset_error(tmp_path_factory, data):
    raw = bytearray(idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    blob = bytes(raw[:cut])
    if data.draw(st.booleans()):
        blob = gzip.compress(blob)
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = tmp_path_factory.mktemp("fuzz") / "f"
    path.write_bytes(blob)
    try:
        out = read_idx(path)
        assert out.dtype == np.uint8
    except DatasetError:
        pass


def traced_peak(fn) -> tuple[int, str]:
    """Peak bytes Python and numpy allocated while `fn` ran, and the DatasetError it must raise."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as info:
            fn()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dims, size, message", [
    ((1000, 28, 28), 2 << 30, "trailing bytes"),           # claims 784 KB of the 2 GiB
    (((2 << 30) - 8,), 2 << 30, "more than the 1 GiB"),    # claims exactly the file: too big to be a dataset
    ((3_000_000, 28, 28), 2 << 30, "more than the 1 GiB"),  # claims 2.35 GB
    ((1_000_000, 28, 28), 512 << 20, "truncated"),         # claims 784 MB, the file holds 512 MiB
])
def test_huge_sparse_plain_file_is_refused_before_reading(tmp_path, dims, size, message):
    path = tmp_path / "big-idx1-ubyte"
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims))
        f.truncate(size)  # sparse: takes no disk, but reading it whole would take that much memory
    peak, text = traced_peak(lambda: read_idx(path))
    assert message in text and "big-idx1-ubyte" in text and "\n" not in text
    assert peak < 1 << 20


def test_gzip_header_claiming_billions_of_items_is_refused_without_allocating(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 4_000_000_000) + bytes(1000)))
    peak, text = traced_peak(lambda: read_idx(path))
    assert "labels.gz" in text and "claims" in text and "4,000,000,000" in text
    assert peak < 1 << 20


def test_gzip_ending_short_is_read_no_further_than_it_holds(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBBIII", 0, 8, 3, 1_000_000, 28, 28) + bytes(28 * 28)))
    peak, text = traced_peak(lambda: read_idx(path))
    assert "short.gz: payload truncated" in text and "1000000x28x28" in text
    assert peak < 64 << 20  # the header announces 784 MB; only what the stream holds is buffered
