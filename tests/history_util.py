"""Runs written into a run database the way the run manager writes them: for history tests too long to train."""

from __future__ import annotations

from digitlab.server.db import RunDB


def long_run(db: RunDB, run: str, epochs: int, batches: int, stored: int, model: str = "long") -> None:
    """A finished run of `epochs` x `batches` with `stored` batch events an epoch, as the run manager writes them."""
    db.create(run, model, "sample", {"epochs": epochs, "batch_size": 64, "learning_rate": 0.004, "seed": 0})
    seq = 0
    for epoch in range(1, epochs + 1):
        for batch in range(batches // stored, batches + 1, batches // stored):
            n = (epoch - 1) * batches + batch
            db.add_event(run, seq, {"type": "batch.end", "run": run, "epoch": epoch, "batch": batch, "batches": batches,
                                    "loss": 2 / n ** 0.5 + (5 if n == 100_004 else 0), "accuracy": 1 - 1 / n ** 0.5,
                                    "images_per_s": 1e4, "elapsed": n / 100})
            seq += 1
        db.add_event(run, seq, {"type": "epoch.end", "run": run, "epoch": epoch, "epochs": epochs, "loss": 0.5,
                                "accuracy": 0.9, "val_loss": 1 / epoch, "val_accuracy": 0.9 - (0.2 if epoch == 7 else 0) + epoch / 1e5,
                                "images_per_s": 1e4, "elapsed": epoch, "epoch_seconds": 1.0})
        seq += 1
    db.finish(run, "finished", seconds=float(epochs), test_accuracy=0.91)
