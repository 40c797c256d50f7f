"""torch.hub entry points of a seqcpc checkout. Nothing is downloaded: load from a local checkout and a checkpoint
file you have,

    upstream = torch.hub.load("/path/to/seqcpc", "seqcpc_upstream", source="local",
                              checkpoint="runs/speech/checkpoints/last.ckpt")
    out = upstream([wave_a, wave_b])  # 1-D 16 kHz float tensors; see seqcpc/audio/upstream.py
"""
dependencies = ["torch", "einops", "numpy", "yaml"]  # module names, which torch.hub checks before loading


def seqcpc_upstream(checkpoint: str, sample_rate: int = None, device: str = "cpu"):
    """The audio CPC model of `checkpoint` as a seqcpc.audio.upstream.Upstream (eval mode, on `device`)."""
    from seqcpc.audio.upstream import Upstream

    return Upstream(checkpoint, sample_rate, device)
