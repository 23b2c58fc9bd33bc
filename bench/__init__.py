"""Benchmarks of scim-bridge; each prints its figures (see docs/benchmarks.md)."""
