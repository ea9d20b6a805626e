"""verify, part 0: every data file against the sha256 recorded when it was written. Row checks miss a flipped
byte that leaves the rows readable (a record batch's metadata, a Parquet page header); this catches it, and
costs one read of each file (seconds per GB), so it runs first in a full pass and alone with --checksums.

Generator output: each Arrow shard's done marker holds its sha256 (computed as the bytes went to the temp file).
An export: checksums.json lists every file of the folder with its bytes and sha256.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from builder.store.local import LocalFolder
from builder.store.names import CHECKSUMS_NAME
from builder.verify.layout import Layout, Problems


def recorded_checksums(folder: LocalFolder, layout: Layout) -> tuple[dict[str, dict], Problems]:
    """Relative path -> {"bytes", "sha256"} as recorded at write time, and the files without a record.
    Arrow shards need `marker_problems` to have attached their done markers first."""
    if layout.generated:
        recorded, problems = {}, []
        for shard in (s for shards in layout.shards.values() for s in shards if s.marker is not None):
            if shard.marker.sha256 is not None:
                recorded[shard.relative] = {"bytes": shard.marker.file_bytes, "sha256": shard.marker.sha256}
            else:
                problems.append((shard.relative, ("its done marker has no sha256 (written by a version that did not "
                                                  "record checksums): regenerate with --overwrite to get one")))
        return recorded, problems
    if not folder.is_file(CHECKSUMS_NAME):
        return {}, [(CHECKSUMS_NAME, ("missing: the export records every file's sha256 there; export again with "
                                      "scripts/push_to_hub.py --export-only"))]
    recorded = {entry["path"]: entry for entry in json.loads(folder.read_bytes(CHECKSUMS_NAME))["files"]}
    unlisted = [(s.relative, f"not listed in {CHECKSUMS_NAME}") for shards in layout.shards.values()
                for s in shards if s.relative not in recorded]
    return recorded, unlisted


def checksum_problems(folder: LocalFolder, recorded: dict[str, dict], workers: int = 1) -> Problems:
    """Each recorded file present, of the recorded size, with the recorded sha256 (files hashed in parallel)."""
    present, problems = [], []
    for relative in recorded:
        if folder.is_file(relative):
            present.append(relative)
        else:
            problems.append((relative, "missing (listed with a checksum)"))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        hashes = dict(zip(present, pool.map(folder.sha256, present)))
    for relative in present:
        want, size = recorded[relative], folder.size(relative)
        if want.get("bytes") is not None and size != want["bytes"]:
            problems.append((relative, f"is {size} bytes, {want['bytes']} were written"))
        elif hashes[relative] != want["sha256"]:
            problems.append((relative, (f"sha256 {hashes[relative]} differs from the {want['sha256']} recorded when "
                                        "it was written: the file changed on disk (corruption or an edit); for "
                                        "generator output delete the shard and its done marker and rerun the same "
                                        "command, for an export export again")))
    return problems
