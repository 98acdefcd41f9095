"""Helpers that know nothing of models: atomic writes and output checks, native-log silencing,
text tables, progress."""
