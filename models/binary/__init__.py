"""Binary (XNOR-popcount) engine with an integer fallback path; engine contract of ``hwsim.models``."""

from hwsim.models.binary.engine import BinaryMapping, default_mapping, evaluate, is_binarized

__all__ = ["BinaryMapping", "default_mapping", "evaluate", "is_binarized"]
