"""Images as patch grids (CPC v2): patches, per-patch encoder, row-causal grid context, augmentations, the patch
model, the prepared image store, image evaluation, and the registry entry (seqcpc.image.modality)."""
