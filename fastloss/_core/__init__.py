"""The internals every loss family builds on: the table of losses (``table``), the seam to
the backends' kernels (``backends``), the JIT factory (``jit``), validation, layout,
reductions, the batch algebra of streaming and Dask (``batch``), criterion classes, scalar
numerics, the elementwise driver, threads, warm-up, other libraries' arrays (``interop``)
and the type-stub generator (``stubs``)."""
