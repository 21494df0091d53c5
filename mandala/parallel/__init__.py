"""Running many op calls at once, on Dask or a process pool: ``storage.parallel()``.

Modules, in the order a block uses them:

- ``batch``: the ``with storage.parallel(...)`` block; collects calls into a graph;
- ``pending``: the refs a call returns before it ran (:class:`~mandala.parallel.pending.PendingRef`);
- ``graph``: nodes of the graph, their states, the outputs a call will have;
- ``scheduler``: runs the graph when the block ends (claims, dispatch, recording);
- ``tasks``: what travels to a worker and what runs there;
- ``executors``: Dask ``Client`` and ``concurrent.futures`` adapters;
- ``leases``: the claims a block holds on the store, renewed while it runs.

Nothing here is imported by ``import mandala``; Dask and rich are imported only when used.
"""

__all__: list[str] = []
