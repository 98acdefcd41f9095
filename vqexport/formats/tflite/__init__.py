"""TFLite: convert (litert-torch), rewrite the flatbuffer so weights stay compressed, and the decode="load" loader."""
