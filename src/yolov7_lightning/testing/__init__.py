"""Verification aids shared by the tests and the benchmarks: plain per-image references of the
official assignment and loss (``reference_ota``, ``reference_plain``) and a counter of host
synchronisations (``sync_counter``). Not used by training."""
