"""Training: the Fabric loop, checkpoints, resumable loaders and samplers, progress logs and curves. It reaches
a modality only through its registry entry (seqcpc.modalities)."""
