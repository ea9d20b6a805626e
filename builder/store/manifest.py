"""manifest.json and its side file. A dataset made from many inputs keeps their records (name, sha256, size,
category, ...) in INPUTS_NAME beside manifest.json, which names that file with its sha256 and the counts, so the
manifest stays small to read, compare and copy; up to INLINE_RECORDS records stay inline, as they always were (so
the manifests of small datasets are unchanged). A resume compares the records themselves: exact either way."""

from __future__ import annotations

import hashlib
import json

from builder.contract.errors import UsageError
from builder.contract.settings import Manifest
from builder.store.local import LocalFolder
from builder.store.names import INPUTS_NAME, MANIFEST_NAME

INLINE_RECORDS = 1000  # input records (backgrounds, cut-outs, depth maps) kept inline in manifest.json, at most


def has_side_file(manifest: Manifest) -> bool:
    """Whether the manifest's input records go to INPUTS_NAME: more than INLINE_RECORDS of them."""
    return len(manifest.backgrounds) + len(manifest.foregrounds) + len(manifest.bg_depths or ()) > INLINE_RECORDS


def manifest_names(manifest: Manifest) -> tuple[str, ...]:
    """The files that hold the manifest: manifest.json, and its side file when it has one."""
    return (MANIFEST_NAME, INPUTS_NAME) if has_side_file(manifest) else (MANIFEST_NAME,)


def manifest_documents(manifest: Manifest) -> tuple[dict, bytes | None]:
    """(manifest.json's content, INPUTS_NAME's bytes or None): the manifest's `inputs` go to the side file when
    it has one (`has_side_file`)."""
    data = manifest.to_json()
    inputs = data["inputs"]
    if not has_side_file(manifest):
        return data, None
    side = (json.dumps(inputs, sort_keys=True, separators=(",", ":")) + "\n").encode()
    counts = {role: len(inputs[role]) for role in ("backgrounds", "foregrounds", "bg_depths") if role in inputs}
    return {**data, "inputs": {"file": INPUTS_NAME, "sha256": hashlib.sha256(side).hexdigest(), **counts}}, side


def manifest_from_documents(data: dict, folder: LocalFolder, where: str = MANIFEST_NAME) -> Manifest:
    """The manifest of manifest.json's content, its input records read from the side file it names in `folder`
    (its sha256 checked): UsageError when that file is missing or was changed."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict) or "file" not in inputs:
        return Manifest.from_json(data)
    name = inputs["file"]
    if name != INPUTS_NAME:
        raise UsageError([f"{where} keeps its input records in {name!r}, not {INPUTS_NAME}: not this version's layout"])
    try:
        side = folder.read_bytes(name)
    except FileNotFoundError:
        raise UsageError([f"{name} is missing beside {where}: it holds the records of the dataset's inputs; restore "
                          "it from where the dataset came from, or regenerate the dataset"]) from None
    if hashlib.sha256(side).hexdigest() != inputs["sha256"]:
        raise UsageError([f"{name} differs from the sha256 {where} records for it ({inputs['sha256'][:12]}...): it "
                          "was changed after the dataset was made; restore it, or regenerate the dataset"])
    return Manifest.from_json({**data, "inputs": json.loads(side)})


def read_manifest(folder: LocalFolder, name: str = MANIFEST_NAME) -> Manifest:
    """The manifest in `folder` (`name`: a manifest.json of another name, given with verify's --manifest), with the
    input records of its side file when it has one."""
    return manifest_from_documents(json.loads(folder.read_bytes(name)), folder, str(folder.path(name)))


def write_manifest(folder: LocalFolder, manifest: Manifest) -> None:
    """manifest.json, after its side file when it has one (so the manifest never names a file not there); each
    written atomically."""
    data, side = manifest_documents(manifest)
    if side is not None:
        folder.write_atomic(INPUTS_NAME, side)
    folder.write_json(MANIFEST_NAME, data)
