"""Discrete units: k-means clusters of frame features (seqcpc.eval.kmeans) scored against phone alignments.

Shapes: F frames, D feature dim, K units, P phones.

  phone purity    share of frames whose unit's most frequent phone is their phone (E_unit max_phone p(phone|unit))
  cluster purity  share of frames whose phone's most frequent unit is their unit (E_phone max_unit p(unit|phone))
  PNMI            I(phone; unit) / H(phone): the phone-normalised mutual information of HuBERT (Hsu et al. 2021)
All three come from one joint count matrix (P, K). seqcpc/audio/units.py makes units of speech and exports them.
"""
import numpy as np

from seqcpc.errors import DataError
from seqcpc.eval.kmeans import assign, fit_kmeans


def joint_counts(phones, units, num_phones: int | None = None, num_units: int | None = None) -> np.ndarray:
    """(P, K) int64: how many frames have each (phone, unit) pair."""
    phones, units = np.asarray(phones, dtype=np.int64), np.asarray(units, dtype=np.int64)
    if phones.shape != units.shape or phones.ndim != 1:
        raise ValueError(f"phones {phones.shape} and units {units.shape} must be 1-D and of one length")
    num_phones = int(phones.max(initial=-1)) + 1 if num_phones is None else num_phones
    num_units = int(units.max(initial=-1)) + 1 if num_units is None else num_units
    for name, y, n in (("phones", phones, num_phones), ("units", units, num_units)):
        if len(y) and (y.min() < 0 or y.max() >= n):
            raise ValueError(f"{name} has labels outside [0, {n})")
    pairs = np.bincount(phones * num_units + units, minlength=num_phones * num_units)
    return pairs.reshape(num_phones, num_units)


def unit_metrics(counts) -> dict:
    """{"phone_purity", "cluster_purity", "pnmi"} of a joint count matrix (P, K)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n == 0:
        raise DataError("no labelled frames to score the units on")
    joint = counts / n  # (P, K)
    p_phone, p_unit = joint.sum(1), joint.sum(0)  # (P,), (K,)
    seen = joint > 0
    mutual = float((joint[seen] * np.log(joint[seen] / np.outer(p_phone, p_unit)[seen])).sum())
    entropy = float(-(p_phone[p_phone > 0] * np.log(p_phone[p_phone > 0])).sum())
    if entropy == 0:
        raise DataError("every scored frame has the same phone: PNMI needs frames of at least two phones")
    return {"phone_purity": float(counts.max(0).sum() / n), "cluster_purity": float(counts.max(1).sum() / n),
            "pnmi": mutual / entropy}


def frame_unit_scores(fit: dict, score: dict, k: int = 50, seed: int = 0, num_phones: int | None = None,
                      log=None) -> dict:
    """{name: {"unit_purity", "unit_pnmi"}}: k-means fitted on the frames of fit[name] = (X (F, D), y (F,)),
    its units scored against the phones of score[name] (the same frames or others)."""
    results = {}
    for name, (x, _) in fit.items():
        units = assign(score[name][0], fit_kmeans(x, k, seed=seed, log=log).centroids)
        y = score[name][1]
        m = unit_metrics(joint_counts(y, units, num_phones or int(y.max()) + 1, k))
        results[name] = {"unit_purity": m["phone_purity"], "unit_pnmi": m["pnmi"]}
    return results
