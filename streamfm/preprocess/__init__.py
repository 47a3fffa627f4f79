"""Preprocessing: the scan pass, standardisation, epoch shuffling."""
from streamfm.preprocess.labels import encode_labels
from streamfm.preprocess.scan import ScanResult, scan
from streamfm.preprocess.shuffle import epoch_file_order, shuffled_chunks, shuffled_epoch
from streamfm.preprocess.standardize import Standardizer, should_center

__all__ = [
    "ScanResult",
    "Standardizer",
    "encode_labels",
    "epoch_file_order",
    "scan",
    "should_center",
    "shuffled_chunks",
    "shuffled_epoch",
]
