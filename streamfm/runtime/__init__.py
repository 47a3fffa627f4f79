"""Runtime pieces the pipeline runs on: read-ahead in a background thread and the graceful stop on signals."""
