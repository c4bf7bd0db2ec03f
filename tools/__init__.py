"""Developer tools of the source tree: `make demo`, and the process kit the demo, the benchmarks
and the end-to-end tests share (`tools.kit`). Not part of the wheel."""
