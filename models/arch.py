"""Hardware descriptions: ``ArchSpec`` (pydantic), loaded and validated from ``configs/arch/*.yaml``.

An ``ArchSpec`` is a memory-level tree, outer to inner (DRAM -> global buffer -> PE buffers),
ending in compute units, plus one engine-specific section (``systolic``, ``spatial``, ``sparse``,
``bitserial``, ``binary``) that the engine of that name reads. Every preset cites its numbers in
``sources`` (parameter path -> citation). Invalid configs raise one ``ConfigError`` line naming
the file, the key, the allowed values and the value received.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt,
                      ValidationError, model_validator)

from hwsim import _yaml
from hwsim.errors import ConfigError, UnknownNameError

Tensor = Literal["W", "I", "O"]
Engine = Literal["systolic", "spatial", "sparse", "bitserial", "binary"]
DramType = Literal["LPDDR4", "LPDDR5", "DDR3", "DDR4", "HBM2", "GDDR6"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryLevel(_Strict):
    """One storage level. ``instances`` is the total count, laid out as a ``mesh_x`` x ``mesh_y`` grid (Timeloop's convention)."""

    name: str
    kind: Literal["dram", "sram", "regfile"]
    size_bytes: PositiveInt | None = None            # None: unbounded (DRAM)
    partition_bytes: dict[Tensor, PositiveInt] | None = None  # separate per-tensor buffers (ifmap/filter/ofmap SRAM)
    word_bits: PositiveInt = 8                       # bits per stored word (Timeloop "datawidth")
    width_bits: PositiveInt | None = None            # bits per vector access (Timeloop "width"); default word_bits
    banks: PositiveInt = 1
    read_bw_bytes_per_cycle: PositiveFloat | None = None   # None: unlimited
    write_bw_bytes_per_cycle: PositiveFloat | None = None
    tensors: tuple[Tensor, ...] = ("W", "I", "O")    # tensors this level keeps (others bypass it)
    instances: PositiveInt = 1
    mesh_x: PositiveInt = 1
    mesh_y: PositiveInt = 1
    dram_type: DramType | None = None
    double_buffered: bool = True

    @model_validator(mode="after")
    def _check(self) -> "MemoryLevel":
        word_bytes = self.word_bits / 8
        if self.size_bytes is not None and self.size_bytes < word_bytes:
            raise ValueError(f"size_bytes={self.size_bytes} is smaller than one {self.word_bits}-bit word")
        if self.partition_bytes:
            for tensor, size in self.partition_bytes.items():
                if size < word_bytes:
                    raise ValueError(f"partition_bytes.{tensor}={size} is smaller than one {self.word_bits}-bit word")
        if self.kind != "dram" and self.size_bytes is None and not self.partition_bytes:
            raise ValueError(f"{self.kind} level needs size_bytes or partition_bytes")
        if self.width_bits is not None and self.width_bits % self.word_bits:
            raise ValueError(f"width_bits={self.width_bits} is not a multiple of word_bits={self.word_bits}")
        if (self.mesh_x > 1 or self.mesh_y > 1) and self.mesh_x * self.mesh_y != self.instances:
            raise ValueError(f"mesh_x x mesh_y = {self.mesh_x} x {self.mesh_y} must equal instances={self.instances} "
                             "(the mesh is how the instances are laid out)")
        if self.kind == "dram":
            for name in ("banks", "instances", "mesh_x", "mesh_y"):
                if getattr(self, name) != 1:
                    raise ValueError(f"{name}={getattr(self, name)}: DRAM is modelled as one off-chip channel "
                                     "(its bandwidth is read/write_bw_bytes_per_cycle)")
            if self.size_bytes is not None or self.partition_bytes:
                raise ValueError("size_bytes/partition_bytes: DRAM capacity is unbounded in hwsim (remove it)")
            if not self.double_buffered:
                raise ValueError("double_buffered applies to on-chip buffers, not DRAM (remove it)")
        elif self.dram_type is not None:
            raise ValueError(f"dram_type applies to the DRAM level, not a {self.kind} level")
        return self

    @property
    def capacity_bytes(self) -> int | None:
        if self.partition_bytes:
            return sum(self.partition_bytes.values())
        return self.size_bytes

    @property
    def block_words(self) -> int:
        """Words moved per vector access (Timeloop block size = width / datawidth)."""
        return (self.width_bits or self.word_bits) // self.word_bits


Bits = Annotated[int, Field(gt=0, le=64)]


class ComputeSpec(_Strict):
    """The compute units at the leaves of the tree: the datapath the hardware has.

    ``units`` is the chip's multiplier count at its native width, defined per engine (and checked):
    systolic rows x cols x cores; sparse pes x multipliers_per_pe; binary xnor_width x popcount_units;
    bit-serial lanes / weight_bits (Stripes, Pragmatic), lanes / (weight_bits x act_bits) (Loom),
    fusion_units (Bit Fusion); spatial the MACs under the innermost level. ``precision`` says what
    a MAC does with operands narrower or wider than ``weight_bits``/``act_bits`` (``hwsim.models.datapath``).
    """

    kind: Literal["mac", "bitserial", "xnor"] = "mac"
    units: Annotated[int, Field(gt=0, le=1 << 24)] | None = None   # None: derived from the engine section
    weight_bits: Bits = 8
    act_bits: Bits = 8
    acc_bits: Bits = 32
    number_format: Literal["int", "fp", "flex"] = "int"
    # fixed: a narrower operand pays the native MAC; gated: it saves ``gated_saving`` of the difference
    # to a native-width MAC of its own width; scalable: the engine models every width (bit-serial units)
    precision: Literal["fixed", "gated", "scalable"] = "fixed"
    gated_saving: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    wider: Literal["multipass", "refuse"] = "multipass"   # an operand wider than native: passes, or an error

    @model_validator(mode="after")
    def _check_compute(self) -> "ComputeSpec":
        if self.acc_bits < max(self.weight_bits, self.act_bits):
            raise ValueError(f"acc_bits={self.acc_bits} is narrower than the operands "
                             f"({self.weight_bits}x{self.act_bits} bits)")
        if self.gated_saving and self.precision != "gated":
            raise ValueError("gated_saving is only used with precision: gated")
        return self


class SystolicParams(_Strict):
    rows: Annotated[int, Field(gt=0, le=65536)]
    cols: Annotated[int, Field(gt=0, le=65536)]
    dataflow: Literal["ws", "os", "is"] = "ws"
    cores: Annotated[int, Field(gt=0, le=4096)] = 1
    # "scalesim": reproduce SCALE-Sim 3.0.0 numbers; "physical": hwsim's own model (models/systolic)
    mode: Literal["physical", "scalesim"] = "physical"
    # SCALE-Sim [run_presets] InterfaceBandwidth: CALC estimates DRAM bandwidth, USER uses fixed fills
    interface_bandwidth: Literal["CALC", "USER"] = "CALC"
    # SCALE-Sim [layout] Ifmap/FilterSRAMBankBandwidth: DRAM->SRAM fill words/cycle in USER mode
    ifmap_fill_words_per_cycle: PositiveInt = 10
    filter_fill_words_per_cycle: PositiveInt = 10


class SpatialParams(_Strict):
    """Constraints for the spatial loop-nest engine (filled in by the spatial engine)."""

    # the default mapping (models/spatial default_mapping): Eyeriss's RS, or the loop order keeping one
    # tensor resident in the PE level; None: the greedy order that moves the fewest DRAM bits
    dataflow: Literal["row_stationary", "weight_stationary", "output_stationary", "input_stationary"] | None = None
    spatial_dims_x: tuple[str, ...] = ()             # loop dims allowed on the X axis of the PE mesh
    spatial_dims_y: tuple[str, ...] = ()
    mac_mesh_x: PositiveInt | None = None            # X size of each last-level instance's MAC fan-out (default: all on X)
    mac_operand_reuse: bool = False                  # MACs keep their last operands/partial sum (ZigZag); False: Timeloop
    # how a buffer serves PEs whose tiles overlap: "union" reads the overlap once (halo/diagonal multicast, as
    # ZigZag counts it); "identical" shares a read only between PEs needing the very same tile (Timeloop)
    multicast: Literal["union", "identical"] = "union"
    # zero input activations (layer act_density; models/spatial/zeros.py): gate the MAC and filter read
    # (energy saved, cycle kept), skip them (cycle removed too), or nothing
    act_zeros: Literal["none", "gate", "skip"] = "none"
    act_dram_format: Literal["none", "rle"] = "none"  # input activations on the DRAM link (rle: Eyeriss RLC)
    rle_run_bits: Annotated[int, Field(gt=0, le=16)] = 5     # bits of a run (zeros before a level)
    rle_word_bits: Annotated[int, Field(gt=1, le=512)] = 64  # link word holding pairs + 1 terminator bit


class SparseParams(_Strict):
    weight_format: str = "bitmask"
    act_format: str = "uncompressed"
    skip: Literal["none", "weights", "activations", "both"] = "weights"
    gate: Literal["none", "weights", "activations", "both"] = "none"
    structured_n: PositiveInt | None = None          # N:M support (e.g. 2 of 4)
    structured_m: PositiveInt | None = None
    metadata_bits: PositiveInt | None = None
    pes: PositiveInt = 1
    multipliers_per_pe: PositiveInt = 1
    # --- added by the sparse engine (all optional, defaults keep older presets valid) ---
    dataflow: Literal["column_broadcast", "cartesian", "row_parallel", "nm_dense"] = "column_broadcast"
    mode: Literal["data", "statistical"] = "data"    # real masks vs densities only
    density_model: Literal["hypergeometric", "uniform"] = "hypergeometric"  # statistical mode
    queue_depth: PositiveInt = 1                      # per-PE activation FIFO (EIE: 8)
    act_lanes: PositiveInt = 1                        # cartesian: activations per PE vector (SCNN I)
    accumulator_entries: PositiveInt | None = None    # cartesian: sets the output-channel group Kc
    pe_grid: tuple[PositiveInt, PositiveInt] | None = None  # cartesian: PE mesh over the output plane
    intersection_width: PositiveInt | None = None     # metadata compares per PE per cycle; None = free
    pixel_parallel: PositiveInt = 1                   # column_broadcast: independent activation streams


class BitSerialParams(_Strict):
    design: Literal["stripes", "loom", "bit_fusion", "pragmatic"]
    lanes: PositiveInt = 1
    brick_bits: PositiveInt = 2
    max_bits: PositiveInt = 16
    # --- added by the bit-serial engine (optional) ---
    sync_group: PositiveInt = 1                       # pragmatic: activations that advance in lock-step
    fusion_units: PositiveInt | None = None           # bit_fusion: fusion units (default lanes)
    min_bits: PositiveInt = 1                         # precision floor of a serial lane


class BinaryParams(_Strict):
    xnor_width: PositiveInt = 64
    popcount_units: PositiveInt = 1
    fallback_bits: PositiveInt = 8                    # first/last layers in higher precision
    fallback_macs_per_cycle: PositiveInt | None = None  # fallback path throughput; default compute.units


class LevelEnergy(_Strict):
    """Pinned pJ per *vector* action of one memory level (e.g. a published or Accelergy ERT figure)."""

    read_pj: NonNegativeFloat
    write_pj: NonNegativeFloat | None = None          # default: read_pj
    update_pj: NonNegativeFloat | None = None         # default: write_pj
    leak_pj_per_cycle: NonNegativeFloat = 0.0         # per instance
    source: str


class EnergySpec(_Strict):
    table: str = "horowitz_45nm"                      # stem of configs/energy/*.yaml
    voltage_v: PositiveFloat | None = None
    levels: dict[str, LevelEnergy] = Field(default_factory=dict)   # per-level overrides of the table
    mac_pj: NonNegativeFloat | None = None            # pinned pJ per MAC (overrides the table's MAC model)
    mac_source: str | None = None
    reference_nm: PositiveFloat | None = None         # node the pinned figures hold at (default: technology_nm)

    @model_validator(mode="after")
    def _check_energy(self) -> "EnergySpec":
        shipped = _energy_table_names()
        if self.table not in shipped and not self.table.endswith((".yaml", ".yml")):
            raise ValueError(f"unknown energy table {self.table!r} (allowed: {', '.join(shipped)})")
        if self.mac_pj is not None and not self.mac_source:
            raise ValueError("mac_pj needs mac_source (where the figure comes from)")
        return self


def _energy_table_names() -> list[str]:
    """Stems of the shipped energy tables (``configs/energy/*.yaml``)."""
    folder = resources.files("hwsim.configs") / "energy"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


class ArchSpec(_Strict):
    """A whole accelerator: memory tree + compute + engine section + clock/technology + sources."""

    name: str
    description: str = ""
    engine: Engine
    clock_hz: PositiveFloat
    technology_nm: PositiveFloat
    memory: tuple[MemoryLevel, ...] = Field(min_length=1)
    compute: ComputeSpec
    vector_lanes: PositiveInt | None = None           # lanes of the vector unit for pool/eltwise; default = array cols
    systolic: SystolicParams | None = None
    spatial: SpatialParams | None = None
    sparse: SparseParams | None = None
    bitserial: BitSerialParams | None = None
    binary: BinaryParams | None = None
    energy: EnergySpec = EnergySpec()
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ArchSpec":
        if getattr(self, self.engine) is None and self.engine != "spatial":
            raise ValueError(f"engine is {self.engine!r} but the {self.engine!r} section is missing")
        names = [level.name for level in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names must be unique, got {names}")
        if self.memory[0].kind != "dram":
            raise ValueError(f"the outermost memory level must be dram, got {self.memory[0].kind!r}")
        if unknown := sorted(set(self.energy.levels) - set(names)):
            raise ValueError(f"energy.levels names unknown memory level(s) {unknown} (levels: {names})")
        from hwsim.models.fields import check_engine_fields, multiplier_count

        if self.compute.units is None:
            derived = multiplier_count(self)
            if derived is None:
                raise ValueError(f"compute.units: required for the {self.engine} engine (its multiplier count)")
            object.__setattr__(self, "compute", self.compute.model_copy(update={"units": derived}))
        check_engine_fields(self)
        return self

    # ----- derived views ----------------------------------------------------------------------
    @property
    def dram(self) -> MemoryLevel:
        return self.memory[0]

    @property
    def peak_macs_per_cycle(self) -> int:
        if self.systolic is not None and self.engine == "systolic":
            return self.systolic.rows * self.systolic.cols * self.systolic.cores
        return self.compute.units

    @property
    def peak_ops_per_s(self) -> float:
        """Peak operations per second, counting a MAC as two operations (the TOPS convention)."""
        return 2.0 * self.peak_macs_per_cycle * self.clock_hz

    @property
    def on_chip_bytes(self) -> int:
        return sum((level.capacity_bytes or 0) * level.instances for level in self.memory[1:])

    def level(self, name: str) -> MemoryLevel:
        for level in self.memory:
            if level.name == name:
                return level
        raise KeyError(f"no memory level {name!r}; levels: {[lvl.name for lvl in self.memory]}")

    def with_overrides(self, overrides: dict[str, Any], *, origin: str = "override") -> "ArchSpec":
        """A new spec with dotted-path overrides applied (``systolic.rows``, ``memory.GLB.size_bytes``).

        ``compute.units`` follows the engine section (e.g. doubling ``systolic.cols`` doubles it) unless
        the overrides set it too.
        """
        from hwsim.models.fields import multiplier_count

        data = copy.deepcopy(self.model_dump(mode="python"))
        if "compute.units" not in overrides and multiplier_count(self) is not None:
            data["compute"]["units"] = None     # derived again from the overridden engine section
        for dotted, value in overrides.items():
            _set_dotted(data, dotted, value, origin=origin)
        return validate_arch(data, origin=origin)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, *, origin: str) -> None:
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, (list, tuple)):
            matches = [item for item in node if item.get("name") == part]
            if not matches:
                names = [item.get("name") for item in node]
                raise ConfigError(f"{origin}: {'.'.join(parts[:i + 1])}: no memory level {part!r} (levels: {names})")
            node = matches[0]
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError(f"{origin}: {dotted}: unknown key {part!r} (valid: {sorted(node)})")
            if node[part] is None:
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, dict) and last not in node and not _is_open_mapping(parts):
        raise ConfigError(f"{origin}: {dotted}: unknown key {last!r} (valid: {sorted(node)})")
    node[last] = value


