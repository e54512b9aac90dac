"""Benchmarks of the emulator, each figure beside a floor measured in the same run.

.venv/bin/python -m bench [--out bench/results.json]
"""
