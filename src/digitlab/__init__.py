"""digitlab: train and use a handwritten-digit recognizer, interactively and locally."""

__version__ = "0.3.0"
