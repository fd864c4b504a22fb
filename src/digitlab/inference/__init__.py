"""Inference: drawings and photos to MNIST-style input (centre of mass), and prediction. No web here."""

from .predict import Prediction, Predictor, decode_image, decode_to_input
from .preprocess import PreprocessError, center_of_mass_crop, image_to_input, pixels_to_input, to_gray

__all__ = ["Prediction", "Predictor", "decode_image", "decode_to_input", "PreprocessError", "center_of_mass_crop",
           "image_to_input", "pixels_to_input", "to_gray"]
