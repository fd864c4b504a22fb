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

__all__ = ["Dataset", "load_dataset", "dataset_names", "default_home", "BUILTINS", "REMOTES", "find_idx_files",
           "printed_digits", "with_printed"]

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
            RemoteFile("train-images-idx3-ubyte.gz", "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            RemoteFile("train-labels-idx1-ubyte.gz", "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            RemoteFile("t10k-images-idx3-ubyte.gz", "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        ),
    ),
    # Zalando publishes MD5 sums only.
    "fashion-mnist": RemoteDataset(
        "fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
            RemoteFile("train-labels-idx1-ubyte.gz", "md5:25c81989df183df01b3e8a0aad5dffbe", 29515),
            RemoteFile("t10k-images-idx3-ubyte.gz", "md5:bef4ecab320f06d8554ea6380940ec79", 4422102),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "md5:bb300cfdad3c16e7a12a480ee83cd310", 5148),
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
            "train_counts": np.bincount(self.train_labels, minlength=len(self.classes)).tolist(),
            "test_counts": np.bincount(self.test_labels, minlength=len(self.classes)).tolist(),
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


CLASSES_FILE = "classes.txt"
MIN_CLASSES, MAX_CLASSES = 2, 256
MAX_CLASS_NAME = 64  # characters


def read_class_names(path: Path) -> tuple[str, ...]:
    """`classes.txt`: one class name a line (UTF-8; a final newline is optional), 2 to 256 distinct names."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_CLASSES * (4 * MAX_CLASS_NAME + 2):
        raise DatasetError(f"{path.name}: {len(raw):,} bytes, too large for {MAX_CLASSES} names")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name}: not UTF-8 text") from None
    lines = text.splitlines()
    names = tuple(line.strip() for line in lines)
    if not MIN_CLASSES <= len(names) <= MAX_CLASSES:
        raise DatasetError(f"{path.name}: {len(names)} names; a dataset has {MIN_CLASSES} to {MAX_CLASSES} classes")
    for i, name in enumerate(names, 1):
        if not name:
            raise DatasetError(f"{path.name}: line {i} is empty (one class name a line)")
        if len(name) > MAX_CLASS_NAME or not name.isprintable():
            raise DatasetError(f"{path.name}: line {i}: a class name is 1-{MAX_CLASS_NAME} printable characters")
        if names.index(name) != i - 1:
            raise DatasetError(f"{path.name}: line {i}: {name[:40]!r} is named twice (line {names.index(name) + 1})")
    return names


def folder_classes(folder: Path, train_labels: np.ndarray, test_labels: np.ndarray,
                   label_files: tuple[Path, Path]) -> tuple[str, ...]:
    """The class names of an IDX folder whose labels are 0..K-1.

    With `classes.txt`, K is its number of lines and every label must be below K, the largest
    one being K-1. Without it, labels 0-9 are the ten digits (as before classes.txt existed; a
    split may lack some) and larger labels make K = the largest label + 1, named "0".."K-1".
    """
    top = max(int(train_labels.max()), int(test_labels.max()))
    which = label_files[0] if int(train_labels.max()) == top else label_files[1]
    if not (folder / CLASSES_FILE).is_file():
        return DIGITS if top <= 9 else tuple(str(k) for k in range(top + 1))
    names = read_class_names(folder / CLASSES_FILE)
    if top + 1 != len(names):
        problem = (f"label {top} in {which.name} is not one of them" if top >= len(names)
                   else f"but the labels stop at {top}, so {len(names) - top - 1} class(es) would never be seen")
        raise DatasetError(f"{CLASSES_FILE} names {len(names)} classes (labels 0..{len(names) - 1}) {problem}")
    return names


def load_folder(folder: str | os.PathLike, name: str | None = None, classes=None) -> Dataset:
    """Load and validate the four IDX files of a folder; `classes`: the built-ins' names, else
    from the folder's labels and its optional classes.txt (folder_classes)."""
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
    if classes is None:
        classes = folder_classes(folder, arrays[1], arrays[3], (files[1], files[3]))
    elif max(int(arrays[1].max()), int(arrays[3].max())) >= len(classes):
        raise DatasetError(f"{folder}: a label outside 0..{len(classes) - 1} ({len(classes)} classes)")
    resolved = folder.resolve()
    return Dataset(name or resolved.name or "folder", *arrays, classes=tuple(classes), source=str(folder),
                   spec=str(resolved))


def sample_folder() -> Path:
    return Path(str(resources.files("digitlab.data") / "sample"))


def printed_digits() -> tuple[np.ndarray, np.ndarray]:
    """The printed-digit supplement (data/printed/PROVENANCE.md): uint8 images (N, 28, 28), labels (N,)."""
    folder = Path(str(resources.files("digitlab.data") / "printed"))
    return read_idx(folder / "images-idx3-ubyte.gz"), read_idx(folder / "labels-idx1-ubyte.gz")


def is_digits(dataset: Dataset) -> bool:
    """Whether `dataset` holds the digits 0-9 (handwriting): the printed supplement and the
    handwriting distortions apply to these only (Fashion-MNIST's upright clothes lose 3.6 points
    to them)."""
    return tuple(dataset.classes) == DIGITS


def with_printed(dataset: Dataset, times: int) -> Dataset:
    """`dataset` with the printed digits added `times` over to its training split, for a dataset
    of the digits 0-9 (others are returned as they are). The test split is never touched."""
    if not times or not is_digits(dataset):
        return dataset
    images, labels = printed_digits()
    return replace(dataset, train_images=np.concatenate([dataset.train_images] + [images] * times),
                   train_labels=np.concatenate([np.asarray(dataset.train_labels)] + [labels.astype(dataset.train_labels.dtype)] * times))


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
        return replace(load_folder(sample_folder(), "sample", DIGITS), spec="sample")
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
    """The remote of `spec`, with DIGITLAB_MIRROR (a base URL) tried first when set.

    DIGITLAB_MIRROR_ONLY=1 makes it the only one (an internal mirror, an air-gapped site, tests):
    no request then leaves for the public mirrors.
    """
    remote = REMOTES[spec]
    mirror = os.environ.get("DIGITLAB_MIRROR")
    if mirror:
        only = os.environ.get("DIGITLAB_MIRROR_ONLY", "").strip().lower() in ("1", "true", "yes")
        return RemoteDataset(remote.name, (mirror,) if only else (mirror, *remote.mirrors), remote.files)
    return remote
