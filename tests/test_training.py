import threading

import pytest
import torch

from digitlab.data import load_dataset
from digitlab.data.datasets import Dataset
from digitlab.models import build
from digitlab.training import BatchEnd, ConfigError, EpochEnd, RunStarted, TrainConfig, fit


@pytest.fixture(scope="module")
def small():
    ds = load_dataset("sample")
    return Dataset("small", ds.train_images[:2000], ds.train_labels[:2000], ds.test_images[:500], ds.test_labels[:500])


def test_events_and_learning(small):
    events = []
    result = fit(build("blog-cnn"), small, TrainConfig(epochs=3, batch_size=50, seed=3, printed=0),
                 callbacks=[events.append])
    assert isinstance(events[0], RunStarted) and events[0].batches == 40
    assert sum(isinstance(e, BatchEnd) for e in events) == 120
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].val_accuracy > 0.85
    assert epochs[-1].loss < epochs[0].loss
    assert result.history == epochs and not result.cancelled


def test_same_seed_same_weights(small):
    def run(seed):
        torch.manual_seed(999)  # fit must not depend on the global state
        model = build("blog-cnn")
        fit(model, small, TrainConfig(epochs=1, batch_size=200, seed=seed))
        return model.state_dict()["0.weight"].clone()
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_cancel_keeps_last_finished_epoch(small):
    model = build("blog-cnn")
    cancel = threading.Event()
    snapshots = []

    def on_event(e):
        if isinstance(e, EpochEnd):
            snapshots.append(model.state_dict()["0.weight"].clone())
        if isinstance(e, BatchEnd) and e.epoch == 2 and e.batch == 5:
            cancel.set()
    result = fit(model, small, TrainConfig(epochs=5, batch_size=100), callbacks=[on_event], cancel=cancel)
    assert result.cancelled and result.epochs_done == 1
    assert torch.equal(model.state_dict()["0.weight"], snapshots[0])


