"""Evaluation: the same images and the same timing method for every format."""
