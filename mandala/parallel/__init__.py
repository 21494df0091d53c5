"""Running many op calls at once, on Dask or a process pool (issue 6)."""
