"""Data-aware fitting (--calib): layer input statistics on calibration images, then a refit of
each compressed layer's codebook and indices to its output error (refit.py), and optionally a bias
correction. The decode of every method is unchanged, so every format and reader works as it is."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

HELD_OUT = 4  # 1 / HELD_OUT of the calibration images choose between the fits
DEFAULT_IMAGES = 2048  # GPTQ-style feedback needs about as many inputs as a dense layer has columns


@dataclass(frozen=True)
class Calibration:
    """Calibration images as the model takes them (channels first, normalised), and how to use them.

    refit: refit the codebook and indices of the layers whose method allows (refit.py); feedback:
    with GPTQ-style error feedback when assigning the indices; bias_correction: add (W - W') E[x]
    to each layer's bias (any method), so that its mean output on the images does not move."""

    images: np.ndarray
    source: str = "<array>"
    feedback: bool = True
    bias_correction: bool = False
    refit: bool = True
    # layers -> (module, stats, why not): a sweep compresses one model many times on the same images
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or self.images.ndim < 2 or len(self.images) == 0:
            raise ConfigError("calibration needs a non-empty batch of inputs [N, ...]")

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(fitting images, held-out images): a quarter, at least one, is kept to choose each layer's
        fit by its output error on inputs it was not fitted to."""
        if len(self.images) < 2:
            return self.images, self.images
        held = max(1, len(self.images) // HELD_OUT)
        return self.images[:-held], self.images[-held:]

    def record(self) -> dict:
        return {"data": self.source, "images": int(len(self.images)), "refit": self.refit,
                "feedback": self.feedback, "bias_correction": self.bias_correction}


def calibration(model, data: str, images: int = DEFAULT_IMAGES, seed: int = 0, **options) -> Calibration:
    """`images` inputs drawn (by seed) from a built-in set's training split or the user's data."""
    from ..evaluate.datasets import fit_inputs, training_images

    if not isinstance(images, int) or images < 1:
        raise ConfigError(f"--calib-images must be a positive integer, got {images!r}")
    x, _, _ = training_images(data, model.input, images, 0, seed)
    shape = (model.input or {}).get("shape")
    return Calibration(fit_inputs(x, shape, data, model.name).astype(np.float32), data, **options)


def bias_delta(w: np.ndarray, w_new: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(W - W') E[x] per output row; mean [G, n] is per conv group."""
    m = w.shape[0]
    diff = (w.reshape(m, -1).astype(np.float64) - w_new.reshape(m, -1))
    group = np.arange(m) // (m // mean.shape[0])
    return np.einsum("rn,rn->r", diff, mean[group])


def output_error(w: np.ndarray, w_new: np.ndarray, second: np.ndarray) -> float:
    """sqrt(tr(E H E^T) / tr(W H W^T)), E = W - W': the relative error of the layer's output."""
    m = w.shape[0]
    w = w.reshape(m, -1).astype(np.float64)
    e = w - w_new.reshape(m, -1)
    group = np.arange(m) // (m // second.shape[0])
    num = den = 0.0
    for g in range(second.shape[0]):
        rows = group == g
        num += float(np.sum((e[rows] @ second[g]) * e[rows]))
        den += float(np.sum((w[rows] @ second[g]) * w[rows]))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0
