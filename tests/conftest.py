"""Shared pytest setup: tests import their helpers from ``tests.helpers``; no network, no GPU needed."""
