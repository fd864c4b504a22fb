import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from digitlab.data import DatasetError, load_dataset, load_folder, write_idx
from digitlab.data.datasets import FASHION_SYSTEM_DIR, STEMS
from digitlab.data.download import RemoteDataset, RemoteFile, download


def make_folder(folder: Path, n_train=30, n_test=10, gz=True, labels_max=9) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{STEMS[0]}{ext}", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / f"{STEMS[1]}{ext}", rng.integers(0, labels_max + 1, n_train, dtype=np.uint8))
    write_idx(folder / f"{STEMS[2]}{ext}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / f"{STEMS[3]}{ext}", rng.integers(0, labels_max + 1, n_test, dtype=np.uint8))
    return folder


def test_sample_is_embedded_with_attribution():
    ds = load_dataset("sample")
    assert ds.train_images.shape == (8000, 28, 28) and ds.test_images.shape == (2000, 28, 28)
    info = ds.describe()
    assert info["test_counts"] == [215, 213, 198, 187, 195, 179, 203, 228, 190, 192]
    provenance = Path(ds.source, "PROVENANCE.md").read_text()
    assert "LeCun" in provenance and "CC BY-SA 3.0" in provenance


@pytest.mark.parametrize("gz", [True, False])
def test_any_folder_of_four_files(tmp_path, gz):
    ds = load_dataset(str(make_folder(tmp_path / "mine", gz=gz)))
    assert ds.name == "mine" and len(ds.train_labels) == 30 and len(ds.test_labels) == 10


def test_folder_problems_are_named(tmp_path):
    folder = make_folder(tmp_path / "a")
    (folder / f"{STEMS[3]}.gz").unlink()
    with pytest.raises(DatasetError, match="missing IDX file.*t10k-labels"):
        load_folder(folder)
    folder = make_folder(tmp_path / "b", labels_max=12)
    (folder / "classes.txt").write_text("".join(f"c{k}\n" for k in range(12)))  # 12 names, labels 0..12
    with pytest.raises(DatasetError, match="classes.txt names 12 classes .* label 12 in .* is not one of them"):
        load_folder(folder)
    folder = make_folder(tmp_path / "c")
    write_idx(folder / f"{STEMS[1]}.gz", np.zeros(29, np.uint8))
    with pytest.raises(DatasetError, match="30 images but .* 29 labels"):
        load_folder(folder)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nope")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 3), cut=st.integers(0, 2000), flip=st.integers(0, 255))
def test_mutated_folders_raise_only_dataset_error(tmp_path, which, cut, flip):
    folder = tmp_path / f"f{which}-{cut}-{flip}"
    make_folder(folder, gz=False)
    target = folder / STEMS[which]
    raw = bytearray(target.read_bytes())
    raw[min(cut, len(raw) - 1)] = flip
    target.write_bytes(bytes(raw[: cut + 1]))
    try:
        load_folder(folder)
    except DatasetError:
        pass


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    ds = load_dataset("fashion-mnist", home=tmp_path, allow_download=False)
    assert len(ds.train_labels) == 60000 and len(ds.test_labels) == 10000
    assert ds.classes[9] == "Ankle boot"


class _Server:
    """A local HTTP server for the download tests: serves `files`, optionally corrupted or cut short."""

    def __init__(self, files: dict[str, bytes], mode: str = "ok"):
        outer = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "corrupt":
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                elif mode == "truncated":
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/data/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def remote_files(tmp_path):
    src = make_folder(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    remote_of = lambda url: RemoteDataset("test", (url,), tuple(
        RemoteFile(name, "sha256:" + hashlib.sha256(body).hexdigest()) for name, body in files.items()))
    return files, remote_of


def test_download_verifies_and_caches(tmp_path, remote_files):
    files, remote_of = remote_files
    server = _Server(files)
    try:
        cache = download(remote_of(server.url), tmp_path / "cache", progress=False)
        assert load_folder(cache).train_images.shape == (30, 28, 28)
        hits = server.hits
        download(remote_of(server.url), cache, progress=False)  # second time: nothing fetched
        assert server.hits == hits
    finally:
        server.close()


@pytest.mark.parametrize("mode", ["corrupt", "truncated"])
def test_bad_downloads_leave_nothing_in_cache(tmp_path, remote_files, mode):
    files, remote_of = remote_files
    server = _Server(files, mode)
    try:
        with pytest.raises(DatasetError, match="could not download"):
            download(remote_of(server.url), tmp_path / "cache", progress=False)
    finally:
        server.close()
    assert list((tmp_path / "cache").iterdir()) == []


def test_falls_back_to_next_mirror(tmp_path, remote_files):
    files, remote_of = remote_files
    bad, good = _Server(files, "corrupt"), _Server(files)
    try:
        remote = remote_of(bad.url)
        remote = RemoteDataset(remote.name, (bad.url, good.url), remote.files)
        download(remote, tmp_path / "cache", progress=False)
        assert len(list((tmp_path / "cache").iterdir())) == 4
    finally:
        bad.close()
        good.close()


def test_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("digitlab.data.datasets.REMOTES", {
        "mnist": RemoteDataset("mnist", ("http://127.0.0.1:9/",), (RemoteFile("x.gz", "sha256:00"),))})
    with pytest.raises(DatasetError, match="could not download x.gz.*offline"):
        load_dataset("mnist", home=tmp_path)
    with pytest.raises(DatasetError, match="not downloaded yet"):
        load_dataset("mnist", home=tmp_path, allow_download=False)
