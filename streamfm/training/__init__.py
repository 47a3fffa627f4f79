"""Training: the engine-free rounds API, the loop (epochs, checkpoints, validation, early stopping),
its callbacks, the local engine, and a run's set-up. Nothing here imports an engine or the API layer."""
