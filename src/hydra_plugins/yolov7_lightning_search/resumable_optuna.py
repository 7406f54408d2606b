"""A hyper-parameter search that resumes: hydra-optuna-sweeper's ``OptunaSweeper`` with a persistent
study (``hparams_search=optuna``: SQLite in the sweep folder) that picks up where a killed search
stopped, instead of starting ``n_trials`` new trials.

On a second start with the same ``hydra.sweep.dir``, :class:`ResumableOptunaSweeper` first re-runs the
trials the killed search left running (same trial number and job folder, the parameters they had drawn;
any not drawn yet are drawn now) and tells the study their result, then lets the plugin run the trials
still missing from ``n_trials`` (finished ones: complete, pruned or failed). Job folder ``<sweep>/<n>``
is trial ``n``.

It lives in the ``hydra_plugins`` namespace because Hydra loads sweepers only from there; without the
``[cluster]`` extra (no hydra-optuna-sweeper) the module defines nothing, so Hydra's plugin scan stays quiet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the [cluster] extra is not installed
    OptunaSweeper = None

log = logging.getLogger(__name__)


if OptunaSweeper is not None:
    class ResumableOptunaSweeper(OptunaSweeper):
        """``OptunaSweeper`` (same configuration) whose study, when it already exists, is resumed."""

        def sweep(self, arguments: List[str]) -> None:
            from optuna.trial import TrialState

            finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            impl = self.sweeper
            Path(str(impl.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)  # where the SQLite file goes
            study = self._existing_study()
            if study is not None:
                self._rerun_interrupted(study, arguments)
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state in finished for t in trials)
                log.info("resuming study %s: %d of %d trials finished", study.study_name, done, impl.n_trials)
                impl.n_trials = max(impl.n_trials - done, 0)
                impl.job_idx = len(trials)  # the next trial's number: job folder n = trial n
                if impl.n_trials == 0:
                    log.info("all %d trials finished; best: trial %d, %s", done, study.best_trial.number,
                             study.best_trial.value)
                    return None
            return impl.sweep(arguments)

        def _existing_study(self) -> Any:
            import optuna

            impl = self.sweeper
            if impl.storage is None or impl.study_name is None:
                return None  # an in-memory study cannot be resumed
            names = {s.study_name for s in optuna.get_all_study_summaries(storage=impl.storage)}
            if impl.study_name not in names:
                return None
            return optuna.load_study(study_name=impl.study_name, storage=impl.storage, sampler=impl.sampler)

        def _search_space(self, arguments: List[str]) -> tuple[dict[str, Any], dict[str, Any]]:
            """The plugin's search space and fixed parameters for these arguments (as its ``sweep`` builds them)."""
            from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

            impl = self.sweeper
            impl._process_searchspace_config()
            distributions, fixed = create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))
            space = dict(impl.search_space_distributions or {})
            space.update(distributions)
            return {k: v for k, v in space.items() if k not in fixed}, fixed

        def _rerun_interrupted(self, study: Any, arguments: List[str]) -> None:
            import optuna
            from optuna.trial import TrialState

            impl = self.sweeper
            running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            if not running:
                return
            space, fixed = self._search_space(arguments)
            for frozen in running:
                trial = optuna.trial.Trial(study, frozen._trial_id)
                overrides = impl._configure_trials([trial], space, fixed)  # its stored parameters, not new ones
                log.info("re-running trial %d, left running by the interrupted search", frozen.number)
                ret = impl.launcher.launch(overrides, initial_job_idx=frozen.number)[0]
                try:
                    value = float(ret.return_value)
                except Exception as e:  # a failed job (its traceback is in the job's log) or no fitness
                    log.warning("trial %d failed: %s", frozen.number, e)
                    study.tell(frozen.number, state=TrialState.FAIL)
                else:
                    study.tell(frozen.number, value)
