"""Writers (and the .vqm reader). Each reads the IR in vqexport/ir.py; none re-derives it."""

METADATA_KEY = "vqexport"  # the entry under which .onnx (metadata_props) and .tflite files carry vqexport's JSON


class HalfPrecisionNote(UserWarning):
    """Raw tensors that --raw-dtype float16 could not narrow in an export (a converter changed them)."""
