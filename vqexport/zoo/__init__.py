"""The reference CNN: shaped like the paper's network, trained on real MNIST digits."""
from .cnn import MnistCNN  # noqa: F401
from .reference import reference_model  # noqa: F401
