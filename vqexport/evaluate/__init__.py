"""Evaluation: the same images and the same timing method for every format."""


class EvalNote(UserWarning):
    """Something the user should know about how their data or model is read (a guessed layout,
    pixels fed as 0-255). The CLI prints it as one line on stderr; --quiet hides it."""
