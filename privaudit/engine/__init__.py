"""Execution machinery shared by all attacks: the resumable run store, the cache, batching."""