def test_cancel_before_first_batch(small):
    model = build("blog-cnn")
    before = model.state_dict()["0.weight"].clone()
    cancel = threading.Event()
    cancel.set()
    result = fit(model, small, TrainConfig(epochs=2), cancel=cancel)
    assert result.cancelled and result.epochs_done == 0
    assert torch.equal(model.state_dict()["0.weight"], before)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs"), ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 5000}, "larger than the 2000"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"), ({"learning_rate": -1.0}, "learning_rate"),
    ({"device": "tpu"}, "device"),
])
def test_bad_hyperparameters(small, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        fit(build("blog-cnn"), small, TrainConfig(**kwargs))


@pytest.fixture(params=["kernels", "torch-ops"])
def trainer_path(request, monkeypatch):
    """Run a test with the fused C kernels and again with PyTorch's own ops."""
    from digitlab.training import kernels
    if request.param == "kernels":
        if kernels.LIB is None:
            pytest.fail("the fused kernels were not built (pip install -e . compiles them)")
    else:
        monkeypatch.setattr(kernels, "LIB", None)
    return request.param


def test_fast_trainer_follows_the_plain_loop(small, trainer_path):
    """Sharded threads, fused kernels or pool-before-relu change speed, not the math."""
    from digitlab.training.reference import plain_fit

    # Unwarped images: the fused path warps in C, the plain loop in torch ops, equal to 2e-5
    # (test_fused_augmentation_equals_the_torch_ops), a difference a few hundred Adam steps amplify
    # past these tolerances; with no warp both see the very same pixels.
    same = dict(epochs=2, batch_size=64, seed=11, augment=0, distort=0.0)
    torch.manual_seed(0)
    plain_model = build("blog-cnn")
    fast_model = build("blog-cnn")
    fast_model.load_state_dict(plain_model.state_dict())
    plain = plain_fit(plain_model, small, TrainConfig(**same))
    fast = fit(fast_model, small, TrainConfig(**same, threads=2)).history
    for p, f in zip(plain, fast):
        assert f.loss == pytest.approx(p["loss"], rel=2e-3)
        assert f.val_loss == pytest.approx(p["val_loss"], rel=2e-3)
        assert abs(f.val_accuracy - p["val_accuracy"]) <= 0.004
    w_plain, w_fast = plain_model.state_dict()["0.weight"], fast_model.state_dict()["0.weight"]
    assert torch.allclose(w_plain, w_fast, atol=2e-3)


def test_training_view_without_kernels_swaps_relu_and_pool_only(monkeypatch):
    from digitlab.training import kernels
    from digitlab.training.loop import training_view
    monkeypatch.setattr(kernels, "LIB", None)
    model = build("blog-cnn")
    view = training_view(model)
    kinds = [type(m).__name__ for m in view]
    assert kinds[:6] == ["Conv2d", "MaxPool2d", "ReLU", "Conv2d", "MaxPool2d", "ReLU"]
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(view(x), model(x), atol=1e-6)
    assert list(view.parameters())[0] is list(model.parameters())[0]


def test_fused_augmentation_equals_the_torch_ops():
    """The C gather-and-warp (fused path) and augment.apply (PyTorch ops, GPU) make the same images."""
    from digitlab.training import augment, kernels
    if kernels.LIB is None:
        pytest.fail("the fused kernels did not build (see DEVELOPERS.md)")
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    part = torch.tensor([3, 0, 39, 17, 17, 8, 21, 5, 11, 30, 2, 9])
    for seed, (shift, distort) in enumerate([(2, 1.0), (0, 0.0), (4, 0.3), (3, 1.0)]):
        d = augment.draw(len(part), shift, distort, torch.Generator().manual_seed(seed))
        got = kernels.augment_gather(x, part, d.theta, d.stroke)
        expected = augment.apply(x.index_select(0, part).float().div_(255), d)
        assert torch.allclose(got, expected, atol=2e-5), (got - expected).abs().max()


def test_cancel_during_the_epoch_end_save(small, tmp_path):
    """A cancel that arrives while the epoch's model is being saved keeps exactly that epoch."""
    from digitlab.job import train_model
    from digitlab.models import ModelStore

    cancel = threading.Event()
    ds_dir = tmp_path / "small"
    ds_dir.mkdir()
    from digitlab.data import write_idx
    from digitlab.data.datasets import STEMS
    for stem, arr in zip(STEMS, (small.train_images, small.train_labels, small.test_images, small.test_labels)):
        write_idx(ds_dir / f"{stem}.gz", arr)

    def on_saved(name, record):
        cancel.set()  # lands while the worker is still inside the save callback
    result = train_model(tmp_path / "home", str(ds_dir), TrainConfig(epochs=4, batch_size=100), name="m",
                         cancel=cancel, save_every_epoch=True, on_saved=on_saved)
    assert result.fit.cancelled and result.fit.epochs_done == 1
    model, record = ModelStore(tmp_path / "home").load("m")
    assert record["epochs"] == 1


@pytest.mark.parametrize("cin, cout, size, input_grad", [(1, 8, 28, False), (1, 8, 28, True), (8, 16, 13, True),
                                                          (8, 16, 12, True)])
def test_fused_kernels_match_torch(cin, cout, size, input_grad):
    from digitlab.training import kernels
    assert kernels.LIB is not None, "the fused kernels were not built"
    torch.manual_seed(cin + size)
    conv = torch.nn.Conv2d(cin, cout, 3)
    x = torch.randn(5, cin, size, size, requires_grad=input_grad)
    x.data[0, :, :4, :4] = 0.0  # flat regions: ties in the pool must go where torch sends them
    ref = torch.relu(torch.nn.functional.max_pool2d(conv(x), 2))
    g = torch.randn_like(ref)
    wanted = [conv.weight, conv.bias] + ([x] if input_grad else [])
    ref_grads = torch.autograd.grad(ref, wanted, g)
    xn = x.detach().permute(0, 2, 3, 1).contiguous().requires_grad_(input_grad)
    out = kernels.ConvPoolReLU(conv)(xn)
    assert torch.allclose(out.permute(0, 3, 1, 2), ref, atol=1e-5)
    grads = torch.autograd.grad(out, [conv.weight, conv.bias] + ([xn] if input_grad else []), g.permute(0, 2, 3, 1))
    assert torch.allclose(grads[0], ref_grads[0], atol=1e-3, rtol=1e-4)
    assert torch.allclose(grads[1], ref_grads[1], atol=1e-3, rtol=1e-4)
    if input_grad:
        assert torch.allclose(grads[2].permute(0, 3, 1, 2), ref_grads[2], atol=1e-5)


def test_fused_view_of_the_blog_cnn_matches_the_model():
    from digitlab.training.loop import fused_view
    model = build("blog-cnn")
    view = fused_view(model)
    assert view is not None
    x = torch.rand(9, 1, 28, 28)
    assert torch.allclose(view(x), model(x), atol=1e-5)


@pytest.mark.parametrize("train_size, batch_size, epochs", [(600, 128, 1), (100, 100, 1), (200, 100, 1), (300, 100, 1)])
def test_tiny_runs_train(train_size, batch_size, epochs):
    """One epoch of 1-5 batches used to crash in the schedule (ZeroDivisionError)."""
    from dataclasses import replace

    from digitlab.data import load_dataset
    from digitlab.models import build
    from digitlab.training import TrainConfig, fit

    ds = load_dataset("sample")
    small = replace(ds, train_images=ds.train_images[:train_size], train_labels=ds.train_labels[:train_size])
    result = fit(build("blog-cnn"), small, TrainConfig(epochs=epochs, batch_size=batch_size))
    assert result.epochs_done == epochs


def test_batch_events_are_thinned_but_every_epochs_last_batch_and_other_event_passes():
    """What a run streams: batch ends at most once per interval (50 a second by default), but never
    an epoch's last batch or an epoch end, so the page's progress and epoch points are always exact."""
    from digitlab.training.events import BATCH_EVENT_INTERVAL, BatchThrottle
    assert BATCH_EVENT_INTERVAL == 1 / 50
    passes = BatchThrottle(interval=60.0)  # nothing in this test is 60 s apart
    batch = lambda b: BatchEnd(epoch=1, batch=b, batches=5, loss=1.0, accuracy=0.5, images_per_s=1.0, elapsed=0.0)
    epoch = EpochEnd(epoch=1, epochs=2, loss=1.0, accuracy=0.5, val_loss=1.0, val_accuracy=0.5, images_per_s=1.0,
                     elapsed=0.0, epoch_seconds=1.0)
    assert [passes(batch(b)) for b in range(1, 6)] == [True, False, False, False, True]
    assert passes(epoch)
    assert not passes(batch(1))  # the interval runs on across epochs
