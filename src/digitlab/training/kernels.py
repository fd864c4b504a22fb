"""Fused conv3x3 + maxpool2 + ReLU (kernels.c), as a torch autograd Function, loaded with ctypes.

Used by fit() for the layers of the blog's CNN when the compiled library is there (it is built
by `pip install`, see setup.py); otherwise fit() runs the same math with PyTorch's own ops.
A missing, stale (older kernels.c) or foreign library is never an error: LIB is None and one
warning says which file was skipped and why. Tensors are NHWC float32. ctypes releases the GIL
during each call, so batch shards on different threads run these kernels in parallel.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

# What kernels.c's digitlab_kernels_abi() must return: bump both whenever a signature or layout changes.
ABI = 4
SHAPES = {(1, 8), (8, 16)}  # (in_channels, out_channels) specialisations in kernels.c
_P = ctypes.c_void_p
_I = ctypes.c_int


class _Unusable(Exception):
    """Why a kernel library was skipped (the message goes into the warning)."""


def _candidates(folder: Path) -> list[Path]:
    """The _kernels*.so files in `folder`; the one built for this interpreter first."""
    found = sorted(folder.glob("_kernels*.so"))
    own = [folder / f"_kernels{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return [p for p in own if p in found] + [p for p in found if p not in own]


_MACHINES = {3: "x86", 40: "ARM", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}  # ELF e_machine


def _elf_machine(path: Path) -> int | None:
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _why_not_loadable(path: Path, error: OSError) -> str:
    """dlopen's message, or a clearer one (glibc says 'No such file' for a library of another CPU)."""
    try:
        theirs, ours = _elf_machine(path), _elf_machine(Path(sys.executable).resolve())
    except OSError:
        return f"cannot be loaded ({error})"
    if theirs is None:
        return "cannot be loaded (not a shared library)"
    if ours is not None and theirs != ours:
        name = _MACHINES.get(theirs, f"ELF machine {theirs}")
        return f"cannot be loaded (built for {name}, this Python runs on {_MACHINES.get(ours, ours)})"
    return f"cannot be loaded ({error})"


def _open(path: Path) -> ctypes.CDLL:
    """The library at `path` with its kernels' signatures set, or _Unusable saying why not."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:  # not a shared library, another architecture, a missing dependency
        raise _Unusable(_why_not_loadable(path, e)) from None
    try:
        abi = lib.digitlab_kernels_abi
    except AttributeError:
        raise _Unusable("has no digitlab_kernels_abi() (built from an older kernels.c)") from None
    abi.argtypes, abi.restype = [], ctypes.c_int
    if (got := abi()) != ABI:
        raise _Unusable(f"has kernel ABI {got}, this digitlab expects {ABI}")
    for ci, co in SHAPES:
        try:
            getattr(lib, f"cpr_fwd_{ci}_{co}").argtypes = [_P] * 5 + [_I] * 3
            getattr(lib, f"cpr_bwd_{ci}_{co}").argtypes = [_P] * 8 + [_I] * 3
        except AttributeError:
            raise _Unusable(f"has no kernels for {ci} -> {co} channels") from None
    try:
        lib.augment_gather.argtypes = [_P, _P, _I, _I, _I, _P, _P, _P]
        lib.augment_gather.restype = ctypes.c_int
    except AttributeError:
        raise _Unusable("has no augment_gather kernel") from None
    return lib


def _load(folder: Path | None = None) -> ctypes.CDLL | None:
    """The first usable kernel library in `folder` (default: next to this file), or None with one warning."""
    folder = Path(__file__).parent if folder is None else Path(folder)
    skipped = []
    for path in _candidates(folder):
        try:
            return _open(path)
        except _Unusable as e:
            skipped.append(f"{path} {e}")
    why = "; ".join(skipped) if skipped else f"none was built in {folder} (no C compiler at install?)"
    warnings.warn(f"digitlab: the fused CPU kernels are not used, training runs on PyTorch ops (slower): {why}. "
                  "Rebuild them with `pip install -e .` (or reinstall digitlab).", RuntimeWarning, stacklevel=2)
    return None


LIB = _load()


def available(conv: nn.Module) -> bool:
    """Whether `conv` can run on the fused kernels."""
    return (LIB is not None and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.bias is not None
            and (conv.in_channels, conv.out_channels) in SHAPES)


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


class ConvPoolReLUFunction(torch.autograd.Function):
    """relu(maxpool2(conv3x3(x))) for NHWC x; weight in torch's (CO, CI, 3, 3) layout."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        n, h, w, ci = x.shape
        co = weight.shape[0]
        x = x.contiguous()
        wk = weight.detach().permute(2, 3, 1, 0).contiguous()  # (3, 3, CI, CO)
        out = torch.empty(n, (h - 2) // 2, (w - 2) // 2, co)
        arg = torch.empty(out.shape, dtype=torch.uint8)
        getattr(LIB, f"cpr_fwd_{ci}_{co}")(_ptr(x), _ptr(wk), _ptr(bias.detach().contiguous()), _ptr(out),
                                           _ptr(arg), n, h, w)
        ctx.save_for_backward(x, weight, out, arg)
        ctx.mark_non_differentiable(arg)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out, arg = ctx.saved_tensors
        n, h, w, ci = x.shape
        co = weight.shape[0]
        grad = grad.contiguous()
        wkT = weight.detach().permute(0, 2, 3, 1).contiguous()  # (CO, 3, 3, CI)
        dwk = torch.zeros(3, 3, ci, co)
        db = torch.zeros(co)
        dx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        getattr(LIB, f"cpr_bwd_{ci}_{co}")(_ptr(x), _ptr(wkT), _ptr(out), _ptr(arg), _ptr(grad), _ptr(dwk),
                                           _ptr(db), _ptr(dx) if dx is not None else None, n, h, w)
        # contiguous: fused Adam walks parameters and gradients as flat memory
        return dx, dwk.permute(3, 2, 0, 1).contiguous(), db


class ConvPoolReLU(nn.Module):
    """Conv2d(3x3) -> ReLU -> MaxPool2d(2) of an existing conv layer (shared parameters), NHWC in and out."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ConvPoolReLUFunction.apply(x, self.conv.weight, self.conv.bias)


class ToNHWC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToNCHW(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


AUG_MAX_SIDE = 64  # kernels.c: AUG_MAX_PADDED


def augment_gather(x: torch.Tensor, part: torch.Tensor, theta: torch.Tensor, stroke: torch.Tensor) -> torch.Tensor:
    """Images `part` of the uint8 dataset `x` (N, 1, H, W), each warped by its `theta` and `stroke`
    (augment.draw) in one pass: float (n, 1, H, W) in [0, 1]. What augment.apply does in torch ops."""
    n, (h, w) = len(part), x.shape[-2:]
    part = part.to(torch.int64).contiguous()
    theta, stroke = theta.to(torch.float32).contiguous(), stroke.to(torch.int8).contiguous()
    out = torch.empty(n, 1, h, w)
    if LIB.augment_gather(_ptr(x), _ptr(part), n, h, w, _ptr(theta), _ptr(stroke), _ptr(out)) != 0:
        raise ValueError(f"augment_gather takes images of at most {AUG_MAX_SIDE}x{AUG_MAX_SIDE} pixels, got {h}x{w}")
    return out
