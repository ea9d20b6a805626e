"""Where each file of a dataset folder lives, relative to the folder: a generator's output and its Parquet export.
Shard and done-marker file names come from `builder.contract.plan.ShardName`; every other name is here."""

from __future__ import annotations

import json
import re

from builder.contract.plan import ShardName

DATA_DIR = "data"
IMAGES_DIR = "images"
CARD_NAME = "README.md"
STATS_NAME = "stats.json"
MANIFEST_NAME = "manifest.json"
INPUTS_NAME = "inputs.json"  # the manifest's side file: its input records, past 1,000 (builder/store/manifest.py)
CHECKSUMS_NAME = "checksums.json"  # an export's files with their sha256 (builder/publish/export.py writes it)
STATE_DIR = ".fgbg"  # hidden: datasets ignores it when resolving data files
DONE_DIR = f"{STATE_DIR}/done"  # each finished shard's DoneMarker
TMP_DIR = f"{STATE_DIR}/tmp"  # shards being written
RANKS_DIR = f"{STATE_DIR}/ranks"  # each rank's liveness files (builder/store/ranks.py)
TASKS_DIR = f"{STATE_DIR}/tasks"  # each independent task's lock, TASKS_DIR/<task_lock_name>.lock
CLAIMS_DIR = f"{STATE_DIR}/claims"  # the claim of a shard any process may write (ShardStore.claim)
FOLDER_LOCK = f"{STATE_DIR}/lock"
PREPARE_LOCK = f"{STATE_DIR}/prepare.lock"
RUN_TOKEN = f"{STATE_DIR}/run-token"  # a fresh token per run: every node checks it sees this run's folder
HUB_DIR = f"{STATE_DIR}/hub"  # the Parquet export a push stages
HUB_RECORD = f"{STATE_DIR}/hub.json"  # what that export was made from
TMP_SUFFIX = ".tmp"
GENERATED_NAMES = (DATA_DIR, STATE_DIR, IMAGES_DIR, CARD_NAME, STATS_NAME, MANIFEST_NAME, INPUTS_NAME)
EXPORT_NAMES = (CARD_NAME, MANIFEST_NAME, INPUTS_NAME, CHECKSUMS_NAME, STATS_NAME, DATA_DIR, IMAGES_DIR)
TASK_LOCK_NAME = re.compile(r"task-(\d+)-of-(\d+)")


def task_lock_name(rank: int, world_size: int) -> str:
    """An independent task's lock name (TASK_LOCK_NAME reads it back)."""
    return f"task-{rank}-of-{world_size}"


def task_lock(slot: str) -> str:
    return f"{TASKS_DIR}/{slot}.lock"


def marker_path(name: ShardName) -> str:
    return f"{DONE_DIR}/{name.marker_name}"


def claim_lock(name: ShardName) -> str:
    return f"{CLAIMS_DIR}/{name.config_name}-{name.file_name()}.lock"


def config_dir(config_name: str) -> str:
    return f"{DATA_DIR}/{config_name}"


def grid_path(kind: str) -> str:
    return f"{IMAGES_DIR}/{kind}.png"


def shard_temp_prefix(name: ShardName) -> str:
    """Where a shard is written before its rename, less the process id: one name per shard and process."""
    return f"{TMP_DIR}/{name.config_name}-{name.file_name()}."


def temp_name(relative: str, pid: int) -> str:
    """The temp file beside `relative` that an atomic write of it goes through."""
    folder, _, name = relative.rpartition("/")
    temp = f".{name}.{pid}{TMP_SUFFIX}"
    return f"{folder}/{temp}" if folder else temp


def is_temp(name: str) -> bool:
    return name.endswith(TMP_SUFFIX)


def is_generated(name: str) -> bool:
    """One of the names a generation writes into its folder, or the temp file of one (a task writing the
    manifest while another one looks)."""
    return name in GENERATED_NAMES or (name.startswith(".") and is_temp(name)
                                       and name[1:].rsplit(".", 2)[0] in GENERATED_NAMES)


def json_bytes(data) -> bytes:
    """How every JSON file of the folder is written (markers, stats.json, checksums.json, manifest.json)."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
