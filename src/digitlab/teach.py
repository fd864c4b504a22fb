"""Fine-tuning with the user's drawings (`digitlab train --with-drawings`, `POST /api/runs` with
`with_drawings`): the base dataset with the learned drawings mixed in (data.drawings.with_drawings),
and the model's accuracy on the held-out drawings and on the base test split, before and after.

The numbers go into the model's record (`drawings`) and the run's provenance, so the page can say
"held-out drawings 20% -> 100%, test 98.2% -> 98.3%".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Dataset
from .data.drawings import SHARE, DrawingStore, with_drawings


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of `images` (N, 28, 28) uint8 the model reads as `labels`; None for no images."""
    if not len(labels):
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for i in range(0, len(labels), 1024):
                x = torch.from_numpy(np.array(images[i:i + 1024], dtype=np.uint8)).to(device).float().div_(255)
                predicted = model(x.unsqueeze(1)).argmax(1).cpu().numpy()
                correct += int((predicted == np.asarray(labels[i:i + 1024])).sum())
    finally:
        model.train(was_training)
    return correct / len(labels)


class Teaching:
    """One fine-tuning run's drawings: the mixed dataset, the held-out drawings, before and after."""

    def __init__(self, base: Dataset, drawings: Dataset, damaged: int = 0, share: float = SHARE):
        self.base = base
        self.drawings = drawings
        self.dataset = with_drawings(base, drawings, share)
        self.share = share
        self.damaged = damaged
        self.repeat = (len(self.dataset.train_labels) - len(base.train_labels)) // len(drawings.train_labels)
        self.before: dict | None = None
        self.after: dict | None = None

    @classmethod
    def load(cls, home: str | Path, base: Dataset, share: float = SHARE) -> "Teaching":
        """The drawings taught in `home` (listed in its database), mixed into `base`."""
        from .server.db import RunDB  # stdlib sqlite3 only: the server's database file

        db = RunDB(Path(home) / "runs.sqlite3")
        try:
            store = DrawingStore(home, db)
            listed = store.list()
            drawings = store.dataset(listed)
            damaged = sum(1 for d in listed if d.damaged)
        finally:
            db.close()
        return cls(base, drawings, damaged, share)

    def measure(self, model: torch.nn.Module, test_accuracy: float | None = None) -> dict:
        """Accuracy on the held-out drawings (None if there are none) and on the base test split
        (`test_accuracy` if the training loop just measured it)."""
        if test_accuracy is None:
            test_accuracy = accuracy(model, self.base.test_images, self.base.test_labels)
        return {"heldout_accuracy": accuracy(model, self.drawings.test_images, self.drawings.test_labels),
                "test_accuracy": test_accuracy}

    def summary(self) -> dict:
        """What was mixed in: counts, the oversampling, and the accuracies known so far."""
        return {"train": int(len(self.drawings.train_labels)), "heldout": int(len(self.drawings.test_labels)),
                "damaged": self.damaged, "repeat": self.repeat, "share": self.share,
                "train_counts": np.bincount(self.drawings.train_labels, minlength=10).tolist(),
                "before": self.before, "after": self.after}
