"""Training: the LightningModule, the official optimiser recipe, callbacks (EMA, ...)."""
