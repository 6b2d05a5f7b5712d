"""What an iREC ablation is (the grid of coder settings) and what it records (``ablation.run``'s result).

Axes: Ω (nats per step), 1+ε (candidate oversampling), B (beams); N =
floor(exp(Ω(1+ε))) candidates per step; and the encoder-only knobs that files
do not store (``irec_jax.settings.CoderSettings``): ``block_kl`` (target KL
per block, nats), ``final_choices`` (how many of the last layer's final
beams the encoder compares by the pixels' exact codelength) and
``layer_choices`` (how many of every other layer's final beams it compares by
an estimate of the rest of the file). See ``irec_jax.benchmark.ablation``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from irec_jax.benchmark.errors import EvalError
from irec_jax.settings import MAX_BEAMS, CoderSettings

__all__ = ["GRIDS", "DEFAULT_LIMIT", "DEFAULT_MC_SAMPLES", "GridPoint", "Grid", "make_grid", "named_grid",
           "parse_axis", "ImageStats", "AblationResult"]

# The coder's own defaults for the encoder-only knobs (what a grid point gets unless told otherwise).
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoderSettings)}
DEFAULT_BLOCK_KL: float = float(_DEFAULTS["block_kl"])
DEFAULT_FINAL_CHOICES: int = int(_DEFAULTS["final_choices"])
DEFAULT_LAYER_CHOICES: int = int(_DEFAULTS["layer_choices"])

# The original's full grid, a smaller one that runs in a few minutes on two shared CPU cores, and
# "coder": the encoder-only knobs (block_kl x final_choices x layer_choices) at the coder's default Ω and B.
# A grid leaves out block_kl / final_choices / layer_choices to take the coder's defaults.
GRIDS: dict[str, dict[str, tuple]] = {
    "default": {"omega": (2.0, 3.0, 4.0), "one_plus_epsilon": (1.0, 1.2), "beams": (1, 10, 20)},
    "full": {"omega": (2.0, 3.0, 4.0, 5.0, 6.0), "one_plus_epsilon": (1.0, 1.1, 1.2, 1.5),
             "beams": (1, 10, 50)},
    "coder": {"omega": (float(_DEFAULTS["omega"]),), "one_plus_epsilon": (1.0, 1.1, 1.2), "beams": (20,),
              "block_kl": (50.0, 200.0), "final_choices": (1, 20), "layer_choices": (1, 20)},
}
# Images each grid uses by default (first N bundled 32x32 crops) when no --limit is given.
DEFAULT_LIMIT = {"default": 4, "full": 8, "coder": 4}
# Axes whose values are integers (the rest are real numbers); "feedback": the lossy ablation's error feedback steps.
INT_AXES = ("beams", "final_choices", "layer_choices", "feedback")
DEFAULT_MC_SAMPLES = 16


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One coder setting: Ω (nats per step), 1+ε (oversampling), B (beams), and the
    encoder-only ``block_kl`` (target nats per block), ``final_choices`` (the last layer's final
    beams compared by the pixels' codelength) and ``layer_choices`` (every other layer's final beams
    compared by the rest of the file's estimated cost); those three default to ``CoderSettings()``'s."""

    omega: float
    one_plus_epsilon: float
    beams: int
    block_kl: float = DEFAULT_BLOCK_KL
    final_choices: int = DEFAULT_FINAL_CHOICES
    layer_choices: int = DEFAULT_LAYER_CHOICES

    @property
    def epsilon(self) -> float:
        return round(self.one_plus_epsilon - 1.0, 12)  # 1.1 - 1 is 0.10000000000000009 otherwise

    @property
    def num_candidates(self) -> int:
        return CoderSettings(self.omega, self.epsilon, self.beams).num_candidates

    @property
    def label(self) -> str:
        return (f"Ω={self.omega:g} 1+ε={self.one_plus_epsilon:g} B={self.beams} "
                f"block={self.block_kl:g} choices={self.final_choices}:{self.layer_choices}")

    def settings(self, seed: int = 0):
        """The codec's settings for this point; ValueError if the codec refuses them (or if
        final_choices or layer_choices > beams: the codec would quietly compare only B final beams)."""
        from irec_jax import codec
        base = codec.coder_settings(omega=float(self.omega), epsilon=float(self.epsilon),
                                    beams=int(self.beams), seed=int(seed))
        # small_beams = beams: the point's B is the beam width of every tensor, small ones included.
        settings = dataclasses.replace(base, block_kl=float(self.block_kl), final_choices=int(self.final_choices),
                                       layer_choices=int(self.layer_choices), small_beams=int(self.beams))
        for knob in ("final_choices", "layer_choices"):
            if getattr(settings, knob) > settings.beams:
                raise ValueError(f"{knob} {getattr(settings, knob)} must be <= beams ({settings.beams}): "
                                 "the encoder has only B final beams to compare")
        return settings


@dataclasses.dataclass(frozen=True)
class Grid:
    """The axes of an ablation and its points (B outermost, then block_kl, then final_choices, then
    layer_choices, then Ω, then 1+ε: each heatmap panel's Ω × (1+ε) points are consecutive)."""

    name: str
    omega: tuple
    one_plus_epsilon: tuple
    beams: tuple
    block_kl: tuple = (DEFAULT_BLOCK_KL,)
    final_choices: tuple = (DEFAULT_FINAL_CHOICES,)
    layer_choices: tuple = (DEFAULT_LAYER_CHOICES,)

    @property
    def points(self) -> list[GridPoint]:
        return [GridPoint(o, e, b, k, c, lc) for b in self.beams for k in self.block_kl
                for c in self.final_choices for lc in self.layer_choices
                for o in self.omega for e in self.one_plus_epsilon]


