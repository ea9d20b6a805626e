"""The dataset folder: its format and the one way in. Shard and marker names, atomic writes, checksums, the
manifest, locks, temp-file hygiene, rank files, the finish's files, and reading shards back (a folder, an export
or a Hub repo) all live here; nothing outside this wing opens a shard, takes a lock or renames a file.

Imports contract/ and rows/ (a done marker carries `rows.stats.ImageStats`); run/, verify/, publish/, train/ and
the scripts import it. `local.LocalFolder` is the one storage today (docs/design.md, "The store")."""
