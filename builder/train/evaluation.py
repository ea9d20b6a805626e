"""Score a network, or another dataset's labels, against a dataset's masks and depth labels.

Depth is scored on the model's raw disparity labels (`depth="raw"`), where a larger value is nearer and the
value is positive: AbsRel divides by it. Each rank scores its share of the rows (`torch_dataset` splits them)
and returns sums; the caller merges the sums across ranks."""

from __future__ import annotations

import torch

from builder.train.loader import torch_dataset
from builder.train.metrics import MetricSums, depth_errors, mask_iou

MODEL_INPUTS = ["bg", "fg_bg", "mask", "depth"]


def _loader(dataset, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)


def add_batch(sums: MetricSums, mask_logits: torch.Tensor, disparity: torch.Tensor | None, batch: dict) -> None:
    sums.add_rows(len(batch["mask"]))
    sums.add("mask_iou", mask_iou(mask_logits, batch["mask"]))
    if disparity is not None and "depth" in batch:
        absrel, delta1 = depth_errors(disparity, batch["depth"])
        sums.add("depth_absrel", absrel)
        sums.add("depth_delta1", delta1)


@torch.no_grad()
def score_model(model: torch.nn.Module, dataset_path: str, split: str, device: torch.device, batch_size: int = 32,
                workers: int = 0, rank: int | None = None, world_size: int | None = None) -> MetricSums:
    """This rank's metric sums of `model` on `split` (the model must be in eval mode)."""
    dataset = torch_dataset(dataset_path, split, depth="raw", columns=MODEL_INPUTS, rank=rank,
                            world_size=world_size)
    sums = MetricSums(device)
    for batch in _loader(dataset, batch_size, workers):
        batch = {name: value.to(device) for name, value in batch.items()}
        mask_logits, disparity = model(batch["bg"], batch["fg_bg"])
        add_batch(sums, mask_logits.float(), disparity.float(), batch)
    return sums


def score_labels(predicted_path: str, reference_path: str, split: str, batch_size: int = 32) -> MetricSums:
    """The masks and depth labels of one dataset scored against another's, row by row on `sample_id`: e.g.
    model depth against ground-truth disparity for the same scenes. Both must hold the same sample_ids."""
    reference = {}
    for batch in _loader(torch_dataset(reference_path, split, depth="raw", columns=["sample_id", "mask", "depth"]),
                         batch_size, 0):
        reference.update({int(i): (mask, depth) for i, mask, depth in
                          zip(batch["sample_id"], batch["mask"], batch["depth"])})
    sums, seen = MetricSums(), set()
    for batch in _loader(torch_dataset(predicted_path, split, depth="raw", columns=["sample_id", "mask", "depth"]),
                         batch_size, 0):
        ids = [int(i) for i in batch["sample_id"]]
        missing = [i for i in ids if i not in reference]
        if missing:
            raise ValueError(f"sample_id {missing[:5]} of {predicted_path} ({split}) are not in {reference_path}: "
                             "compare two datasets made from the same inputs, placements and seed")
        seen.update(ids)
        truth = {"mask": torch.stack([reference[i][0] for i in ids]),
                 "depth": torch.stack([reference[i][1] for i in ids])}
        add_batch(sums, batch["mask"] - 0.5, batch["depth"], truth)
    if len(seen) != len(reference):
        raise ValueError(f"{reference_path} ({split}) has {len(reference) - len(seen)} rows that {predicted_path} "
                         "lacks: compare two datasets with the same sample_ids")
    return sums
