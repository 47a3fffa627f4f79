"""Training: the engine-free rounds API, the epoch / checkpoint / validation loop and early stopping."""
