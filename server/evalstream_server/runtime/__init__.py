"""Device selection, model loading and batching: the parts that touch accelerators."""
