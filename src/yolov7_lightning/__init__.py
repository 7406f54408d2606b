"""YOLOv7 as a PyTorch Lightning + Hydra experiment framework."""

__version__ = "0.1.0"
