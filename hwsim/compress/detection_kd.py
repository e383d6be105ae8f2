"""Knowledge distillation for object detection (Chen et al., NIPS 2017) on a tiny synthetic task.

The toy task: one shape per 16x16 image (filled square, hollow square or plus; random size and place, plus
noise); a detector predicts its class and its box. The student loss is Chen et al.'s combination:
classification ``mu * CE + (1 - mu) * soft CE with the teacher``, regression ``smooth-L1 + nu * bounded
regression loss`` (teacher bound) and a hint ``||adapter(student features) - teacher features||^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hwsim.compress.kd_losses import bounded_regression_loss
from hwsim.compress.registry import LayerChange, StepReport, register_method

N_CLASSES = 3


def make_toy_detection(n: int, *, seed: int = 0, size: int = 16) -> tuple[torch.Tensor, ...]:
    """``(images (n,1,size,size), labels (n,), boxes (n,4) as x0,y0,x1,y1 in [0,1])``."""
    gen = torch.Generator().manual_seed(seed)
    images = 0.1 * torch.randn(n, 1, size, size, generator=gen)
    labels = torch.randint(0, N_CLASSES, (n,), generator=gen)
    sides = torch.randint(5, 10, (n,), generator=gen)
    boxes = torch.zeros(n, 4)
    for i in range(n):
        side = int(sides[i])
        y0, x0 = (int(v) for v in torch.randint(0, size - side + 1, (2,), generator=gen))
        patch = torch.zeros(side, side)
        if labels[i] == 0:
            patch[:] = 1.0
        elif labels[i] == 1:
            patch[0, :] = patch[-1, :] = patch[:, 0] = patch[:, -1] = 1.0
        else:
            patch[side // 2, :] = patch[:, side // 2] = 1.0
        images[i, 0, y0:y0 + side, x0:x0 + side] += patch
        boxes[i] = torch.tensor([x0, y0, x0 + side, y0 + side], dtype=torch.float32) / size
    return images, labels, boxes


class TinyDetector(nn.Module):
    """Conv backbone + class head + box head; forward returns ``cat([class logits, box], dim=1)``."""

    def __init__(self, *, width: int = 16, size: int = 16):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(), nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        features = 2 * width * (size // 2) ** 2
        self.cls_head = nn.Linear(features, N_CLASSES)
        self.box_head = nn.Linear(features, 4)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = feats.flatten(1)
        return self.cls_head(flat), torch.sigmoid(self.box_head(flat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, box = self.heads(self.features(x))
        return torch.cat([logits, box], dim=1)


@dataclass(frozen=True)
class DetectionResult:
    accuracy: float       # class accuracy on the test split
    mean_iou: float       # mean IoU of predicted and true boxes on the test split


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise IoU of (n,4) x0,y0,x1,y1 boxes."""
    inter = ((torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
             * (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0))
    area = lambda box: (box[:, 2] - box[:, 0]).clamp_min(0) * (box[:, 3] - box[:, 1]).clamp_min(0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp_min(1e-9)


def evaluate_detector(model: TinyDetector, data) -> DetectionResult:
    """Class accuracy and mean IoU on the test split of ``data``."""
    _, _, _, x, y, boxes = data
    model.eval()
    with torch.no_grad():
        logits, box = model.heads(model.features(x))
    return DetectionResult(accuracy=float((logits.argmax(1) == y).float().mean()),
                           mean_iou=float(box_iou(box, boxes).mean()))


def fit_detector(model: TinyDetector, data, *, teacher: TinyDetector | None = None, epochs: int = 10,
                 lr: float = 1e-2, batch_size: int = 64, seed: int = 0, mu: float = 0.5, temperature: float = 2.0,
                 lam: float = 1.0, nu: float = 0.5, margin: float = 0.0, gamma: float = 0.1) -> DetectionResult:
    """Train a detector; with a teacher, use Chen et al.'s KD loss (mu, lam, nu, gamma: their symbols).

    Defaults are ours, tuned on the toy task (boxes regressed in pixels; the bound per coordinate).
    """
    x, y, boxes = data[:3]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    adapter = None
    if teacher is not None:
        teacher.eval()
        with torch.no_grad():
            t_channels = teacher.features(x[:1]).shape[1]
        adapter = nn.Conv2d(model.features(x[:1]).shape[1], t_channels, 1)
    params = list(model.parameters()) + (list(adapter.parameters()) if adapter is not None else [])
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            feats = model.features(x[idx])
            logits, box = model.heads(feats)
            box, target = box * x.shape[-1], boxes[idx] * x.shape[-1]      # regress in pixels
            hard, reg = F.cross_entropy(logits, y[idx]), F.smooth_l1_loss(box, target)
            loss = hard + lam * reg
            if teacher is not None:
                with torch.no_grad():
                    t_feats = teacher.features(x[idx])
                    t_logits, t_box = teacher.heads(t_feats)
                soft = -(F.softmax(t_logits / temperature, 1) * F.log_softmax(logits / temperature, 1)).sum(1).mean()
                bound = bounded_regression_loss(box, t_box * x.shape[-1], target, margin=margin) / 4  # per coord
                hint = F.mse_loss(adapter(feats), t_feats)
                loss = mu * hard + (1 - mu) * soft + lam * (reg + nu * bound) + gamma * hint
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return evaluate_detector(model, data)


def toy_detection_data(*, seed: int = 0, n_train: int = 1200, n_test: int = 400) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, box_train, x_test, y_test, box_test)`` of the toy task."""
    train, test = make_toy_detection(n_train, seed=seed), make_toy_detection(n_test, seed=seed + 10_000)
    return (*train, *test)


@register_method("detection_kd", family="distill", trainable=True, applies_to=("conv", "linear"),
                 paper="Chen et al., Learning Efficient Object Detection Models with Knowledge Distillation, "
                 "NIPS 2017",
                 params={"width": "student backbone width (default 4)", "epochs": "student epochs (default 8)",
                         "mu": "hard-label weight (default 0.5)", "nu": "bounded-regression weight (default 0.5)",
                         "gamma": "hint weight (default 0.1)", "margin": "bound margin m (default 0)"})
def detection_kd_method(model: nn.Module, modules, *, width: int = 4, epochs: int = 8, mu: float = 0.5,
                        nu: float = 0.5, gamma: float = 0.1, margin: float = 0.0, seed: int = 0) -> StepReport:
    """Distil a ``TinyDetector`` teacher into a thinner one on the toy detection task."""
    if not isinstance(model, TinyDetector):
        from hwsim.errors import ConfigError

        raise ConfigError(f"detection_kd: needs a TinyDetector teacher, got {type(model).__name__}")
    data = toy_detection_data(seed=seed)
    torch.manual_seed(seed)
    student = TinyDetector(width=width)
    result = fit_detector(student, data, teacher=model, epochs=epochs, seed=seed, mu=mu, nu=nu, gamma=gamma,
                          margin=margin)
    metrics = (("accuracy", result.accuracy), ("mean_iou", result.mean_iou))
    for sub in student.modules():
        sub.hwsim_meta = {"compression": [f"detection_kd(w={width})"]}
    return StepReport(method="detection_kd", metrics=metrics, new_model=student.eval(),
                      changes=(LayerChange(module="", change=f"detection_kd(w={width})", values=metrics),))
