"""Lowering time per zoo model (torch.export + our walker), real weights and meta device.

Run: ``python benchmarks/bench_lowering.py [--models resnet18,vit_tiny] [--repeat 1] [--no-meta]``.
Prints one row per model: layers, MACs, build time, lowering time (real weights) and lowering time on the
meta device (shapes only), plus the export share of the lowering time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
import warnings


def _time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(names: list[str], *, repeat: int, meta: bool) -> list[dict]:
    """Measure every model in ``names``; returns one dict per model."""
    import torch

    from hwsim import zoo
    from hwsim.lower import lower

    warnings.filterwarnings("ignore")
    lower(zoo.create("digits_cnn"), zoo.input_shape("digits_cnn"))           # warm up torch.export
    rows = []
    for name in names:
        shape = zoo.input_shape(name)
        build_s, model = _time(lambda: zoo.create(name), 1)
        export_s, _ = _time(lambda: torch.export.export(model, (torch.randn(shape),)), repeat)
        lower_s, graph = _time(lambda: lower(model, shape, name=name), repeat)
        row = {"model": name, "layers": len(graph), "macs": graph.macs, "build_s": build_s,
               "export_s": export_s, "lower_s": lower_s}
        if meta:
            meta_model = zoo.create(name, device="meta")
            row["lower_meta_s"], _ = _time(lambda: lower(meta_model, shape, name=name, meta=True), repeat)
        rows.append(row)
        del model
    return rows


def render(rows: list[dict]) -> None:
    """Print the rows as a rich table (plain text when rich is missing)."""
    columns = ["model", "layers", "macs", "build_s", "export_s", "lower_s", "lower_meta_s"]
    columns = [c for c in columns if any(c in r for r in rows)]

    def fmt(row: dict, col: str) -> str:
        value = row.get(col, "")
        if col == "macs":
            return f"{value / 1e6:,.1f} M"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    try:
        from rich.console import Console
        from rich.table import Table
    except ModuleNotFoundError:
        print("  ".join(columns))
        for row in rows:
            print("  ".join(fmt(row, c) for c in columns))
        return
    table = Table(title="hwsim lowering time per zoo model (best of --repeat; seconds)")
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in rows:
        table.add_row(*(fmt(row, c) for c in columns))
    Console(width=140).print(table)


def main() -> None:
    from hwsim import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.names()))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-meta", action="store_true", help="skip the meta-device lowering column")
    args = parser.parse_args()
    render(bench(args.models.split(","), repeat=args.repeat, meta=not args.no_meta))


if __name__ == "__main__":
    main()
