"""Recipe presets compose to the official numbers (the custom column of the official
hyp.scratch.*.yaml table) and the small-data recipe to what docs/own_data.md states."""

from __future__ import annotations

from hydra import compose

# data/hyp.scratch.custom.yaml of the official YOLOv7
CUSTOM = {
    "optim": {"name": "sgd", "lr0": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "nominal_batch": 64},
    "schedule": {"lrf": 0.1, "epochs": 300, "warmup_epochs": 3.0, "warmup_min_iters": 1000, "warmup_momentum": 0.8,
                 "warmup_bias_lr": 0.1},
    "loss": {"box": 0.05, "obj": 0.7, "cls": 0.3},
    "augment": {"hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "degrees": 0.0, "translate": 0.2, "scale": 0.5,
                "shear": 0.0, "perspective": 0.0, "flipud": 0.0, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0,
                "paste_in": 0.0},
    "assigner": {"anchor_t": 4.0},
}


def test_recipe_custom_is_the_official_custom_column(hydra_ctx):
    cfg = compose("train", overrides=["experiment=recipe_custom"])
    for group, values in CUSTOM.items():
        for key, value in values.items():
            assert cfg[group][key] == value, (group, key, cfg[group][key], value)
    assert cfg.assigner.strategy == "lead_only" and cfg.anchors == "auto"  # loss_ota 1 (OTA; P5: no aux head), autoanchor on
    plain = compose("train", overrides=["experiment=recipe_custom", "assigner=plain"])
    assert plain.assigner.strategy == "plain"  # official loss_ota: 0


def test_recipe_small(hydra_ctx):
    cfg = compose("train", overrides=["experiment=recipe_small", "data=shapes_small"])
    # AdamW lr0 0.006, a step every batch of 4, the bias lr ramping from 0 (0.1 is the official start, for SGD)
    assert (cfg.optim.name, cfg.optim.lr0, cfg.optim.nominal_batch, cfg.data.batch_size) == ("adamw", 0.006, 4, 4)
    assert cfg.schedule.warmup_bias_lr == 0.0
    # the user's own batch size wins over the recipe's
    mine = compose("train", overrides=["experiment=recipe_small", "data=shapes_small", "data.batch_size=16"])
    assert mine.data.batch_size == 16
    # a 16-minute budget, at most 100 epochs, warm-up and close-mosaic fractions of them (8 % and 25 %)
    assert (cfg.schedule.minutes, cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.schedule.warmup_min_iters) == (
        16, 100, 8.0, 0)
    assert (cfg.augment.mosaic, cfg.augment.close_mosaic, cfg.augment.mixup, cfg.augment.scale) == (1.0, 25, 0.0, 0.5)
    assert cfg.data.single_cls and cfg.data.source.shape_classes == 5 and cfg.data.source.num_train == 56
    quick = compose("train", overrides=["recipe=quick"])  # the official and quick recipes are left as they were
    assert (quick.optim.nominal_batch, quick.schedule.warmup_min_iters, quick.augment.mosaic) == (16, 50, 0.0)
    assert quick.schedule.minutes is None  # no time budget unless one is given


def test_the_main_jobs_half_width_yields_to_a_scaling_the_user_names(hydra_ctx):
    """model=yolov7-tiny-half selects scaling=width_half; a scaling option on the command line replaces it
    whole (its own width, not the main job's 0.5), and every other model gets no scaling."""
    def scaling(*overrides):
        s = compose("train", overrides=list(overrides)).scaling
        return s.mode, s.width, s.depth
    assert scaling() == ("width", 0.5, 1.0)
    assert scaling("scaling=width") == ("width", 1.25, 1.0)
    assert scaling("scaling=none") == ("none", 1.0, 1.0)
    assert scaling("scaling=compound") == ("compound", 1.0, 1.5)
    assert scaling("model=yolov7") == ("none", 1.0, 1.0)
    assert scaling("recipe=quick") == ("none", 1.0, 1.0)
