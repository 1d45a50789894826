"""Store: the run store, export to bundles, loading bundles, prediction, atomic writes."""
