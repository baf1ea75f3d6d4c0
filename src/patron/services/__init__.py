"""Use cases: one function each, every write one atomic transaction."""
