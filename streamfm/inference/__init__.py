"""Inference: streaming metrics and predictions written to files."""
