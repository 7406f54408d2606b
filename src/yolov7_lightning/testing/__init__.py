"""The test and benchmark namespace (not used by training, evaluation or export; nothing in the
package imports it): plain per-image references of the official assignment and loss
(``reference_ota``, ``reference_plain``), written from the published definitions and importing
nothing from ``yolov7_lightning``, so that they check the package instead of sharing its code;
and a counter of host synchronisations (``sync_counter``, on the public ``torch.profiler``).
It imports only public ``torch`` APIs."""
