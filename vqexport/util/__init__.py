"""Small helpers with no knowledge of models: atomic writes and output checks, native-log silencing, text tables, progress."""
