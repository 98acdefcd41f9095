"""Run onnx2tf for the one output vqexport uses: the float32 .tflite.

onnx2tf 1.29.24 always also writes a TensorFlow saved_model and a float16 .tflite, which we
discard. On VGG-16 (dense weights lifted) those two cost 42 s and 43 s of a 132 s conversion.
It has no option to skip them, so for the duration of one call:
- `tf.saved_model.save` does nothing (onnx2tf only writes the folder; nothing reads it back
  unless asked for a TF v1 .pb, which we do not ask for);
- a TFLite converter asked to convert a second time with optimizations set (the float16 pass,
  on the same converter object) returns its first, float32 result instead of converting again.
Both are restored afterwards, also when onnx2tf fails. The versions are pinned; the TFLite tests
run the float32 file this produces.
"""
from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def _float32_only():
    import tensorflow as tf
    from tensorflow.lite.python import lite

    saved = tf.saved_model.save
    patched = {}

    def skip_saved_model(*args, **kwargs):
        return None

    for cls in (lite.TFLiteKerasModelConverterV2, lite.TFLiteFrozenGraphConverterV2):
        original = cls.__dict__.get("convert")
        if original is None:
            continue

        def convert(self, _original=original):
            first = getattr(self, "_vqexport_float32", None)
            if first is not None and self.optimizations:
                return first
            result = _original(self)
            if not self.optimizations:
                self._vqexport_float32 = result
            return result

        patched[cls] = original
        cls.convert = convert
    tf.saved_model.save = skip_saved_model
    try:
        yield
    finally:
        tf.saved_model.save = saved
        for cls, original in patched.items():
            cls.convert = original


def convert(onnx_path: str, out_dir: str) -> Path | None:
    """onnx2tf.convert with vqexport's settings; the float32 .tflite's path, or None if none was written.

    Raises whatever onnx2tf raises (SystemExit included); the caller words the error.
    """
    import onnx2tf

    with _float32_only():
        onnx2tf.convert(input_onnx_file_path=onnx_path, output_folder_path=out_dir, non_verbose=True,
                        copy_onnx_input_output_names_to_tflite=True, not_use_onnxsim=True, verbosity="error")
    result = Path(out_dir, Path(onnx_path).stem + "_float32.tflite")
    return result if result.exists() else None
