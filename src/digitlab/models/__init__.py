"""Architectures, the Keras-style summary, the model store (safetensors + JSON), ONNX export and
TF.js Layers models both ways (`tfjs`).

The store and `tfjs` need no torch (listing and serving models reads JSON and files; TF.js files
are converted with numpy); the architectures, the summary and the ONNX export import torch on first use.
"""

from .store import DamagedModel, InvalidModelName, ModelExists, ModelNotFound, ModelStore, StoreError, check_name

_TORCH = {"ARCHITECTURES": "architectures", "build": "architectures", "register": "architectures",
          "format_summary": "summary", "layer_table": "summary"}

__all__ = ["ModelStore", "StoreError", "ModelNotFound", "InvalidModelName", "ModelExists", "DamagedModel",
           "check_name", *_TORCH]


def __getattr__(name: str):
    if name in _TORCH:
        import importlib
        return getattr(importlib.import_module(f".{_TORCH[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
