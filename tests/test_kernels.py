"""The fused C kernels: a stale, foreign or missing library falls back to PyTorch ops with one warning;
the real one reports the expected ABI, and each of its per-ISA copies computes what autograd does."""

import ctypes
import importlib.machinery
import shutil
import subprocess
import types
import warnings
from pathlib import Path

import pytest
import torch

from digitlab.data import load_dataset
from digitlab.data.datasets import Dataset
from digitlab.models import build
from digitlab.training import TrainConfig, fit, kernels
from digitlab.training.loop import fused_view

OWN_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def compile_so(path: Path, source: str) -> Path:
    src = path.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(path), str(src)], check=True)
    return path


STALE = "int digitlab_kernels_version(void) { return 2; }\nvoid cpr_fwd_1_8(void) {}\n"  # no ABI symbol


def load(folder):
    """kernels._load(folder) and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = kernels._load(folder)
    return lib, [str(w.message) for w in caught]


def train_a_little(monkeypatch, lib):
    """fit() on a slice of the sample with kernels.LIB = lib: it learns."""
    monkeypatch.setattr(kernels, "LIB", lib)
    ds = load_dataset("sample")
    small = Dataset("small", ds.train_images[:1000], ds.train_labels[:1000], ds.test_images[:200], ds.test_labels[:200])
    torch.manual_seed(0)
    model = build("blog-cnn")
    assert (fused_view(model) is None) == (lib is None)
    first, *_, last = fit(model, small, TrainConfig(epochs=3, batch_size=50, seed=1)).history
    assert last.loss < first.loss and last.val_accuracy > 0.7


@needs_cc
def test_stale_library_falls_back_with_one_warning(tmp_path, monkeypatch):
    path = compile_so(tmp_path / f"_kernels{OWN_SUFFIX}", STALE)
    lib, messages = load(tmp_path)
    assert lib is None
    assert len(messages) == 1
    assert str(path) in messages[0] and "no digitlab_kernels_abi()" in messages[0]
    train_a_little(monkeypatch, lib)


@needs_cc
def test_wrong_abi_number_falls_back_with_one_warning(tmp_path):
    path = compile_so(tmp_path / "_kernels.so", f"int digitlab_kernels_abi(void) {{ return {kernels.ABI + 1}; }}\n")
    lib, messages = load(tmp_path)
    assert lib is None and len(messages) == 1
    assert str(path) in messages[0] and f"ABI {kernels.ABI + 1}" in messages[0] and f"expects {kernels.ABI}" in messages[0]


@needs_cc
def test_right_abi_without_the_kernels_falls_back(tmp_path):
    compile_so(tmp_path / "_kernels.so", f"int digitlab_kernels_abi(void) {{ return {kernels.ABI}; }}\n")
    lib, messages = load(tmp_path)
    assert lib is None and len(messages) == 1 and "has no kernels for" in messages[0]


def test_foreign_file_falls_back_with_one_warning(tmp_path, monkeypatch):
    path = tmp_path / "_kernels.x.so"
    path.write_bytes(bytes(range(256)) * 16)  # not a shared library at all
    lib, messages = load(tmp_path)
    assert lib is None and len(messages) == 1
    assert str(path) in messages[0] and "cannot be loaded (not a shared library)" in messages[0]
    train_a_little(monkeypatch, lib)


def test_library_for_another_cpu_falls_back_with_one_warning(tmp_path):
    """glibc reports 'No such file or directory' for it; the warning says what is wrong instead."""
    if kernels.LIB is None:
        pytest.fail("the fused kernels were not built (pip install -e . compiles them)")
    elf = bytearray(Path(kernels.LIB._name).read_bytes())
    ours = int.from_bytes(elf[18:20], "little")
    other = 183 if ours != 183 else 62  # AArch64, or x86-64 when this is AArch64
    elf[18:20] = other.to_bytes(2, "little")
    path = tmp_path / "_kernels.so"
    path.write_bytes(bytes(elf))
    lib, messages = load(tmp_path)
    assert lib is None and len(messages) == 1
    assert str(path) in messages[0] and f"built for {kernels._MACHINES[other]}" in messages[0]


def test_no_library_falls_back_with_one_warning(tmp_path):
    lib, messages = load(tmp_path)
    assert lib is None and len(messages) == 1 and "none was built" in messages[0]


@needs_cc
def test_several_libraries_the_usable_one_wins_quietly(tmp_path):
    real = next(Path(kernels.__file__).parent.glob("_kernels*.so"), None)
    if real is None or kernels.LIB is None:
        pytest.fail("the fused kernels were not built (pip install -e . compiles them)")
    compile_so(tmp_path / f"_kernels{OWN_SUFFIX}", STALE)  # tried first: this interpreter's own name
    (tmp_path / "_kernels.abi3.so").write_bytes(b"\x7fELF garbage")
    shutil.copy(real, tmp_path / "_kernels.so")
    lib, messages = load(tmp_path)
    assert lib is not None and messages == []
    assert lib.digitlab_kernels_abi() == kernels.ABI


def test_the_built_library_loads_with_the_expected_abi():
    assert kernels.LIB is not None, "the fused kernels were not built (pip install -e . compiles them)"
    abi = kernels.LIB.digitlab_kernels_abi
    assert abi() == kernels.ABI
    lib, messages = load(Path(kernels.__file__).parent)
    assert lib is not None and messages == []


def isa_copies() -> dict[str, types.SimpleNamespace]:
    """Each ISA's copy of the built kernels (x86-64 GCC builds) as a LIB look-alike, by ISA name.

    The ifunc resolver binds the exported kernels to the CPU's best copy only; this calls the others
    at their addresses (from nm) too, so the AVX2 and baseline code is tested on an AVX-512 machine.
    """
    if kernels.LIB is None or shutil.which("nm") is None:
        return {}
    path = kernels.LIB._name
    symbols = {}
    for line in subprocess.run(["nm", path], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    base = ctypes.cast(kernels.LIB.digitlab_kernels_abi, ctypes.c_void_p).value - symbols["digitlab_kernels_abi"]
    copies = {}
    for isa in NEEDS:
        if not all(f"cpr_{kind}_{ci}_{co}_{isa}" in symbols for kind in ("fwd", "bwd") for ci, co in kernels.SHAPES):
            continue
        ns = types.SimpleNamespace()
        for ci, co in kernels.SHAPES:
            for kind, n_ptr in (("fwd", 5), ("bwd", 8)):
                fn = ctypes.CFUNCTYPE(None)(base + symbols[f"cpr_{kind}_{ci}_{co}_{isa}"])
                fn.argtypes = [ctypes.c_void_p] * n_ptr + [ctypes.c_int] * 3
                setattr(ns, f"cpr_{kind}_{ci}_{co}", fn)
        copies[isa] = ns
    return copies


# what each copy needs from the CPU (/proc/cpuinfo flag names); one this CPU lacks would die of SIGILL
NEEDS = {"baseline": set(), "x86_64_v3": {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
         "x86_64_v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}}
COPIES = isa_copies()


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


@pytest.mark.parametrize("isa", sorted(COPIES) or [None])
@pytest.mark.parametrize("cin, cout, size", [(1, 8, 28), (8, 16, 13), (8, 16, 12), (1, 8, 9)])
def test_every_isa_copy_matches_autograd(monkeypatch, isa, cin, cout, size):
    if isa is None:
        pytest.skip("no per-ISA copies in this build (not x86-64 GCC, or no nm)")
    if not NEEDS[isa] <= cpu_flags():
        pytest.skip(f"this CPU cannot run the {isa} copy")
    monkeypatch.setattr(kernels, "LIB", COPIES[isa])
    torch.manual_seed(cin * size)
    conv = torch.nn.Conv2d(cin, cout, 3)
    x = torch.randn(7, cin, size, size, requires_grad=True)
    x.data[0, :, :4, :4] = 0.0  # ties in the pool go where torch sends them
    ref = torch.relu(torch.nn.functional.max_pool2d(conv(x), 2))
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, [conv.weight, conv.bias, x], g)
    xn = x.detach().permute(0, 2, 3, 1).contiguous().requires_grad_(True)
    out = kernels.ConvPoolReLU(conv)(xn)
    assert torch.allclose(out.permute(0, 3, 1, 2), ref, atol=1e-5)
    grads = torch.autograd.grad(out, [conv.weight, conv.bias, xn], g.permute(0, 2, 3, 1))
    assert torch.allclose(grads[0], ref_grads[0], atol=1e-3, rtol=1e-4)
    assert torch.allclose(grads[1], ref_grads[1], atol=1e-3, rtol=1e-4)
    assert torch.allclose(grads[2].permute(0, 3, 1, 2), ref_grads[2], atol=1e-5)
