"""TFLite: convert (onnx2tf), rewrite the flatbuffer so weights stay compressed, and the decode="load" loader."""
