"""Every built-in objective trains as it did before objectives became registry entries: a few deterministic steps
(one thread) of each, in today's config form, end with the weights that commit 8ba9440 gave in its form
(tests/fixtures/objectives_v3/make_fingerprints.py made the fingerprints: each tensor's sum and sum of squares,
and a hash of all the bytes). On the machine that made them the weights were bit-identical (the hashes matched);
the sums are compared with a float tolerance, since other CPUs may round differently."""
import json

import pytest
import torch

from audio_fixtures import toy_speech_corpus
from conftest import ROOT
from image_fixtures import toy_class_store, toy_image_store
from seqcpc.config import load_config
from seqcpc.train.checkpoint import read_checkpoint
from seqcpc.train.loop import pretrain

SAVED = json.loads((ROOT / "tests" / "fixtures" / "objectives_v3" / "fingerprints.json").read_text())

RUN = ["train.max_steps=4", "train.log_every=2", "train.val_every=2", "train.val_batches=1", "train.ckpt_every=4",
       "train.deterministic=true", "optim.warmup_steps=1", "optim.lr=2e-3"]
TINY_TASK = ["objective.predictor.steps=6", "objective.loss.num_negatives=32"]
AUDIO = ["model.size=synthetic_tiny", "model.encoder.dim=16", "model.context.dim=16", "data.window=2048",
         "data.batch_size=8", "data.num_sequences=32", "data.val_sequences=16"]
SPEECH = ["model.size=synthetic_tiny", "model.encoder.dim=16", "model.context.dim=16", "data.window=2048",
          "data.kind=manifest", "data.batch_size=4"]
HEAD = ["objective.hidden=16", "objective.projection=8"]
META = ["objective.n_way=2", "objective.k_shot=1", "objective.n_query=1", "objective.episodes_per_epoch=3"]
IMAGE = ["model.size=image_small", "model.encoder.dim=16", "model.context.dim=16", "model.patches.widths=[8,16]",
         "data.batch_size=8"]
FIRST = ["objective.predictor.first=1", "objective.predictor.steps=2"]
CASES = {
    "audio_cpc": AUDIO + TINY_TASK, "audio_cpc_online": AUDIO + TINY_TASK + ["objective.online_probe=true"],
    "audio_cpc_pruned": AUDIO + TINY_TASK + ["objective.pruned_competitor=true", "objective.prune_ratio=0.5"],
    "audio_cpc_queue": AUDIO + ["objective.predictor.steps=6", "objective.loss.negatives=queue",
                                "objective.loss.num_negatives=8", "objective.loss.queue=64"],
    "audio_simclr": AUDIO + ["objective.name=simclr"] + HEAD,
    "audio_moco": AUDIO + ["objective.name=moco"] + HEAD + ["objective.queue=32"],
    "audio_sdclr": AUDIO + ["objective.name=sdclr"] + HEAD, "audio_supervised": AUDIO + ["objective.name=supervised"],
    "speech_cpc_phones": SPEECH + TINY_TASK + ["objective.online_probe=true", "objective.online_phones=true",
                                               "data.batching=speaker"],
    "speech_protonet": SPEECH + ["objective.name=protonet"] + META,
    "speech_matching": SPEECH + ["objective.name=matching"] + META + ["objective.fce=true"],
    "speech_maml": SPEECH + ["objective.name=maml"] + META + ["objective.inner_steps=2", "objective.eval_inner_steps=2"],
    "image_cpc": IMAGE + FIRST, "image_cpc_pruned": IMAGE + FIRST + ["objective.pruned_competitor=true"],
    "image_simclr": IMAGE + ["objective.name=simclr"] + HEAD,
    "image_moco": IMAGE + ["objective.name=moco"] + HEAD + ["objective.queue=32"],
    "image_sdclr": IMAGE + ["objective.name=sdclr"] + HEAD,
    "image_rotation": IMAGE + ["objective.name=rotation", "objective.hidden=16"],
    "image_jigsaw": IMAGE + ["objective.name=jigsaw", "model.augment.flip=false", "objective.hidden=16",
                             "objective.permutations=6", "objective.cells=2"],
    "classes_protonet": IMAGE + ["objective.name=protonet"] + META,
    "classes_matching": IMAGE + ["objective.name=matching"] + META,
    "classes_maml": IMAGE + ["objective.name=maml"] + META + ["objective.inner_steps=2", "objective.eval_inner_steps=2"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("same_weights")
    return {"speech": [f"data.manifest={toy_speech_corpus(tmp / 'speech')}"],
            "image": [f"data.images={toy_image_store(tmp / 'stripes')}"],
            "classes": [f"data.images={toy_class_store(tmp / 'classes')}"], "audio": []}


def test_every_case_has_a_fingerprint():
    assert set(CASES) == set(SAVED)


@pytest.mark.parametrize("case", list(CASES))
def test_the_weights_are_those_of_the_previous_form(case, data, tmp_path):
    pretrain(load_config(None, [*CASES[case], *data[case.split("_")[0]], *RUN, f"train.out_dir={tmp_path}"]))
    state = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["model"]
    saved = SAVED[case]["tensors"]
    assert sorted(state) == sorted(saved)
    for name, tensor in state.items():
        t = tensor.double()
        torch.testing.assert_close(torch.tensor([t.sum().item(), t.square().sum().item()], dtype=torch.float64),
                                   torch.tensor(saved[name], dtype=torch.float64), rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"{case}: {name}: {m}")
