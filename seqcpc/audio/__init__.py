"""Audio and other 1-D sequences: conv encoder, audio IO, manifests, training windows, synthetic sequences, speech
evaluation, and the registry entry that plugs them into the engine (seqcpc.audio.modality)."""