def _is_open_mapping(parts: list[str]) -> bool:
    return len(parts) >= 2 and parts[-2] in {"sources", "partition_bytes"}


def _format_validation_error(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "<root>"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; extra keys are not allowed)"
    got = first.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{origin}: {key}: {message}{shown}"


def validate_arch(data: Any, *, origin: str = "<arch>") -> ArchSpec:
    """Validate a parsed YAML/dict into an ``ArchSpec``, turning errors into one ``ConfigError`` line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return ArchSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def _presets_dir():
    return resources.files("hwsim.configs") / "arch"


def preset_names() -> list[str]:
    """Names (YAML stems) of the shipped architecture presets."""
    return sorted(entry.name[:-5] for entry in _presets_dir().iterdir() if entry.name.endswith(".yaml"))


def _parse_yaml(text: str, origin: str) -> Any:
    try:
        return _yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{origin}: malformed YAML{where}: {problem}") from None


@lru_cache(maxsize=128)
def _load_preset(name: str) -> ArchSpec:
    entry = _presets_dir() / f"{name}.yaml"
    return validate_arch(_parse_yaml(entry.read_text(), f"{name}.yaml"), origin=f"{name}.yaml")


def load_arch(name_or_path: str | Path | ArchSpec) -> ArchSpec:
    """Load a preset by name (``edge_tpu_like``), a YAML file path or ``zigzag:HARDWARE.yaml`` (a ZigZag
    accelerator, read by ``hwsim.interop.zigzag``); pass an ``ArchSpec`` through."""
    if isinstance(name_or_path, ArchSpec):
        return name_or_path
    text = str(name_or_path)
    if text.startswith("zigzag:"):                  # a ZigZag hardware YAML (hwsim.interop.zigzag)
        from hwsim.interop.zigzag import load_zigzag_accelerator

        return load_zigzag_accelerator(text[len("zigzag:"):])
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"{text}: architecture file not found")
        data = _parse_yaml(path.read_text(), path.name)
        if isinstance(data, dict) and "operational_array" in data and "memories" in data and "engine" not in data:
            raise ConfigError(f"{path.name}: this is a ZigZag hardware file; pass it as 'zigzag:{text}' "
                              "(and its mapping with --zigzag-mapping MAPPING.yaml)")
        return validate_arch(data, origin=path.name)
    if text not in preset_names():
        raise UnknownNameError(f"unknown architecture {text!r}; presets: {', '.join(preset_names())}")
    return _load_preset(text)
