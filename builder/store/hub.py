"""A dataset repo on the Hub, read-only, with the reading methods of `LocalFolder` (paths relative to the repo):
files are streamed through `HfFileSystem` (ranged requests), small ones downloaded into the HF cache."""

from __future__ import annotations

from pathlib import Path

BLOCK_SIZE = 8 * 1024**2


class HubFolder:
    def __init__(self, repo_id: str, revision: str | None = None):
        self.repo_id, self.revision = repo_id, revision
        self.root = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")

    def path(self, relative: str = "") -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def _remote(self, relative: str) -> str:
        return f"datasets/{self.repo_id}/{relative}"

    @staticmethod
    def _fs():
        from huggingface_hub import HfFileSystem

        return HfFileSystem()

    def matching(self, pattern: str) -> list[str]:
        found = self._fs().glob(self._remote(pattern), revision=self.revision)
        return sorted(p.split("/", 3)[3] for p in found)  # less datasets/NAMESPACE/NAME[@revision]/

    def listdir(self, relative: str = "") -> list[str]:
        try:
            entries = self._fs().ls(self._remote(relative), detail=False, revision=self.revision)
        except FileNotFoundError:
            return []
        return sorted(entry.rsplit("/", 1)[-1] for entry in entries)

    def is_file(self, relative: str) -> bool:
        return self._fs().isfile(self._remote(relative), revision=self.revision)

    def open_input(self, relative: str):
        return self._fs().open(self._remote(relative), "rb", revision=self.revision, block_size=BLOCK_SIZE)

    def read_bytes(self, relative: str) -> bytes:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(self.repo_id, relative, repo_type="dataset", revision=self.revision)
        return Path(path).read_bytes()
