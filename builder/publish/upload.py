"""Sending an export to the Hub: `create_repo` + `HfApi.upload_folder` (which skips files the Hub already has and
resumes an interrupted upload), then the Hub's hashes compared with the export's checksums."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from builder.contract.errors import FgbgError, RemoteError
from builder.store.local import LocalFolder
from builder.store.storage import open_folder
from builder.store.names import CHECKSUMS_NAME

REPLACED_ON_PUSH = ["data/**", "images/**"]  # remote files a push replaces, so no stale shard survives


def upload(folder: Path, repo_id: str, token: str, private: bool = False, revision: str | None = None,
           log: Callable[[str], None] = print):
    """Create the dataset repo (and branch) if needed, then upload the folder. upload_folder skips files the
    Hub already has and, with hf_xet, commits big folders in parts and resumes where it stopped; old data
    files and grids that the new export does not contain are deleted in the same commit. Hub and network
    failures become a RemoteError saying what to do."""
    try:
        return _upload(folder, repo_id, token, private, revision, log)
    except Exception as err:  # noqa: BLE001 - HTTP errors from huggingface_hub, reported without a traceback
        raise remote_error(err, repo_id) from err


def remote_error(err: Exception, repo_id: str) -> Exception:
    """A RemoteError for an HTTP or network failure (exit 2 for access, 1 for retryable); else `err` itself."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    cause = err
    while cause is not None and not isinstance(cause, HfHubHTTPError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        if _is_network_error(err):
            return RemoteError(f"cannot reach {constants.ENDPOINT}: {err}\n"
                               "check the network and rerun; files already on the Hub are not sent again", 1)
        return err
    status = cause.response.status_code if cause.response is not None else None
    first_line = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())[:300]
    if status in (401, 403):
        return RemoteError(f"no write access to dataset {repo_id} (HTTP {status}): use a token with write "
                           f"permission on that namespace (HF_TOKEN, `hf auth login` or --token). Server said: "
                           f"{first_line}", 2)
    if status == 404:
        return RemoteError(f"dataset {repo_id} or branch not found (HTTP 404). Server said: {first_line}", 2)
    return RemoteError(f"the upload failed (HTTP {status}): {first_line}\n"
                       "rerun the same command to resume; files already on the Hub are not sent again", 1)


def _is_network_error(err: BaseException | None) -> bool:
    """Connection failures of the HTTP client huggingface_hub uses (httpx, or requests in older versions)."""
    while err is not None:
        if isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore",
                                                                              "requests", "urllib3"):
            return True
        err = err.__cause__ or err.__context__
    return False


def _upload(folder: Path, repo_id: str, token: str, private: bool, revision: str | None,
            log: Callable[[str], None]):
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    log(f"uploading {folder} to {url}" + (f" (branch {revision})" if revision else ""))
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, revision=revision,
                             delete_patterns=REPLACED_ON_PUSH, commit_message="Publish fgbg-depth dataset")
    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, recursive=True, repo_type="dataset",
                                                                revision=revision)}
    recorded = json.loads(open_folder(folder).read_bytes(CHECKSUMS_NAME))["files"]
    mismatches = remote_mismatches(folder, recorded, remote)
    if mismatches:
        raise FgbgError(f"the Hub's copy of {len(mismatches)} file(s) of {repo_id} differs from the export:\n"
                        + "\n".join(f"  - {m}" for m in mismatches)
                        + "\nrerun the same command: it uploads the files whose content the Hub does not have")
    log(f"checked: the Hub's {len(recorded)} files match the export's checksums")
    return info


def git_blob_id(folder: LocalFolder, relative: str) -> str:
    """The git object id of a file stored in git itself (not LFS): sha1 of "blob <size>\\0" and the content."""
    digest = hashlib.sha1(b"blob %d\0" % folder.size(relative))
    for chunk in folder.chunks(relative):
        digest.update(chunk)
    return digest.hexdigest()


def remote_mismatches(folder: Path, recorded: list[dict], remote: dict) -> list[str]:
    """Files of the export whose copy on the Hub (`remote`: path -> RepoFile of list_repo_tree) is missing or has
    another hash: the LFS sha256 the Hub reports against the one recorded at export, or for a small file kept in
    git, its blob id against the local file's."""
    problems, local = [], open_folder(folder)
    for entry in recorded:
        path, found = entry["path"], remote.get(entry["path"])
        if found is None or not hasattr(found, "blob_id"):
            problems.append(f"{path}: not on the Hub after the upload")
        elif found.lfs is not None and found.lfs.sha256 != entry["sha256"]:
            problems.append(f"{path}: the Hub reports sha256 {found.lfs.sha256}, the export wrote {entry['sha256']}")
        elif found.lfs is None and found.blob_id != git_blob_id(local, path):
            problems.append(f"{path}: the Hub's git blob id {found.blob_id} is not the local file's")
    return problems
