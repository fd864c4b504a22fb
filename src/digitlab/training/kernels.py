"""Fused conv3x3 + maxpool2 + ReLU (kernels.c), as a torch autograd Function, loaded with ctypes.

Used by fit() for the layers of the blog's CNN when the compiled library is there (it is built
by `pip install`, see setup.py); otherwise fit() runs the same math with PyTorch's own ops.
Tensors are NHWC float32. ctypes releases the GIL during each call, so batch shards on
different threads run these kernels in parallel.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import nn

SHAPES = {(1, 8), (8, 16)}  # (in_channels, out_channels) specialisations in kernels.c
_P = ctypes.c_void_p
_I = ctypes.c_int


def _load():
    for path in sorted(Path(__file__).parent.glob("_kernels*.so")):
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for ci, co in SHAPES:
            getattr(lib, f"cpr_fwd_{ci}_{co}").argtypes = [_P] * 5 + [_I] * 3
            getattr(lib, f"cpr_bwd_{ci}_{co}").argtypes = [_P] * 8 + [_I] * 3
        return lib
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
