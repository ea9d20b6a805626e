"""Using the data: the training loader (`(bg, fg_bg) -> (mask, depth)` tensors), the reference network, its
losses, metrics, evaluation, checkpoints and trainer, and the data-value study that trains on each option.

Modules: loader, config, model, losses, metrics, evaluation, checkpoint, trainer, data_value.

May import: contract, rows, store, run, verify, publish.
Must not be imported by: contract, rows, store, run, verify, publish."""
