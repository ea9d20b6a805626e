"""The dataset folder: its format and the one way in. Shard and marker names, atomic writes, checksums, the
manifest, locks, temp-file hygiene, rank files, the finish's files, and reading shards back (a folder, an export
or a Hub repo) all live here; nothing outside this wing opens a shard, takes a lock or renames a file.
`local.LocalFolder` is the one storage today (docs/design.md, "The store").

Modules: names, storage, local, locks, formats, shards, output, marker, ranks, manifest, setup, reader, hub.

May import: contract, rows (a done marker carries `rows.stats.ImageStats`).
Must not be imported by: contract, rows."""
