"""The compression methods of the paper, one module each, behind one registry (registry.py)."""
