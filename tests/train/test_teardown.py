"""The end of a multi-process run: DDP's wrapper (whose reducer holds the process group) is gone before the group
is destroyed, so the group's destructor never runs from the wrapper's under Python's lock, where it can wait for
ever on a gloo worker that needs the lock (the hang of two-process runs, pytorch/pytorch#56297)."""
import socket
import weakref

import torch
from lightning_fabric import Fabric
from torch.nn.parallel import DistributedDataParallel

from seqcpc.train.setup import close_distributed


def test_close_distributed_frees_the_ddp_wrapper_before_the_process_group(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    fabric = Fabric(accelerator="cpu", devices=1, strategy="ddp")
    fabric.launch()
    plain = torch.nn.Linear(3, 2)
    state = {"model": fabric.setup(plain)}
    assert torch.distributed.is_initialized() and isinstance(state["model"]._forward_module, DistributedDataParallel)
    wrapper = weakref.ref(state["model"]._forward_module)  # DDP, whose reducer holds the process group
    close_distributed(fabric, state)
    assert state["model"] is plain and not torch.distributed.is_initialized()
    assert wrapper() is None  # freed before the group was destroyed, not later
