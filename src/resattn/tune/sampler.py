"""How trials are drawn and stopped: a TPE sampler seeded per trial, and the named pruners."""

from __future__ import annotations

import numpy as np
import optuna

from ..errors import ConfigError

PRUNERS = ("median", "hyperband", "none")


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE whose random state is seeded from ``seed`` and the trial number: one worker is
    reproducible; workers sharing a study do not draw the same start-up points (one TPE
    seeded alike in every process would)."""

    def __init__(self, seed: int = 0, n_startup_trials: int = 10) -> None:
        self.seed, self.n_startup_trials = seed, n_startup_trials
        self._per_trial: dict[int, optuna.samplers.TPESampler] = {}

    def _tpe(self, trial) -> optuna.samplers.TPESampler:
        if trial.number not in self._per_trial:
            # Hashed: Mersenne Twisters seeded 0, 1, 2... start with similar numbers.
            seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
            self._per_trial[trial.number] = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.n_startup_trials)
        return self._per_trial[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe(trial).sample_independent(study, trial, param_name,
                                                   param_distribution)

    def before_trial(self, study, trial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe(trial).after_trial(study, trial, state, values)
        self._per_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:
        for tpe in self._per_trial.values():
            tpe.reseed_rng()


def make_sampler(seed: int = 0, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """TPE seeded per trial: ``n_startup_trials`` random trials, then TPE."""
    return TrialSeededTPE(seed, n_startup_trials)


def make_pruner(pruner: str | optuna.pruners.BasePruner, epochs: int) -> optuna.pruners.BasePruner:
    """``median`` (below the median of earlier trials at that epoch, after 5 finished trials and
    from epoch 2), ``hyperband`` (resources 1..epochs), ``none``, or a pruner instance."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1),
                                              reduction_factor=3)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")
