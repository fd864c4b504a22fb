"""Architectures, the Keras-style summary, the model store (safetensors + JSON) and ONNX export."""

from .architectures import ARCHITECTURES, build, register
from .store import InvalidModelName, ModelNotFound, ModelStore, StoreError, check_name
from .summary import format_summary, layer_table

__all__ = ["ARCHITECTURES", "build", "register", "ModelStore", "StoreError", "ModelNotFound", "InvalidModelName",
           "check_name",
           "format_summary", "layer_table"]
