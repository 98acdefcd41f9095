"""vqexport: vector-quantize the dense layers of PyTorch CNNs and ship them compressed."""
__version__ = "0.1.0"

from .api import compress, load_model, read_vqm, to_onnx, to_tflite, to_torch, write_vqm  # noqa: E402
from .config import CompressConfig, QuantConfig  # noqa: E402

__all__ = ["CompressConfig", "QuantConfig", "compress", "load_model", "read_vqm", "to_onnx", "to_tflite", "to_torch",
           "write_vqm"]
