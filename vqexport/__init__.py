"""vqexport: vector-quantize the weights of PyTorch networks and ship them compressed."""
from .api import compress, load_model, read_vqm, to_onnx, to_tflite, to_torch, write_vqm
from .config import CompressConfig, QuantConfig
from .version import __version__

__all__ = ["CompressConfig", "QuantConfig", "__version__", "compress", "load_model", "read_vqm", "to_onnx",
           "to_tflite", "to_torch", "write_vqm"]
