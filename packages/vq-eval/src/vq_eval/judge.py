"""An independent judge of small labelled images (e.g. scikit-learn's digits) that needs no weights.

FID needs Inception weights that cannot be downloaded here, and a 16 px digit is not what Inception
was trained on anyway.  The judge is instead *trained at run time* with scikit-learn on real images
that no tokenizer or AR model saw (the held-out split), and then scores what those models made:

* **class accuracy**: a sample generated for class ``c`` (or a reconstruction of a class-``c`` image)
  is judged ``c``.  The judge's own accuracy on real images it did not train on is the ceiling.
* **Fréchet distance** between Gaussians fitted to the real and generated images in the judge's
  *feature space*: the ``n_components``-d PCA projection of the grey pixels that the judge's SVC
  classifies (fitted on the judge's training images).  Same formula as FID (:func:`frechet_distance`).
* **precision / recall** of Kynkäänniemi et al. (2019) with k-NN manifolds in that feature space:
  precision is the share of generated images inside the real manifold (the union of balls around each
  real image with the radius of its k-th nearest real neighbour), recall the share of real images
  inside the generated manifold.

The judge itself is a scikit-learn pipeline ``PCA(n_components) -> SVC(rbf, gamma="scale")`` on grey
pixels in [0, 1] at the size of its training images; on scikit-learn's digits at 16 px, trained on the
539 held-out images, it judges the 1,258 others correctly 97.5 % of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from vq_eval.frechet import frechet_distance
from vq_eval.precision_recall import NEIGHBOURHOOD, precision_recall

DEFAULT_COMPONENTS = 32
DEFAULT_K = NEIGHBOURHOOD


def grey_pixels(images: np.ndarray | torch.Tensor, size: int | None = None) -> np.ndarray:
    """Images -> (N, size*size) float64 grey levels in [0, 1].

    Takes uint8 arrays (N, H, W) or (N, H, W, 3), or float tensors (N, 3, H, W) / (N, H, W) in [-1, 1]
    (what tokenizers and decoders produce).  RGB becomes the mean of its channels; images of another
    side than ``size`` are resized with PIL's bilinear filter (antialiased when shrinking).
    """
    if isinstance(images, torch.Tensor):
        array = images.detach().float().cpu().clamp(-1, 1).add(1).div(2).numpy()
        if array.ndim == 4:
            array = array.mean(axis=1)
    else:
        array = np.asarray(images)
        if array.dtype != np.uint8:
            raise ValueError(f"judge: numpy images must be uint8 (N, H, W[, 3]), got {array.dtype}")
        array = array.astype(np.float64) / 255.0
        if array.ndim == 4:
            array = array.mean(axis=-1)
    if array.ndim != 3:
        raise ValueError(f"judge: expected a batch of images, got shape {array.shape}")
    if size is not None and array.shape[1:] != (size, size):
        array = np.stack([
            np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR))
            for a in array
        ])
    return array.reshape(array.shape[0], -1).astype(np.float64)


@dataclass(frozen=True)
class GenerationScores:
    """How the judge sees a set of class-conditional samples."""

    class_accuracy: float
    frechet: float
    precision: float
    recall: float
    num_samples: int

    def as_dict(self, prefix: str = "judge_") -> dict[str, float | int]:
        return {f"{prefix}{name}": value for name, value in self.__dict__.items()}


class PixelJudge:
    """``PCA -> RBF SVC`` on grey pixels, fitted on real labelled images (see the module docstring)."""

    def __init__(self, *, n_components: int = DEFAULT_COMPONENTS, k: int = DEFAULT_K, seed: int = 0) -> None:
        self.n_components = n_components
        self.k = k
        self.seed = seed
        self.size: int | None = None
        self.model: Pipeline | None = None

    def fit(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> PixelJudge:
        """Train on real images (any form :func:`grey_pixels` takes); their side becomes the judge's size."""
        labels = np.asarray(labels)
        pixels = grey_pixels(images)
        self.size = int(round(np.sqrt(pixels.shape[1])))
        if len(labels) != len(pixels) or np.unique(labels).size < 2:
            raise ValueError(f"judge: fit needs one label per image and >= 2 classes, got {len(pixels)} images, labels {np.unique(labels)}")
        components = min(self.n_components, pixels.shape[0] - 1, pixels.shape[1])
        self.model = Pipeline([("pca", PCA(components, random_state=self.seed)), ("svc", SVC(kernel="rbf", gamma="scale"))])
        self.model.fit(pixels, labels)
        return self

    def _fitted(self) -> Pipeline:
        if self.model is None:
            raise RuntimeError("judge: call fit() on real labelled images first")
        return self.model

    def features(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """The judge's feature space: PCA coordinates of the grey pixels (N, n_components)."""
        return self._fitted().named_steps["pca"].transform(grey_pixels(images, self.size))

    def predict(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Judged class of each image."""
        return self._fitted().predict(grey_pixels(images, self.size))

    def accuracy(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
        """Share of ``images`` judged as their ``labels`` (on real unseen images: the judge's ceiling)."""
        return float((self.predict(images) == np.asarray(labels)).mean())

    def score_generation(
        self, generated: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor
    ) -> GenerationScores:
        """Class accuracy of samples generated for ``labels``, and their Fréchet distance and k-NN
        precision/recall against the ``real`` images, all in the judge's feature space."""
        fake, true = self.features(generated), self.features(real)
        if fake.shape[0] < 2 or true.shape[0] < 2:
            raise ValueError("judge: the Fréchet distance needs at least 2 generated and 2 real images")
        frechet = frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), true.mean(0), np.cov(true, rowvar=False))
        precision, recall = precision_recall(true, fake, k=self.k, dtype=torch.float64)
        return GenerationScores(
            class_accuracy=self.accuracy(generated, labels), frechet=frechet, precision=precision, recall=recall,
            num_samples=int(fake.shape[0]),
        )
