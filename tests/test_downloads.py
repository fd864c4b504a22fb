"""Downloading datasets: download()'s progress and cancel, and the page's routes that run it in the background.

Every download here comes from a local HTTP mirror (tests/mirror_util.py); nothing leaves the machine.
"""

import hashlib
import os
import time

import numpy as np
import pytest

from digitlab.data import write_idx
from digitlab.data.datasets import REMOTES, STEMS, remote_for
from digitlab.data.download import DownloadCancelled, RemoteDataset, RemoteFile, download
from mirror_util import Mirror


def idx_files(folder, n_train=40, n_test=10) -> dict[str, bytes]:
    """Four small, valid IDX files (gzipped), name -> bytes."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    for stem, arr in zip(STEMS, arrays):
        write_idx(folder / f"{stem}.gz", arr)
    return {f"{stem}.gz": (folder / f"{stem}.gz").read_bytes() for stem in STEMS}


def remote(name, url, files, sizes=True) -> RemoteDataset:
    return RemoteDataset(name, (url,), tuple(
        RemoteFile(n, "sha256:" + hashlib.sha256(b).hexdigest(), len(b) if sizes else None) for n, b in files.items()))


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("sizes", [True, False])
def test_progress_counts_every_file_and_ends_at_the_total(tmp_path, sizes):
    files = idx_files(tmp_path / "src")
    seen = []
    with Mirror(files) as mirror:
        download(remote("t", mirror.url, files, sizes), tmp_path / "cache", progress=False, on_progress=seen.append, every=0)
    total = sum(len(b) for b in files.values())
    assert seen[-1].done == total and seen[-1].files_done == 4 and seen[-1].files == 4
    assert all(a.done <= b.done for a, b in zip(seen, seen[1:]))  # never backwards
    if sizes:  # published sizes: the whole total from the first report
        assert {p.total for p in seen} == {total}
    else:  # unknown until each file's Content-Length arrives
        assert seen[0].total is None and seen[-1].total == total
    assert {p.file for p in seen} == set(files)


def test_nothing_to_fetch_reports_nothing(tmp_path):
    files = idx_files(tmp_path / "src")
    with Mirror(files) as mirror:
        download(remote("t", mirror.url, files), tmp_path / "cache", progress=False)
        seen = []
        download(remote("t", mirror.url, files), tmp_path / "cache", progress=False, on_progress=seen.append)
        assert seen == [] and len(mirror.hits) == 4


def test_cancel_stops_within_a_chunk_and_keeps_no_partial_file(tmp_path):
    files = {"big.bin": os.urandom(3 << 20)}
    seen = []
    with Mirror(files, rate=1 << 20) as mirror:  # 3 s at 1 MiB/s
        t0 = time.monotonic()
        with pytest.raises(DownloadCancelled):
            download(remote("t", mirror.url, files), tmp_path / "cache", progress=False, on_progress=seen.append,
                     cancelled=lambda: bool(seen) and seen[-1].done > 0, every=0)
        assert time.monotonic() - t0 < 1.5
    assert 0 < seen[-1].done < len(files["big.bin"])
    assert leftovers(tmp_path / "cache") == []


def test_files_finished_before_a_cancel_stay_verified(tmp_path):
    files = idx_files(tmp_path / "src")
    names = list(files)
    with Mirror(files) as mirror:
        with pytest.raises(DownloadCancelled):
            download(remote("t", mirror.url, files), tmp_path / "cache", progress=False,
                     cancelled=lambda: (tmp_path / "cache" / names[1]).exists())
    assert leftovers(tmp_path / "cache") == sorted(names[:2])


def test_mirror_setting_is_tried_first_or_alone(monkeypatch):
    monkeypatch.setenv("DIGITLAB_MIRROR", "http://mirror.example/mnist/")
    monkeypatch.delenv("DIGITLAB_MIRROR_ONLY", raising=False)
    assert remote_for("mnist").mirrors == ("http://mirror.example/mnist/", *REMOTES["mnist"].mirrors)
    monkeypatch.setenv("DIGITLAB_MIRROR_ONLY", "1")
    assert remote_for("mnist").mirrors == ("http://mirror.example/mnist/",)
    monkeypatch.delenv("DIGITLAB_MIRROR")
    assert remote_for("mnist").mirrors == REMOTES["mnist"].mirrors  # ONLY without a mirror changes nothing


def test_published_sizes_are_listed_for_the_progress_bar():
    for name in ("mnist", "fashion-mnist"):
        assert all(f.size and f.size > 1000 for f in REMOTES[name].files), name


# ---- the routes: the download in a background thread, polled -----------------------------------------

@pytest.fixture
def api(tmp_path, monkeypatch):
    """The app in-process (no training worker needed) with `mnist` coming from a local mirror."""
    from starlette.testclient import TestClient

    from digitlab.server.app import create_app

    monkeypatch.delenv("DIGITLAB_MIRROR", raising=False)
    app = create_app(tmp_path / "home")
    client = TestClient(app)
    client.home = tmp_path / "home"

    def serve(mirror, files):
        monkeypatch.setitem(REMOTES, "mnist", remote("mnist", mirror.url, files))
    client.serve = serve
    yield client
    app.state.digitlab.downloads.close()


def wait_download(client, name="mnist", until=lambda s: s["state"] != "running", timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/api/datasets/{name}/download").json()
        if until(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"download still {status}")


def test_download_from_the_page_verifies_and_makes_the_dataset_usable(api, tmp_path):
    files = idx_files(tmp_path / "src")
    with Mirror(files) as mirror:
        api.serve(mirror, files)
        entry = next(d for d in api.get("/api/datasets").json()["datasets"] if d["name"] == "mnist")
        assert entry["available"] is False and entry["downloadable"] is True
        assert entry["download_size"] == sum(len(b) for b in files.values())
        assert api.get("/api/datasets/mnist/download").json()["state"] == "idle"
        r = api.post("/api/datasets/mnist/download")
        assert r.status_code == 202 and r.json()["state"] == "running"
        status = wait_download(api)
    assert status["state"] == "finished" and status["done"] == status["total"] == entry["download_size"]
    assert status["files_done"] == 4 and status["error"] is None
    entry = next(d for d in api.get("/api/datasets").json()["datasets"] if d["name"] == "mnist")
    assert entry["available"] is True and entry["train"] == 40
    assert len(api.get("/api/datasets/mnist/examples", params={"count": 3}).json()["examples"]) == 3
    again = api.post("/api/datasets/mnist/download")
    assert again.status_code == 409 and again.json() == {"error": "mnist is already on this machine"}


def test_a_bad_checksum_fails_in_one_line_and_caches_nothing(api, tmp_path):
    files = idx_files(tmp_path / "src")
    with Mirror(files, mode="corrupt") as mirror:
        api.serve(mirror, files)
        api.post("/api/datasets/mnist/download")
        status = wait_download(api)
    assert status["state"] == "failed"
    assert "checksum mismatch" in status["error"] and "\n" not in status["error"]
    assert leftovers(api.home / "datasets" / "mnist") == []
    assert api.post("/api/datasets/mnist/download").status_code == 202  # it may be tried again
    wait_download(api)


def test_offline_fails_with_the_reason(api, tmp_path):
    files = idx_files(tmp_path / "src")
    closed = Mirror(files)
    closed.close()  # nothing listens there any more
    api.serve(closed, files)
    api.post("/api/datasets/mnist/download")
    status = wait_download(api)
    assert status["state"] == "failed" and "offline" in status["error"] and "\n" not in status["error"]


def test_cancel_from_the_page(api, tmp_path):
    files = {name: os.urandom(1 << 20) for name in ("a.gz", "b.gz")}
    with Mirror(files, rate=1 << 20) as mirror:
        api.serve(mirror, files)
        api.post("/api/datasets/mnist/download")
        second = api.post("/api/datasets/mnist/download")
        assert second.status_code == 409 and "already downloading" in second.json()["error"]
        wait_download(api, until=lambda s: s["done"] > 0)
        r = api.post("/api/datasets/mnist/download/cancel")
        assert r.status_code == 200 and r.json()["cancelling"] is True
        status = wait_download(api, timeout=3)
    assert status["state"] == "cancelled" and status["done"] < 2 << 20
    assert leftovers(api.home / "datasets" / "mnist") == []
    assert api.post("/api/datasets/mnist/download/cancel").status_code == 409


@pytest.mark.parametrize("path, status", [
    ("/api/datasets/nope/download", 404), ("/api/datasets/sample/download", 422),
    ("/api/datasets/nope/download/cancel", 404), ("/api/datasets/sample/download/cancel", 422),
])
def test_only_remote_datasets_download(api, path, status):
    r = api.post(path)
    assert r.status_code == status and set(r.json()) == {"error"}
    if "cancel" not in path:
        assert api.get(path).status_code == status


def test_another_origin_cannot_start_or_cancel_a_download(api, tmp_path):
    files = idx_files(tmp_path / "src")
    with Mirror(files) as mirror:
        api.serve(mirror, files)
        evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        for path in ("/api/datasets/mnist/download", "/api/datasets/mnist/download/cancel"):
            r = api.post(path, headers=evil)
            assert r.status_code == 403 and "cross-origin" in r.json()["error"]
        assert mirror.hits == [] and api.get("/api/datasets/mnist/download").json()["state"] == "idle"
