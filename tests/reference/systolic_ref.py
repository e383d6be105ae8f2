"""Slow, obviously-right twins of the systolic kernels (pure Python/NumPy, no Numba).

* ``fold_list_ref`` / ``compat_ref``: the STYLE.md fold reference: build every fold explicitly and
  average/sum over the list (the kernel uses products of per-axis sums instead).
* ``run_fold_ref``: a literal register-level, cycle-by-cycle simulation of one fold of a tiny
  array (weights/inputs/partial sums move one PE per cycle); it also computes the numbers, so a test
  can check the array really produces ``A @ B``.
"""

from __future__ import annotations

import numpy as np

from hwsim.models.arch import ArchSpec, validate_arch


def fold_list_ref(sr: int, sc: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """Every fold's used (rows, cols), row folds inner (SCALE-Sim's order)."""
    row_sizes = [min(rows, sr - r0) for r0 in range(0, sr, rows)]
    col_sizes = [min(cols, sc - c0) for c0 in range(0, sc, cols)]
    return [(ur, uc) for uc in col_sizes for ur in row_sizes]


def compat_ref(sr: int, sc: int, t: int, rows: int, cols: int, dataflow: str) -> dict[str, float]:
    """SCALE-Sim closed forms recomputed fold by fold."""
    folds = fold_list_ref(sr, sc, rows, cols)
    preload = 0 if dataflow == "os" else rows
    fold_cycles = [preload + rows + cols + t - 2 for _ in folds]         # full-array padding
    fold_len = t + rows + cols - 2 if dataflow == "os" else 2 * rows + 2 * cols + t - 3
    map_eff = [ur * uc / (rows * cols) for ur, uc in folds]
    comp_util = [ur * uc * t / (rows * cols * fold_len) for ur, uc in folds]
    return {
        "folds": len(folds), "cycles": sum(fold_cycles) - 1,
        "mapping_eff": sum(map_eff) / len(folds), "compute_util": sum(comp_util) / len(folds),
        "row_side": sum(t * ur for ur, _ in folds),
        "stationary": sum(ur * uc for ur, uc in folds),
        "col_side": sum(t * uc for _, uc in folds),
    }


def _ws_fold(stationary: np.ndarray, streamed: np.ndarray, load: bool) -> tuple[int, np.ndarray]:
    """Stationary tile (ur x uc) in the PEs; ``streamed`` (T x ur) enters skewed from the left.

    Returns (cycles until the last partial sum leaves the bottom, outputs T x uc).
    """
    ur, uc = stationary.shape
    t = streamed.shape[0]
    cycle = 0
    regs = np.zeros((ur, uc))
    if load:                                   # shift the tile in from the top, one row per cycle
        for step in range(ur):
            regs[1:] = regs[:-1].copy()
            regs[0] = stationary[ur - 1 - step]
            cycle += 1
    else:
        regs = stationary.astype(float)
    x_reg = np.full((ur, uc), np.nan)          # input held by each PE (moves right)
    p_reg = np.full((ur, uc), np.nan)          # partial sum leaving each PE (moves down)
    tag = np.full((ur, uc), -1)                # which streamed row the partial sum belongs to
    out = np.zeros((t, uc))
    done = 0
    step = 0
    while done < t * uc:
        new_x = np.full((ur, uc), np.nan)
        new_p = np.full((ur, uc), np.nan)
        new_tag = np.full((ur, uc), -1)
        for i in range(ur):
            for j in range(uc):
                x = x_reg[i, j - 1] if j else (streamed[step - i, i] if 0 <= step - i < t else np.nan)
                if np.isnan(x):
                    continue
                above = p_reg[i - 1, j] if i else 0.0
                new_x[i, j] = x
                new_p[i, j] = above + regs[i, j] * x
                new_tag[i, j] = step - i - j
        x_reg, p_reg, tag = new_x, new_p, new_tag
        step += 1
        cycle += 1
        for j in range(uc):                    # bottom row results leave the array
            if tag[ur - 1, j] >= 0:
                out[tag[ur - 1, j], j] = p_reg[ur - 1, j]
                done += 1
    return cycle, out


def _os_fold(left: np.ndarray, top: np.ndarray, drain: bool) -> tuple[int, np.ndarray]:
    """``left`` (ur x T) enters rows skewed, ``top`` (T x uc) enters columns skewed; PEs accumulate."""
    ur, t = left.shape
    uc = top.shape[1]
    acc = np.zeros((ur, uc))
    a_reg = np.full((ur, uc), np.nan)
    b_reg = np.full((ur, uc), np.nan)
    macs = 0
    cycle = 0
    while macs < ur * uc * t:
        new_a = np.full((ur, uc), np.nan)
        new_b = np.full((ur, uc), np.nan)
        for i in range(ur):
            for j in range(uc):
                a = a_reg[i, j - 1] if j else (left[i, cycle - i] if 0 <= cycle - i < t else np.nan)
                b = b_reg[i - 1, j] if i else (top[cycle - j, j] if 0 <= cycle - j < t else np.nan)
                if not (np.isnan(a) or np.isnan(b)):
                    acc[i, j] += a * b
                    macs += 1
                new_a[i, j], new_b[i, j] = a, b
        a_reg, b_reg = new_a, new_b
        cycle += 1
    if drain:                                  # shift the results out of the bottom, one row per cycle
        cycle += ur
    return cycle, acc


def run_fold_ref(a: np.ndarray, b: np.ndarray, dataflow: str, *, load: bool = True,
                 drain: bool = False) -> tuple[int, np.ndarray]:
    """Cycles of one fold computing ``a @ b`` (a: M x K, b: K x N) and the product the array made.

    ws: b is stationary (K on rows, N on cols), a streams; is: a^T stationary (K rows, M cols), b
    streams; os: a streams on rows (M), b on columns (N), K in time.
    """
    if dataflow == "ws":
        return _ws_fold(b, a, load)
    if dataflow == "is":
        cycles, out = _ws_fold(a.T, b.T, load)
        return cycles, out.T
    return _os_fold(a, b, drain)


def physical_cycles_ref(sr: int, sc: int, t: int, rows: int, cols: int, dataflow: str,
                        overlap: bool) -> int:
    """Physical-mode cycles of one GEMM from an event schedule of folds (start/end times)."""
    folds = fold_list_ref(sr, sc, rows, cols)
    end = 0
    prev_start = prev_end = None
    prev_ur = 0
    for ur, uc in folds:
        stream = t + ur + uc - 2
        if dataflow == "os":                   # the previous fold's drain (prev_ur cycles) comes first
            if prev_end is None:
                start, end = 0, stream
            elif overlap:                      # ... or runs alongside this fold's stream
                start = prev_end
                end = start + max(stream, prev_ur)
            else:
                start = prev_end + prev_ur
                end = start + stream
        else:                                  # this fold's stationary load (ur cycles) comes first
            load_done = prev_start + ur if overlap and prev_start is not None else end + ur
            start = max(end, load_done)
            end = start + stream
        prev_start, prev_end, prev_ur = start, end, ur
    return end + (prev_ur if dataflow == "os" else 0)


def make_arch(rows: int, cols: int, *, dataflow: str = "ws", mode: str = "physical", cores: int = 1,
              sram_kb: tuple[int, int, int] = (64, 64, 64), dram_bw: float | None = 10.0,
              double_buffered: bool = True) -> ArchSpec:
    """A one-array systolic ArchSpec: DRAM + one SRAM level with I/W/O partitions."""
    dram = {"name": "DRAM", "kind": "dram"}
    if dram_bw is not None:
        dram.update(read_bw_bytes_per_cycle=dram_bw, write_bw_bytes_per_cycle=dram_bw)
    return validate_arch({
        "name": "test_array", "engine": "systolic", "clock_hz": 1e9, "technology_nm": 45,
        "memory": [dram, {"name": "GLB", "kind": "sram", "double_buffered": double_buffered,
                          "partition_bytes": {"I": sram_kb[0] * 1024, "W": sram_kb[1] * 1024,
                                              "O": sram_kb[2] * 1024}}],
        "compute": {"units": rows * cols * cores},
        "systolic": {"rows": rows, "cols": cols, "dataflow": dataflow, "mode": mode, "cores": cores},
    }, origin="test")


# ----- SCALE-Sim memory system, the slow way: whole demand matrices + Python sets -------------
def _skew(block: np.ndarray) -> np.ndarray:
    out = np.full((block.shape[0] + block.shape[1] - 1, block.shape[1]), -1, dtype=np.int64)
    for j in range(block.shape[1]):
        out[j:j + block.shape[0], j] = block[:, j]
    return out


def _pad(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.full(shape, -1, dtype=np.int64)
    out[:block.shape[0], :block.shape[1]] = block
    return out


def _gap(count: int, width: int) -> np.ndarray:
    return np.full((count, width), -1, dtype=np.int64)


def operand_matrices_ref(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ifmap (P x K, -1 past the edge), filter (K x N) and ofmap (P x N) address matrices."""
    p_total, n_total, k_total = layer.pixels, layer.num_filters, layer.window
    ifmap = np.full((p_total, k_total), -1, dtype=np.int64)
    for p in range(p_total):
        oy, ox = divmod(p, layer.ofmap_w)
        for k in range(k_total):
            fy, rest = divmod(k, layer.filter_w * layer.channels)
            fx, c = divmod(rest, layer.channels)
            y, x = oy * layer.stride_h + fy, ox * layer.stride_w + fx
            if y < layer.ifmap_h and x < layer.ifmap_w:
                ifmap[p, k] = (y * layer.ifmap_w + x) * layer.channels + c
    filt = np.array([[n * k_total + k for n in range(n_total)] for k in range(k_total)], dtype=np.int64)
    ofmap = np.array([[p * n_total + n for n in range(n_total)] for p in range(p_total)], dtype=np.int64)
    return ifmap, filt, ofmap


def demand_matrices_ref(layer, rows: int, cols: int, dataflow: str) -> list[np.ndarray]:
    """SCALE-Sim's ifmap/filter/ofmap demand matrices (one row per cycle), built literally."""
    ifmap, filt, ofmap = operand_matrices_ref(layer)
    sr, sc, t = layer.spatial_dims(dataflow)
    blocks = ([], [], [])
    for c0 in range(0, sc, cols):
        for r0 in range(0, sr, rows):
            rs, cs = slice(r0, r0 + rows), slice(c0, c0 + cols)
            if dataflow == "ws":
                parts = (_skew(np.vstack([_gap(rows, rows), _pad(ifmap[:, rs], (t, rows)), _gap(cols - 1, rows)])),
                         np.vstack([_pad(filt[rs, cs], (rows, cols))[::-1], _gap(rows + cols + t - 2, cols)]),
                         _skew(np.vstack([_gap(2 * rows - 1, cols), _pad(ofmap[:, cs], (t, cols))])))
            elif dataflow == "os":
                parts = (_skew(np.vstack([_pad(ifmap.T[:, rs], (t, rows)), _gap(cols - 1, rows)])),
                         _skew(np.vstack([_pad(filt[:, cs], (t, cols)), _gap(rows - 1, cols)])),
                         _skew(np.vstack([_gap(t - 1, cols), _pad(ofmap[rs, cs], (rows, cols))[::-1]])))
            else:
                parts = (np.vstack([_pad(ifmap.T[rs, cs], (rows, cols))[::-1], _gap(rows + cols + t - 2, cols)]),
                         _skew(np.vstack([_gap(rows, rows), _pad(filt[rs, :].T, (t, rows)), _gap(cols - 1, rows)])),
                         _skew(np.vstack([_gap(2 * rows - 1, cols), _pad(ofmap[cs, :].T, (t, cols))])))
            for store, part in zip(blocks, parts):
                store.append(part)
    return [np.vstack(store) for store in blocks]


class EstimateReadBufferRef:
    """CALC read buffer: sets of first-touch addresses, a 50-set window, batch fetches."""

    def __init__(self, size_words: int, fill_bw: int = 10):
        self.per_set, self.fill_bw = size_words // 100, fill_bw
        self.sets: list[set] = []
        self.current: set = set()
        self.window_start = 0
        self.first_cycle = None
        self.fetches: list[tuple[int, int]] = []     # (first, last) response cycle of each batch
        self.reads = 0
        self.last = (-2, -1)

    def access(self, addr: int, cycle: int) -> None:
        if addr in self.current or any(addr in s for s in self.sets[self.window_start:]):
            return
        self.current.add(addr)
        self.reads += 1
        if len(self.current) < self.per_set:
            return
        self.sets.append(self.current)
        self.current = set()
        if len(self.sets) - self.window_start < 50:
            return
        if not self.fetches:
            end = self.first_cycle - 2
            self.last = (end - -(-50 * self.per_set // self.fill_bw) + 1, end)
        self.fetches.append((self.last[0] + 1, self.last[1] + 1))
        self.window_start += 50
        self.last = (self.last[1] + 1, cycle)

    def finish(self) -> tuple[float, float, int]:
        if not self.fetches:
            sets = len(self.sets) + (1 if self.current else 0)
            need = -(-sets * self.per_set // self.fill_bw)
            return -need, -1, self.reads
        return self.fetches[0][0], self.last[1] + 1, self.reads


class WriteBufferRef:
    """Ofmap buffer: words packed in lines; half a buffer drains one line per cycle."""

    def __init__(self, size_words: int, line_words: int):
        self.size, self.drain_size, self.width = size_words, size_words - -(-size_words // 2), line_words
        self.lines: list[list[int]] = [[]]          # the last line is the open one
        self.drained_upto = 0
        self.free = size_words
        self.drain_end = 0
        self.cycles: list[int] = []
        self.writes = 0

    def _close_open_line(self) -> None:
        if self.lines[-1]:
            self.lines.append([])

    def _drain(self, start: int) -> int:
        chunk = self.lines[self.drained_upto:len(self.lines) - 1][: -(-self.drain_size // self.width)]
        size = (len(chunk) - 1) * self.width + len(chunk[-1])
        self.writes += size
        self.free += size
        self.cycles += [start + i for i in range(len(chunk))]
        self.drained_upto += len(chunk)
        return start + len(chunk) - 1

    def write(self, cycle: int) -> int:
        self.lines[-1].append(1)
        self.free -= 1
        if len(self.lines[-1]) == self.width:
            self.lines.append([])
        if cycle < self.drain_end:
            if self.free <= 0:
                cycle = self.drain_end
        elif self.free < self.size - self.drain_size:
            self._close_open_line()
            self.drain_end = self._drain(cycle)
        return cycle

    def finish(self, cycle: int) -> tuple[float, float, int]:
        self._close_open_line()
        while self.drained_upto < len(self.lines) - 1:
            self.drain_end = self._drain(cycle)
            cycle = self.drain_end + 1
        return min(self.cycles), max(self.cycles), self.writes


def prefetch_sequence_ref(layer, rows: int, cols: int, dataflow: str, operand: int) -> list[int]:
    """USER-mode DRAM fetch order: per-fold operand blocks stacked, then row-major or anti-diagonal."""
    ifmap, filt, _ = operand_matrices_ref(layer)
    sr, sc, t = layer.spatial_dims(dataflow)
    by_rows = [slice(r0, r0 + rows) for r0 in range(0, sr, rows)]
    by_cols = [slice(c0, c0 + cols) for c0 in range(0, sc, cols)]
    recipes = {                                  # (blocks of one fold each, anti-diagonal order?)
        ("ws", 0): (lambda: [_pad(ifmap[:, rs], (t, rows)) for rs in by_rows], True),
        ("ws", 1): (lambda: [_pad(filt[:, cs], (sr, cols)) for cs in by_cols], False),
        ("os", 0): (lambda: [_pad(ifmap.T[:, rs], (t, rows)) for rs in by_rows], True),
        ("os", 1): (lambda: [_pad(filt[:, cs], (t, cols)) for cs in by_cols], True),
        ("is", 0): (lambda: [_pad(ifmap.T[:, cs], (sr, cols)) for cs in by_cols], False),
        ("is", 1): (lambda: [_pad(filt[rs, :].T, (t, rows)) for rs in by_rows], True),
    }
    make_blocks, diagonal = recipes[(dataflow, operand)]
    blocks = make_blocks()
    matrix = np.vstack(blocks)
    if not diagonal:
        return matrix.ravel().tolist()
    cells = sorted(np.ndindex(*matrix.shape), key=lambda ij: (ij[0] + ij[1], -ij[0]))
    return [int(matrix[i, j]) for i, j in cells]


class PrefetchReadBufferRef:
    """USER read buffer: fixed sets in fetch order, a circular window of sets, misses fetch more."""

    def __init__(self, sequence: list[int], size_words: int, line_words: int):
        per_set = -(-size_words // 100)
        self.sets: list[set] = [set()]
        count = 0
        for addr in sequence:
            if addr >= 0:
                self.sets[-1].add(addr)
                count += 1
                if count % per_set == 0:
                    self.sets.append(set())
        active_words = -(-size_words // 2)
        prefetch_words = size_words - active_words
        self.active = min(-(-active_words // per_set), len(self.sets))
        self.prefetch = min(-(-prefetch_words // per_set), len(self.sets) - self.active)
        first = min(-(-active_words // line_words), -(-len(sequence) // line_words))
        self.reads, self.first_cycle, self.last = first * line_words, -first, -1
        self.lines, self.line_words, self.window = -(-prefetch_words // line_words), line_words, 0

    def _hit(self, addr: int) -> bool:
        return any(addr in self.sets[(self.window + i) % len(self.sets)] for i in range(self.active))

    def service(self, addresses: list[int], cycle: int) -> int:
        """The row's offset (1 = no stall; potential stalls added, twice when positive)."""
        offset = 1
        for addr in addresses:
            while not self._hit(addr):
                if self.prefetch == 0 or not any(addr in s for s in self.sets):
                    raise RuntimeError(f"address {addr} is never prefetched")
                self.window = (self.window + self.prefetch) % len(self.sets)
                self.last += self.lines + 1
                self.reads += self.lines * self.line_words
                potential = self.last - (cycle + offset)
                offset += potential + max(potential, 0)
        return offset

    def finish(self) -> tuple[float, float, int]:
        return self.first_cycle, self.last, self.reads


def memory_ref(layer, rows: int, cols: int, dataflow: str, size_words: tuple[int, int, int], *,
               interface: str = "CALC", fill: tuple[int, int] = (10, 10), drain: int | None = None) -> dict:
    """Stalls, total cycles, SRAM windows and DRAM (start, stop, count) per operand, row by row."""
    demands = demand_matrices_ref(layer, rows, cols, dataflow)
    if interface == "USER":
        reads = [PrefetchReadBufferRef(prefetch_sequence_ref(layer, rows, cols, dataflow, op), size_words[op],
                                       fill[op]) for op in (0, 1)]
    else:
        reads = [EstimateReadBufferRef(size_words[0]), EstimateReadBufferRef(size_words[1])]
    writes = WriteBufferRef(size_words[2], (drain or cols) if interface == "USER" else cols)
    stalls, serviced, windows = 0, [], [[], [], []]
    for i in range(demands[0].shape[0]):
        cycle = i + stalls
        read_stall = 0
        for operand, buffer in enumerate(reads):
            valid = [int(a) for a in demands[operand][i] if a >= 0]
            if not valid:
                continue
            if interface == "USER":
                offset = buffer.service(valid, cycle)
                read_stall = max(read_stall, offset - 1)
            else:
                offset = 1
                if buffer.first_cycle is None:
                    buffer.first_cycle = cycle
                for addr in valid:
                    buffer.access(addr, cycle)
            windows[operand].append(cycle + offset)
        out = cycle
        valid_out = [a for a in demands[2][i] if a >= 0]
        for _ in valid_out:
            out = writes.write(out)
        if valid_out:
            windows[2].append(out)
        serviced.append(out)
        stalls += max(read_stall, out - cycle)
    dram = [reads[0].finish(), reads[1].finish(), writes.finish(serviced[-1])]
    return {"stalls": stalls, "total": max(serviced), "windows": [(w[0], w[-1]) for w in windows], "dram": dram}


def calc_memory_ref(layer, rows: int, cols: int, dataflow: str, size_words: tuple[int, int, int]) -> dict:
    """CALC-mode ``memory_ref``."""
    return memory_ref(layer, rows, cols, dataflow, size_words)


def physical_fold_loop_ref(sr: int, sc: int, t: int, rows: int, cols: int, groups: int, pack: int,
                           load_before: bool, overlap: bool) -> tuple[int, int]:
    """``(cycles, folds)`` of the physical model walking every fold (the loop ``folds.physical_cycles`` sums in closed form)."""
    if pack > 1:
        sizes = [min(pack, groups - start) for start in range(0, groups, pack)]
        sequence = [(g * sr, g * sc) for g in sizes]
    else:
        sequence = fold_list_ref(sr, sc, rows, cols) * groups
    total, prev_stream, prev_swap = 0, None, 0
    for ur, uc in sequence:
        stream = t + ur + uc - 2
        if load_before:                        # load this fold's tile, hidden under the previous stream
            total += ur if prev_stream is None or not overlap else max(0, ur - prev_stream)
        elif prev_stream is not None:          # drain the previous fold, hidden under this stream
            total += max(0, prev_swap - stream) if overlap else prev_swap
        total += stream
        prev_stream, prev_swap = stream, ur
    if not load_before:
        total += prev_swap
    return total, len(sequence)
