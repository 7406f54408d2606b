"""Data: COCO / YOLO-txt reading, the built-in shapes dataset, the YOLOv7 augmentation recipe,
letterbox, rectangular evaluation batches, collate (the Batch contract) and the DataModule."""

from .collate import Batch, ImageMeta, Sample, collate
from .config import AugmentConfig, DataConfig, SourceConfig, register_data_configs
from .datamodule import YoloDataModule
from .dataset import DetectionDataset, SampleKey
from .letterbox import Letterbox, letterbox
from .records import DatasetError, DatasetIndex, ImageRecord, LoadReport

__all__ = [
    "AugmentConfig", "Batch", "DataConfig", "DatasetError", "DatasetIndex", "DetectionDataset", "ImageMeta",
    "ImageRecord", "Letterbox", "LoadReport", "Sample", "SampleKey", "SourceConfig", "YoloDataModule", "collate",
    "letterbox", "register_data_configs",
]
