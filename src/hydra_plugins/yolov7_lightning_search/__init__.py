"""Hydra plugins of yolov7-lightning: the resumable Optuna sweeper (``hparams_search=optuna``)."""
