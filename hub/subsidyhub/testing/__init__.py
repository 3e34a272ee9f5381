"""Helpers shared by the test suite and the benchmarks: real components, started throwaway."""
