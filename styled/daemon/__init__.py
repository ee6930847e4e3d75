"""The daemon: the spool, its jobs' state, the main loop, workers and the Dask dispatch (docs/daemon.md)."""
