"""vqexport: vector-quantize the dense layers of PyTorch CNNs and ship them compressed."""
__version__ = "0.1.0"

from .api import compress, load_model, read_vqm, to_onnx, to_tflite  # noqa: E402,F401
from .config import CompressConfig, QuantConfig  # noqa: E402,F401
