"""Training library: the pure train step, checkpoints, and ``train_and_evaluate``.

``objectives`` -- ``make_objective(config)``: the model and its loss per
                  ``config.model.kind`` (``Elbo`` for the RVAE, ``RateDistortion`` for the GVAE).
``step``       -- ``TrainState``, ``make_optimizer`` (skip-non-finite, clipping,
                  Adam/Adamax + step schedule), ``train_step``, ``eval_step``.
``checkpoint`` -- orbax CheckpointManager helpers (``load_params``, EMA params for
                  evaluation/export); orbax is imported on use.
``loop``       -- ``train_and_evaluate(config, workdir)``: sharded data-parallel loop.
"""

from irec_jax.workdir import load_params
from irec_jax.train.objectives import Elbo, Objective, RateDistortion, make_objective
from irec_jax.train.loop import TrainingInterrupted, evaluate, make_sources, train_and_evaluate
from irec_jax.train.step import (SkipNonFiniteState, TrainState, eval_step, init_state,
                                 learning_rate_schedule, make_optimizer, skip_nonfinite, step_key,
                                 train_step)

__all__ = ["TrainState", "SkipNonFiniteState", "skip_nonfinite", "learning_rate_schedule",
           "make_optimizer", "init_state", "step_key", "train_step", "eval_step",
           "Objective", "Elbo", "RateDistortion", "make_objective",
           "train_and_evaluate", "evaluate", "make_sources", "TrainingInterrupted", "load_params"]
