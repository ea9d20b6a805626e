"""The definitions every other wing shares, and nothing that does work: the data contract (configs, columns,
image formats), the sample space and its streams, the typed settings validated once, depth kinds and depth
storage, placement and augmentation field names, the errors with their exit codes and the command line they map to.

Modules: schema, plan, settings, cli, errors, depth_kinds,
depth_storage, given_depth, placement_fields, augment_fields, repo_id.

May import: nothing from builder (a leaf: torch, datasets and Pillow stay out, so worker processes can import it).
Must not be imported by: none; every wing may import it."""
