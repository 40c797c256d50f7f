"""Evaluation on frozen features, shared by every modality: linear probes, few-shot episodes, report tables
and plots."""
