"""Which storage holds a folder, from its location: the one place that picks an implementation. Every location is
a local (or shared: NFS, Lustre) filesystem path today; an object store's URL scheme (s3://, gs://, hf://) is
dispatched here to its own module (docs/design.md, "The store")."""

from __future__ import annotations

import os

from builder.store.local import LocalFolder


def open_folder(location: str | os.PathLike) -> LocalFolder:
    return LocalFolder(location)
