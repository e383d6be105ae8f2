"""The one calibration/evaluation data API behind ``--data``: built-in sets, image folders, entry points.

``load_data(spec)`` turns what a user names into a ``DataSplit`` (train and held-out test tensors):

* a built-in name: ``digits`` (scikit-learn's 1797 8x8 digits, 1x8x8) or ``digits32`` (the same digits
  upsampled bilinearly to 1x32x32, the input of the ``digits_<arch>`` zoo models);
* a folder in torchvision ``ImageFolder`` layout (``root/<class>/<image>``; classes sorted by name get
  labels 0, 1, ...), read with Pillow, converted to grey (1 channel) or RGB (3) and resized to the
  model's input size;
* a Python entry point ``module:function`` returning a ``torch.utils.data.Dataset`` of ``(x, label)``.

Pixels are scaled to [-1, 1] as for digits. Folders and entry-point datasets are split deterministically
by ``seed`` (``TEST_FRACTION`` held out). Compression calibration, lowering's calibration batch and
accuracy all read the same ``DataSplit``; ``check_shape`` gives one clear error when its samples do
not fit the model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.errors import ConfigError

BUILTIN = {"digits": "scikit-learn digits, 1x8x8", "digits32": "scikit-learn digits upsampled to 1x32x32"}
TEST_FRACTION = 0.25          # the held-out share, as hwsim.data's digits split
CALIBRATION_SAMPLES = 32      # images in a calibration batch (compression and lowering)


@dataclass(frozen=True)
class DataSplit:
    """Train and held-out test tensors (images ``(N, C, H, W)`` float in [-1, 1], labels int64)."""

    name: str
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_test.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(int(self.y_train.max()), int(self.y_test.max()))) + 1

    def as_tuple(self) -> tuple[Any, Any, Any, Any]:
        """``(x_train, y_train, x_test, y_test)``: what ``hwsim.data.train_classifier`` and recipes take."""
        return self.x_train, self.y_train, self.x_test, self.y_test

    def calibration_batch(self, samples: int = CALIBRATION_SAMPLES) -> Any:
        """The first ``samples`` training images: compression's and lowering's calibration input."""
        return self.x_train[:samples]

    def describe(self) -> str:
        return f"{self.name} ({len(self.y_test)} held-out of {len(self.y_train) + len(self.y_test)} samples)"


def load_data(spec: str, *, seed: int = 0, sample_shape: tuple[int, ...] | None = None) -> DataSplit:
    """The ``DataSplit`` named by ``spec`` (module docstring); ``sample_shape`` (C, H, W) sizes image folders."""
    text = str(spec)
    if text in BUILTIN:
        return _builtin(text, seed)
    if Path(text).is_dir():
        return _image_folder(Path(text), seed=seed, sample_shape=sample_shape)
    if ":" in text and not Path(text).exists():
        return _entry_point(text, seed=seed)
    raise ConfigError(f"--data {text!r}: not a built-in dataset ({', '.join(BUILTIN)}), an image folder, "
                      "or a module:function entry point")


def check_shape(data: DataSplit, sample_shape: tuple[int, ...] | None, model: str) -> None:
    """A ``ConfigError`` when ``data``'s samples are not ``sample_shape`` (the model's per-sample input)."""
    if sample_shape is not None and tuple(sample_shape) != data.sample_shape:
        raise ConfigError(f"--data {data.name}: samples are {_shape(data.sample_shape)} but model {model} takes "
                          f"{_shape(sample_shape)}")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _builtin(name: str, seed: int) -> DataSplit:
    import torch.nn.functional as F

    from hwsim.data import load_digits_tensors

    x_train, y_train, x_test, y_test = load_digits_tensors(seed)
    if name == "digits32":
        x_train, x_test = (F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
                           for x in (x_train, x_test))
    return DataSplit(name, x_train, y_train, x_test, y_test)


def _split(name: str, x: Any, y: Any, seed: int) -> DataSplit:
    import torch

    if len(y) < 2:
        raise ConfigError(f"--data {name}: needs at least 2 samples (one to train or calibrate, one held out); "
                          f"got {len(y)}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(seed)))
    n_test = min(max(1, int(round(len(y) * TEST_FRACTION))), len(y) - 1)
    test, train = order[:n_test], order[n_test:]
    return DataSplit(name, x[train], y[train], x[test], y[test])


def _image_folder(root: Path, *, seed: int, sample_shape: tuple[int, ...] | None) -> DataSplit:
    import numpy as np
    import torch
    from PIL import Image

    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(path, label) for label, cls in enumerate(classes) for path in sorted((root / cls).iterdir())
             if path.suffix.lower() in extensions]
    if not files:
        raise ConfigError(f"--data {root}: no images in ImageFolder layout (root/<class>/<image>, "
                          f"extensions such as .png/.jpg)")
    channels, height, width = sample_shape if sample_shape else (None, None, None)
    if channels not in (None, 1, 3):
        raise ConfigError(f"--data {root}: images give 1 (grey) or 3 (RGB) channels; the model takes {channels}")
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if image.mode in ("1", "L", "I", "F") else "RGB")
                image = image.convert(mode)
                if height is not None:
                    image = image.resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32) / 255.0
        except OSError as err:
            raise ConfigError(f"--data {root}: cannot read {path.relative_to(root)} ({err})") from None
        images.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
    if len({im.shape for im in images}) > 1:
        raise ConfigError(f"--data {root}: images have different sizes; give the model's input shape to resize them")
    x = (torch.from_numpy(np.stack(images)) - 0.5) / 0.5
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return _split(str(root), x, y, seed)


def _entry_point(text: str, *, seed: int) -> DataSplit:
    import torch

    module_name, _, attr = text.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"--data {text!r}: cannot load entry point ({err})") from None
    dataset = factory()
    try:
        items = [dataset[i] for i in range(len(dataset))]
        x = torch.stack([torch.as_tensor(item[0], dtype=torch.float32) for item in items])
        y = torch.as_tensor([int(item[1]) for item in items], dtype=torch.int64)
    except (TypeError, IndexError, RuntimeError, ValueError) as err:
        raise ConfigError(f"--data {text!r}: expected a torch Dataset of (tensor, integer label) pairs of one "
                          f"shape ({type(err).__name__}: {err})") from None
    return _split(text, x, y, seed)
