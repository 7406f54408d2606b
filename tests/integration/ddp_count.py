"""Counting DDP's gradient all-reduces: a check that gradient-accumulation micro-steps do not communicate.

    yolov7-train trainer=ddp_cpu trainer.strategy._target_=tests.integration.ddp_count.AllReduceCountingDDPStrategy

(with the repository on ``PYTHONPATH``, as ``test_ddp.py`` starts it)

:class:`AllReduceCountingDDPStrategy` is :class:`HydraDDPStrategy` with a DDP communication hook
that is the default all-reduce, counted (one round = every gradient bucket reduced once, i.e. one
synchronised backward). At the end of fit each rank writes ``allreduce_rank<r>.json`` into the run
folder: ``allreduce_rounds``, ``optimizer_steps`` and ``iterations`` (batches). With the module's
no-sync micro-steps the rounds equal the optimizer steps, not the iterations.
"""

from __future__ import annotations

from pathlib import Path

from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from yolov7_lightning.atomic import atomic_write_json
from yolov7_lightning.training.ddp import HydraDDPStrategy


class AllReduceCountingDDPStrategy(HydraDDPStrategy):
    allreduce_rounds = 0

    def _register_ddp_hooks(self) -> None:
        super()._register_ddp_hooks()
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            raise ValueError("AllReduceCountingDDPStrategy replaces the DDP communication hook; ddp_comm_hook is set")

        def counting_allreduce(state, bucket):
            if bucket.is_last():
                self.allreduce_rounds += 1
            return default_hooks.allreduce_hook(state, bucket)

        self.model.register_comm_hook(None, counting_allreduce)

    def teardown(self) -> None:
        module = self.lightning_module
        trainer = getattr(module, "_trainer", None) if module is not None else None
        if trainer is not None and trainer.state.fn == "fit":
            atomic_write_json({"rank": self.global_rank, "allreduce_rounds": self.allreduce_rounds,
                               "optimizer_steps": trainer.global_step, "iterations": getattr(module, "iteration", None)},
                              Path(trainer.default_root_dir) / f"allreduce_rank{self.global_rank}.json", indent=2)
        super().teardown()
