"""Regenerate tests/data/zigzag/tiny/dump (ZigZag's own dump of hardware/mapping/workload.yaml).

Run with zigzag-dse 3.9.1 installed: python tests/data/zigzag/make_fixture.py
Writes ZigZag's loop_ordering.txt and per-layer *_complete.json (the mapping it chose, with its own
energy and latency) and zigzag_numbers.json (ZigZag's per-layer energy_pj / latency_cycles, for reference).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from zigzag.api import get_hardware_performance_zigzag

HERE = Path(__file__).resolve().parent / "tiny"


def main() -> None:
    dump = HERE / "dump"
    shutil.rmtree(dump, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        _, _, cmes = get_hardware_performance_zigzag(
            workload=str(HERE / "workload.yaml"), accelerator=str(HERE / "hardware.yaml"),
            mapping=str(HERE / "mapping.yaml"), opt="energy", dump_folder=tmp,
            pickle_filename=os.path.join(tmp, "cmes.pickle"))
        dump.mkdir()
        for path in Path(tmp).rglob("*"):
            if path.name == "loop_ordering.txt" or path.name.endswith("_complete.json"):
                shutil.copy(path, dump / path.name)
    numbers = [{"name": str(cme.layer.name), "energy_pj": float(cme.energy_total),
                "latency_cycles": float(cme.latency_total2)} for cme, _ in cmes[0][1]]
    (HERE / "zigzag_numbers.json").write_text(json.dumps(
        {"source": "zigzag-dse 3.9.1 get_hardware_performance_zigzag(opt='energy'), tests/data/zigzag/make_fixture.py",
         "layers": numbers}, indent=1) + "\n")


if __name__ == "__main__":
    main()
