"""The dataset registry: the embedded sample, full MNIST, Fashion-MNIST and any IDX folder."""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from .download import RemoteDataset, RemoteFile, download
from .idx import DatasetError, read_idx

__all__ = ["Dataset", "load_dataset", "dataset_names", "default_home", "BUILTINS", "REMOTES", "find_idx_files"]

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS = tuple(str(d) for d in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

REMOTES = {
    "mnist": RemoteDataset(
        "mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            RemoteFile("train-labels-idx1-ubyte.gz", "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ),
    ),
    # Zalando publishes MD5 sums only.
    "fashion-mnist": RemoteDataset(
        "fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "md5:25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "md5:bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "md5:bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as uint8 arrays (N, 28, 28) and int labels (N,), with class names."""

    name: str
    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = DIGITS
    source: str = ""
    spec: str = ""  # what load_dataset() takes to load it again: a built-in name, or a folder's resolved path

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of both splits (shapes, pixels, labels): the same digits, the same hash."""
        digest = hashlib.sha256()
        for arr in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(repr(arr.shape).encode())
            digest.update(np.ascontiguousarray(arr, dtype=np.uint8).data)
        return digest.hexdigest()

    def describe(self) -> dict:
        """Sizes and class balance, as shown by `digitlab data` and the web page."""
        return {
            "name": self.name,
            "source": self.source,
            "train": int(len(self.train_labels)),
            "test": int(len(self.test_labels)),
            "image_shape": list(self.train_images.shape[1:]),
            "classes": list(self.classes),
            "train_counts": np.bincount(self.train_labels, minlength=10).tolist(),
            "test_counts": np.bincount(self.test_labels, minlength=10).tolist(),
        }


def default_home() -> Path:
    """Where models, the run database and the download cache live (`--home`, DIGITLAB_HOME)."""
    return Path(os.environ.get("DIGITLAB_HOME") or Path.home() / ".digitlab")


BUILTINS = ("sample", "mnist", "fashion-mnist")


def dataset_names() -> list[str]:
    return list(BUILTINS)


def find_idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files of `folder` (plain or .gz) in STEMS order, or None if any is missing."""
    found = []
    for stem in STEMS:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _check_split(images: np.ndarray, labels: np.ndarray, files: list[Path]) -> None:
    img_file, lbl_file = files
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{img_file.name}: expected 28x28 images, got shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{lbl_file.name}: expected a 1-dimensional label file, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{img_file.name} holds {len(images)} images but {lbl_file.name} {len(labels)} labels")
    if len(labels) == 0:
        raise DatasetError(f"{lbl_file.name}: no examples")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lbl_file.name}: label {int(labels.max())} outside 0-9")


def load_folder(folder: str | os.PathLike, name: str | None = None, classes=DIGITS) -> Dataset:
    """Load and validate the four IDX files of a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (and not one of {', '.join(dataset_names())})")
    files = find_idx_files(folder)
    if files is None:
        missing = [s for s in STEMS if not (folder / s).is_file() and not (folder / f"{s}.gz").is_file()]
        raise DatasetError(f"{folder}: missing IDX file(s) {', '.join(missing)} (plain or .gz)")
    arrays = [read_idx(f) for f in files]
    _check_split(arrays[0], arrays[1], files[0:2])
    _check_split(arrays[2], arrays[3], files[2:4])
    resolved = folder.resolve()
    return Dataset(name or resolved.name or "folder", *arrays, classes=tuple(classes), source=str(folder),
                   spec=str(resolved))


def sample_folder() -> Path:
    return Path(str(resources.files("digitlab.data") / "sample"))


def load_dataset(spec: str = "sample", home: Path | None = None, allow_download: bool = True,
                 progress: bool = False) -> Dataset:
    """Load a dataset by built-in name (`sample`, `mnist`, `fashion-mnist`) or folder path.

    Exactly those three names mean the built-in datasets; anything else is a folder (write
    `./mnist` for a folder of that name). A folder dataset is named after the folder and
    remembered by its resolved path (`Dataset.spec`), so a record can load it again later.
    `mnist` and `fashion-mnist` are downloaded once into `home/datasets/NAME` (verified against
    the published checksums); Fashion-MNIST comes from Debian's package when it is installed.
    """
    if spec == "sample":
        return replace(load_folder(sample_folder(), "sample"), spec="sample")
    if spec in REMOTES:
        classes = FASHION if spec == "fashion-mnist" else DIGITS
        folder = local_folder(spec, home)
        if folder is None:
            if not allow_download:
                raise DatasetError(f"{spec}: not downloaded yet; run `digitlab data --dataset {spec} --download`")
            folder = download(remote_for(spec), cached_folder(spec, home), progress=progress)
        return replace(load_folder(folder, spec, classes), spec=spec)
    if spec and (os.sep in spec or "/" in spec or spec.startswith((".", "~")) or Path(spec).is_dir()):
        return load_folder(Path(spec).expanduser())  # says "not a folder" for a path that is not one
    raise DatasetError(f"unknown dataset {spec!r}: use {', '.join(dataset_names())} or a folder of IDX files")


def local_folder(spec: str, home: Path | None = None) -> Path | None:
    """Where a downloadable dataset already is on this machine (Debian's package, then the cache)."""
    if spec == "fashion-mnist" and find_idx_files(FASHION_SYSTEM_DIR):
        return FASHION_SYSTEM_DIR
    cache = cached_folder(spec, home)
    return cache if all((cache / f.name).is_file() for f in REMOTES[spec].files) else None


def cached_folder(spec: str, home: Path | None = None) -> Path:
    return (home or default_home()) / "datasets" / spec


def remote_for(spec: str) -> RemoteDataset:
    """The remote of `spec`, with DIGITLAB_MIRROR (a base URL) tried first when set."""
    remote = REMOTES[spec]
    mirror = os.environ.get("DIGITLAB_MIRROR")
    if mirror:
        return RemoteDataset(remote.name, (mirror, *remote.mirrors), remote.files)
    return remote
