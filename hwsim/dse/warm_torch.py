"""Imported (for its effect) by a sweep's fork server: torch and ``torch.export`` warmed once for every worker.

A sweep whose graphs must be built gives each building worker ~3 s of fixed cost before its first
build: ``import torch`` (~1.4 s) and the first ``torch.export`` (~1.5 s of dynamo/FX set-up that later
exports reuse). ``ProcessBackend(preload_torch=True)`` starts its workers from a ``forkserver`` whose
preload is this module, so that cost is paid once, in the server, while the parent opens the store and reads ahead
in the sweep, and every worker forks with it done (copy-on-write pages, nothing re-imported).

Forking is only safe while the server runs a single thread: this module pins torch (and OpenMP/BLAS, if
the user did not set them) to one thread *before* anything runs, the count every build uses anyway
(``evaluate.BUILD_TORCH_THREADS``), so no intra-op pool exists to be copied half-alive into a child.
The warm-up lowers a tiny conv/batch-norm/linear module through ``hwsim.lower`` (the real code path) and
discards the graph: nothing is written, and a failure only leaves the workers cold.
"""

from __future__ import annotations

import gc
import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def warm() -> None:
    """Import what a graph-building worker needs and run one tiny ``torch.export`` through ``hwsim.lower``."""
    import torch

    import hwsim.dse.evaluate
    import hwsim.simulate  # noqa: F401  (what every point needs)
    from hwsim.lower import lower

    torch.set_num_threads(hwsim.dse.evaluate.BUILD_TORCH_THREADS)

    class _Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:       # the op kinds of the zoo's CNNs
            x = torch.nn.functional.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)
            x = torch.relu(x + x)
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    lower(_Tiny().eval(), input_shape=(1, 3, 8, 8), name="warm")


try:
    warm()
except Exception:  # noqa: BLE001 - a failed warm-up only costs speed: each worker then warms itself
    pass

# Everything the server holds now is what every worker inherits: frozen out of the collector's view,
# a worker's collections neither traverse those ~10^6 torch objects nor touch (copy) their pages. The
# second and third ResNet-18 builds in a forked worker took 1.36/1.20 s frozen, 1.59-1.70/1.23-1.38 s not
gc.collect()
gc.freeze()
