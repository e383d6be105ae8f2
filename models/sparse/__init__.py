"""Sparse accelerator engine (EIE, SCNN, Cambricon-X, 2:4 sparse tensor core, Eyeriss v2-like).

``default_mapping(layer, arch)`` and ``evaluate(layer, arch, mapping) -> LayerCounts`` follow the
engine contract of ``hwsim.models``; ``evaluate_sparseloop_case(path)`` replays a Sparseloop
reference case (``sl_*.json``) with its own per-action energies.
"""

from hwsim.models.sparse.engine import SparseMapping, default_mapping, evaluate, weight_mask
from hwsim.models.sparse.sparseloop import evaluate_sparseloop_case

__all__ = ["SparseMapping", "default_mapping", "evaluate", "evaluate_sparseloop_case", "weight_mask"]
