"""Evaluation on frozen features, shared by every modality: the loop that runs a modality's probes (run.py), linear
probes, few-shot episodes, report tables and plots."""