def make_grid(omega: Sequence[float], one_plus_epsilon: Sequence[float], beams: Sequence[int],
              name: str = "custom", seed: int = 0, block_kl: Sequence[float] = (DEFAULT_BLOCK_KL,),
              final_choices: Sequence[int] = (DEFAULT_FINAL_CHOICES,),
              layer_choices: Sequence[int] = (DEFAULT_LAYER_CHOICES,)) -> Grid:
    """A validated ``Grid``; ``EvalError`` naming the bad value (or grid point) otherwise.

    Ω > 0 (finite), 1+ε >= 1 (finite), B an integer in [1, 4096], block_kl > 0
    (finite), final_choices and layer_choices integers in [1, 4096], no value
    repeated; and at every point (Ω, 1+ε) must give 2 .. 2^24 candidates,
    block_kl >= Ω and final_choices, layer_choices <= B.
    """
    axes = {"omega": omega, "one_plus_epsilon": one_plus_epsilon, "beams": beams, "block_kl": block_kl,
            "final_choices": final_choices, "layer_choices": layer_choices}
    for axis, values in axes.items():
        values = list(values)
        if not values:
            raise EvalError(f"ablation grid: {axis} has no values")
        if len(set(values)) != len(values):
            raise EvalError(f"ablation grid: {axis} repeats a value: {values}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise EvalError(f"ablation grid: {axis} value {v!r} is not a number")
            if not math.isfinite(float(v)):
                raise EvalError(f"ablation grid: {axis} value {v!r} is not finite")
            if axis == "omega" and not v > 0:
                raise EvalError(f"ablation grid: omega {v!r} must be > 0 nats per step")
            if axis == "one_plus_epsilon" and not v >= 1.0:
                raise EvalError(f"ablation grid: 1+epsilon {v!r} must be >= 1 (epsilon >= 0)")
            if axis in INT_AXES and (float(v) != int(v) or not 1 <= int(v) <= MAX_BEAMS):
                raise EvalError(f"ablation grid: {axis} {v!r} must be an integer in [1, {MAX_BEAMS}]")
            if axis == "block_kl" and not v > 0:
                raise EvalError(f"ablation grid: block_kl {v!r} must be > 0 nats (and >= omega)")
    grid = Grid(name, tuple(float(v) for v in omega), tuple(float(v) for v in one_plus_epsilon),
                tuple(int(v) for v in beams), tuple(float(v) for v in block_kl),
                tuple(int(v) for v in final_choices), tuple(int(v) for v in layer_choices))
    for p in grid.points:
        try:
            p.settings(seed)
        except ValueError as e:
            raise EvalError(f"ablation grid point {p.label}: {e}") from None
    return grid


def named_grid(name: str) -> Grid:
    """``GRIDS[name]`` as a ``Grid``; EvalError for an unknown name."""
    if name not in GRIDS:
        raise EvalError(f"unknown ablation grid {name!r}; known: {', '.join(GRIDS)}")
    return make_grid(**GRIDS[name], name=name)


def parse_axis(text: str, axis: str) -> tuple:
    """``"2,3,4"`` -> (2.0, 3.0, 4.0) (beams, final_choices, layer_choices: ints); EvalError for anything
    unparsable."""
    parts = [t.strip() for t in str(text).split(",")]
    if not parts or any(not t for t in parts):
        raise EvalError(f"--{axis.replace('_', '-')} {text!r}: give comma-separated numbers, e.g. 2,3,4")
    out = []
    for t in parts:
        try:
            out.append(int(t) if axis in INT_AXES else float(t))
        except ValueError:
            kind = "an integer" if axis in INT_AXES else "a number"
            raise EvalError(f"--{axis.replace('_', '-')}: {t!r} is not {kind}") from None
    return tuple(out)


# --- what a run records ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ImageStats:
    """Setting-independent facts about one image: MC estimates over ``samples`` posterior draws.

    ``eq_recon_bits``: E_{z~q}[−log2 p(x|z)]; ``nelbo_bits``: the negative ELBO
    (Σ KL + recon); ``kl_bits``: E_q[Σ_l KL_l] (each KL analytic given the
    sampled upper layers). ``*_se``: standard errors of the means (bits).
    """

    set: str
    image: str
    shape: tuple
    samples: int
    eq_recon_bits: float
    eq_recon_bits_se: float
    nelbo_bits: float
    nelbo_bits_se: float
    kl_bits: float
    kl_bits_se: float

    @property
    def dims(self) -> int:
        return int(np.prod(self.shape))


@dataclasses.dataclass
class AblationResult:
    """What ``run`` measured."""

    grid: Grid
    model: dict
    images: list  # of ImageStats
    sources: list  # of (set name, source)
    points: list  # of per-point aggregate dicts, grid order
    rows: list  # of per-image row dicts
    seed: int
    mc_samples: int
    started: str
    wall_s: float
