"""The reference CNN: shaped like the paper's network, trained on real MNIST digits."""
from .cnn import MnistCNN, reference_model  # noqa: F401
