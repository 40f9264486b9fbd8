"""Benchmarks that print JSON: measured figures and the baseline they are compared with, in one run.

Never assert on timings here or in tests: benchmarks report, CI does not gate on machine speed.
"""
