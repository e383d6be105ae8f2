"""Knowledge distillation: a small CPU trainer with Hinton KD, FitNets hints, attention transfer and FSP
losses, thinner students of a teacher, and the ``distill`` recipe steps that return the trained student.

Data is ``(x_train, y_train, x_test, y_test)`` tensors (``hwsim.data.load_digits_tensors`` by default in
recipes). Optional gradient compression (``grad_compression="qsgd:4"``) reports the bits per step.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hwsim.compress import kd_losses as kl
from hwsim.compress.gradients import GradientCompressor
from hwsim.compress.registry import LayerChange, StepReport, register_method
from hwsim.errors import ConfigError

LOSSES = ("ce", "hinton", "fitnets", "attention", "fsp")


@dataclass(frozen=True)
class FitResult:
    """Outcome of ``fit``: test accuracy and, with gradient compression, the bits sent per step."""

    accuracy: float
    loss: str
    epochs: int
    steps: int
    bits_per_step: float
    dense_bits_per_step: float


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512) -> float:
    """Top-1 accuracy in eval mode (mode restored)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
    model.train(was)
    return correct / max(len(x), 1)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def fit(student: nn.Module, data, *, teacher: nn.Module | None = None, loss: str = "ce", epochs: int = 10,
        lr: float = 1e-2, batch_size: int = 64, seed: int = 0, temperature: float = 4.0, alpha: float = 0.9,
        beta: float | None = None, stage1_epochs: int | None = None,
        grad_compression: "str | GradientCompressor | None" = None, meprop_k: int | None = None) -> FitResult:
    """Train ``student`` on ``data`` with Adam (cosine decay); ``loss`` in ce | hinton | fitnets | attention | fsp.

    hinton: (1-alpha) CE + alpha T^2 KL (Hinton et al. 2015). fitnets: ``stage1_epochs`` of hint regression on
    the middle matched feature map (Romero et al. 2015), then Hinton KD. attention: CE + beta/2 * sum of
    attention-map distances (Zagoruyko & Komodakis 2017; beta default 1, see ``kd_losses.attention_loss``).
    fsp: ``stage1_epochs`` of FSP-matrix matching (Yim et al. 2017), then CE. Feature maps are matched by
    spatial size; 1x1 adapters map student channels to teacher channels where needed. ``grad_compression``
    quantizes every gradient (QSGD/TernGrad, bits per step reported); ``meprop_k`` keeps the top-k output
    gradients of every conv/linear (meProp, Sun et al. 2017, hooks from ``hwsim.compress.train_sparse``).
    """
    if loss not in LOSSES:
        raise ConfigError(f"distill: loss must be one of {list(LOSSES)}, got {loss!r}")
    if loss != "ce" and teacher is None:
        raise ConfigError(f"distill: loss {loss!r} needs a teacher")
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    compressor = (grad_compression if isinstance(grad_compression, GradientCompressor)
                  else GradientCompressor(grad_compression or "none", seed=seed))
    feats = None
    if loss in ("fitnets", "attention", "fsp"):
        teacher.eval()
        feats = kl.FeatureMatcher(student, teacher, x_train[:2], mode=loss)
    stage1 = 0 if loss in ("ce", "hinton", "attention") else int(stage1_epochs or max(1, epochs // 3))
    handles = _meprop_hooks(student, meprop_k)
    try:
        steps = _train(student, teacher, feats, (x_train, y_train), loss=loss, stage1=stage1, epochs=int(epochs),
                       lr=lr, batch_size=batch_size, seed=seed, compressor=compressor,
                       options={"temperature": temperature, "alpha": alpha, "beta": beta})
    finally:
        for handle in handles:
            handle.remove()
        if feats is not None:
            feats.remove()
    student.eval()
    return FitResult(accuracy=accuracy(student, x_test, y_test), loss=loss, epochs=stage1 + int(epochs),
                     steps=steps, bits_per_step=compressor.bits_per_step,
                     dense_bits_per_step=compressor.dense_bits_per_step)


def _train(student, teacher, feats, train, *, loss, stage1, epochs, lr, batch_size, seed, compressor,
           options) -> int:
    x_train, y_train = train
    generator = torch.Generator().manual_seed(seed)
    params = list(student.parameters()) + (list(feats.adapters.parameters()) if feats else [])
    optimizer = torch.optim.Adam(params, lr=lr)
    per_epoch = -(-len(x_train) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, per_epoch * epochs))
    steps = 0
    student.train()
    for epoch in range(stage1 + epochs):
        phase = "stage1" if epoch < stage1 else "main"
        for idx in _batches(len(x_train), batch_size, generator):
            total = _batch_loss(student, teacher, feats, x_train[idx], y_train[idx], loss=loss, phase=phase,
                                **options)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            compressor(student)
            optimizer.step()
            if phase == "main":
                schedule.step()      # cosine decay over the main phase: a stable final accuracy
            steps += 1
    return steps


def _meprop_hooks(model: nn.Module, k: int | None) -> list:
    if k is None:
        return []
    from hwsim.compress.train_sparse import MePropHook

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [m.register_forward_hook(MePropHook(int(k))) for m in layers]


def _batch_loss(student, teacher, feats, xb, yb, *, loss, phase, temperature, alpha, beta) -> torch.Tensor:
    if feats is not None:
        feats.clear()
    logits = student(xb)
    teacher_logits = None
    if teacher is not None and loss != "ce":
        with torch.no_grad():
            teacher_logits = teacher(xb)
    if phase == "stage1":
        return feats.hint_loss() if loss == "fitnets" else feats.fsp_loss()
    if loss in ("hinton", "fitnets"):
        return kl.hinton_loss(logits, teacher_logits, yb, temperature=temperature, alpha=alpha)
    hard = F.cross_entropy(logits, yb)
    if loss == "attention":
        return hard + (1.0 if beta is None else beta) / 2 * feats.attention_loss()
    return hard


# ----- students ------------------------------------------------------------------------------------------


def make_student(teacher: nn.Module, *, width: float = 0.5, depth: int | None = None) -> nn.Module:
    """A thinner (and optionally shallower) fresh copy of a CNN teacher.

    Every conv/BN/linear channel count c becomes max(1, round(c * width)) except the image channels of the first
    conv and the classes of the last linear; a Linear after Flatten keeps its spatial factor. ``depth`` keeps
    at most that many shape-preserving (C -> C, stride 1) blocks per ``nn.Sequential`` and drops the rest.
    """
    if width <= 0:
        raise ConfigError(f"make_student: width must be > 0, got {width}")
    student = copy.deepcopy(teacher)
    scale = functools.partial(_scaled, width=width)
    leaves = [(p, m) for p, m in student.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d,
                                                                            nn.BatchNorm1d))]
    linears = [p for p, m in leaves if isinstance(m, nn.Linear)]
    first_conv = next((p for p, m in leaves if isinstance(m, nn.Conv2d)), None)
    last_conv_out = None
    from hwsim.compress.lowrank import set_submodule

    for path, module in leaves:
        if isinstance(module, nn.Conv2d):
            new = _student_conv(module, scale, keep_in=path == first_conv)
            last_conv_out = module.out_channels
        elif isinstance(module, nn.Linear):
            n_in = module.in_features
            if path == linears[0] and last_conv_out and n_in % last_conv_out == 0:
                new_in = scale(last_conv_out) * (n_in // last_conv_out)
            else:
                new_in = scale(n_in)
            out = module.out_features if path == linears[-1] else scale(module.out_features)
            new = nn.Linear(new_in, out, bias=module.bias is not None)
        else:
            new = type(module)(scale(module.num_features))
        set_submodule(student, path, new)
    if depth is not None:
        _drop_blocks(student, int(depth))
    return student


def _scaled(channels: int, *, width: float) -> int:
    return max(1, int(round(channels * width)))


def _student_conv(conv: nn.Conv2d, scale, *, keep_in: bool) -> nn.Conv2d:
    c_in = conv.in_channels if keep_in else scale(conv.in_channels)
    groups, c_out = conv.groups, scale(conv.out_channels)
    if groups > 1 and groups == conv.in_channels:        # depthwise stays depthwise
        groups = c_in
        c_out = c_in * (conv.out_channels // conv.in_channels)
    elif groups > 1:
        c_in, c_out = -(-c_in // groups) * groups, -(-c_out // groups) * groups
    return nn.Conv2d(c_in, c_out, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                     dilation=conv.dilation, groups=groups, bias=conv.bias is not None)


def _drop_blocks(model: nn.Module, depth: int) -> None:
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keep = 0
        for name, child in list(seq.named_children()):
            convs = [m for m in child.modules() if isinstance(m, nn.Conv2d)]
            preserving = bool(convs) and all(c.in_channels == c.out_channels and c.stride == (1, 1)
                                             and c.padding == tuple(k // 2 for k in c.kernel_size) for c in convs)
            if preserving:
                keep += 1
                if keep > depth:
                    setattr(seq, name, nn.Identity())


def build_student(teacher: nn.Module, *, student: str = "thin", width: float = 0.5, width_mult: float | None = None,
                  depth: int | None = None, num_classes: int | None = None, seed: int = 0) -> nn.Module:
    """``student="thin"``: ``make_student(teacher)``; else a zoo name (mobilenet_v1/v2, shufflenet_v1/v2, ...)."""
    if student == "thin":
        torch.manual_seed(seed)
        return make_student(teacher, width=width, depth=depth)
    from hwsim import zoo

    options = zoo.options(student)
    kwargs = {}
    if num_classes is not None and "num_classes" in options:
        kwargs["num_classes"] = num_classes
    multiplier = width_mult if width_mult is not None else width
    for key in ("width_mult", "width"):
        if key in options and multiplier is not None:
            kwargs[key] = type(options[key])(multiplier) if options[key] is not None else multiplier
            break
    return zoo.create(student, seed=seed, **kwargs).train()


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def distill_step(model: nn.Module, modules, *, loss: str, student: str = "thin", width: float = 0.5,
                 width_mult: float | None = None, depth: int | None = None, epochs: int = 10,
                 teacher_epochs: int = 0, lr: float = 1e-2, temperature: float = 4.0, alpha: float = 0.9,
                 beta: float | None = None, grad_compression: str | None = None, data=None,
                 seed: int = 0) -> StepReport:
    """Recipe step: build a student, train it against ``model`` (the teacher), return it as ``new_model``."""
    new = build_student(model, student=student, width=width, width_mult=width_mult, depth=depth,
                        num_classes=_num_classes(model), seed=seed)
    metrics = [("student_params", float(sum(p.numel() for p in new.parameters()))),
               ("teacher_params", float(sum(p.numel() for p in model.parameters())))]
    if epochs > 0:
        if data is None:
            raise ConfigError("distill: training needs data=(x_train, y_train, x_test, y_test)")
        if teacher_epochs > 0:
            fit(model, data, loss="ce", epochs=teacher_epochs, lr=lr, seed=seed)
        model.eval()
        metrics.append(("teacher_accuracy", accuracy(model, data[2], data[3])))
        result = fit(new, data, teacher=model, loss=loss, epochs=epochs, lr=lr, seed=seed, temperature=temperature,
                     alpha=alpha, beta=beta, grad_compression=grad_compression)
        metrics += [("accuracy", result.accuracy), ("bits_per_step", result.bits_per_step)]
    label = f"distill({loss},{student},w={width_mult or width})"
    for sub in new.modules():
        sub.hwsim_meta = {"compression": [label]}
    change = LayerChange(module="", change=label, values=tuple(metrics))
    return StepReport(method=f"distill:{loss}", changes=(change,), metrics=tuple(metrics), new_model=new.eval())


_COMMON = {"student": "'thin' (make_student of the teacher, default) or a zoo name (mobilenet_v2, "
                      "shufflenet_v2, ...)",
           "width": "channel multiplier of a thin student (default 0.5)",
           "width_mult": "width multiplier of a zoo student (default: width)",
           "depth": "max shape-preserving blocks kept per Sequential (thin student)",
           "epochs": "student epochs (0: replace the model without training; default 10)",
           "teacher_epochs": "train the teacher first with CE for this many epochs (default 0)",
           "lr": "Adam learning rate (default 0.01)", "temperature": "KD temperature T (default 4)",
           "alpha": "weight of the soft KD term (default 0.9)",
           "beta": "attention-transfer weight (default 1 on the per-map sum ~ paper's 1000 on a 32x32 mean)",
           "grad_compression": "none | qsgd:<bits> | qsgd:s=<levels> | terngrad (bits per step reported)"}

_PAPERS = {"hinton": ("distill", "Hinton et al., Distilling the Knowledge in a Neural Network, NIPS 2014 Deep "
                                "Learning Workshop, arXiv:1503.02531"),
           "fitnets": ("fitnets", "Romero et al., FitNets: Hints for Thin Deep Nets, ICLR 2015"),
           "attention": ("attention_transfer", "Zagoruyko & Komodakis, Paying More Attention to Attention, ICLR 2017"),
           "fsp": ("fsp", "Yim et al., A Gift from Knowledge Distillation (FSP matrices), CVPR 2017")}

for _loss, (_name, _paper) in _PAPERS.items():
    register_method(_name, paper=_paper, family="distill", params=dict(_COMMON), trainable=True)(
        functools.wraps(distill_step)(functools.partial(distill_step, loss=_loss)))

from hwsim.compress import detection_kd as _detection_kd  # noqa: E402,F401  (registers detection_kd)
