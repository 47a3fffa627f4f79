"""Runtime pieces the pipeline runs on: read-ahead in a background thread, the graceful stop on signals
and the thread pools of the pipelined search and Hogwild training."""
