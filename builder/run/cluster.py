"""Several machines writing one dataset: every process must see the folder the main process prepared.

On a cluster the output folder must be shared (NFS, Lustre, ...) and mounted at the same path everywhere. If a
node sees a local folder instead, its processes would write their shards where nobody reads them and the main
process would wait for them for ever; so after the main process has written manifest.json and a fresh run token,
every process reports what it sees, and all of them stop with the same error unless everyone saw the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket

from builder.contract.errors import UsageError
from builder.contract.settings import Manifest
from builder.store.output import OutputStore


def mark_run(store: OutputStore) -> None:
    """Main process, after `store.prepare`: a token no earlier run or other folder can hold."""
    store.write_run_token(secrets.token_hex(16))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def observe(store: OutputStore, rank: int, manifest: Manifest) -> dict:
    """What this process sees of the prepared folder (None for a missing file), and what its own job is made of
    (`manifest` less library versions: settings, input hashes, model), so nodes with other inputs are caught."""
    seen = store.manifest_bytes()
    job = {key: value for key, value in manifest.to_json().items() if key != "versions"}
    return {"rank": rank, "host": socket.gethostname(), "node": os.environ.get("GROUP_RANK", "?"),
            "folder": store.folder.location,
            "manifest": _digest(seen) if seen is not None else None,
            "token": store.run_token(),
            "job": _digest(json.dumps(job, sort_keys=True).encode())}


def _view_problem(seen: dict, main: dict) -> str | None:
    if seen["manifest"] is None:
        return f"cannot see the output folder rank 0 prepared: {seen['folder']}/manifest.json does not exist there"
    if (seen["manifest"], seen["token"]) != (main["manifest"], main["token"]):
        return (f"cannot see the output folder rank 0 prepared: {seen['folder']} holds another run's manifest.json "
                "(a different folder, not the shared one)")
    if seen["job"] != main["job"]:
        return ("has other inputs, settings or depth model than rank 0 (their hashes differ): every machine must "
                "read the same --bg-dir/--fg-dir files and model with the same options")
    return None


def shared_folder_problems(observations: list[dict]) -> list[str]:
    """Pure: one line per process whose view differs from the main process's (observations[0])."""
    main = observations[0]
    problems = [f"rank {seen['rank']} on {seen['host']} (node {seen['node']}) {problem}"
                for seen in observations[1:] if (problem := _view_problem(seen, main))]
    if any("cannot see the output folder" in problem for problem in problems):
        problems.append(f"the output folder must be one shared folder (NFS, Lustre, ...) mounted at the same path "
                        f"on every machine: {main['folder']} on {main['host']}; pass that path as --output-dir on "
                        "every node")
    return problems


def check_shared_output(store: OutputStore, manifest: Manifest, rank: int, world_size: int) -> None:
    """Every process, after the barrier that follows `mark_run`: raise UsageError on all of them, together,
    when any one sees a different folder (a collective call, so nobody is left waiting)."""
    if world_size < 2:
        return
    import torch.distributed as dist

    observations = [None] * world_size
    dist.all_gather_object(observations, observe(store, rank, manifest))
    problems = shared_folder_problems(observations)
    if problems:
        raise UsageError(problems)
