"""The memory model every engine shares: what each level holds, what is refetched, what it costs in time.

* ``capacity``: bytes a tensor may occupy in a level (partitions, shared buffers, double buffering);
* ``reuse``: how often each operand crosses DRAM when the on-chip buffers cannot hold it whole
  (tile reuse over the two loop orders of a GEMM, partial-sum spills when a reduction is split);
* ``bandwidth``: cycles each level needs to move its traffic on its read and write ports, and the
  stalls they add to an engine's compute cycles;
* ``traffic``: the DRAM -> global buffer -> PE access rows of the three-tier engines.

The systolic engine's physical model and the sparse, bit-serial and binary engines all call it.
"""

from hwsim.models.memory.bandwidth import stall_cycles, transfer_cycles
from hwsim.models.memory.capacity import on_chip_capacity_bytes, partition_capacity_bytes
from hwsim.models.memory.reuse import Fetches, gemm_fetches

__all__ = ["stall_cycles", "transfer_cycles", "on_chip_capacity_bytes", "partition_capacity_bytes", "Fetches",
           "gemm_fetches"]
