"""Thin Hydra entry points over the same ``conf/``."""
