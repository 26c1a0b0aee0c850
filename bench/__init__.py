"""bench: a benchmarking and evaluation harness for text-embedding models.

The data path runs one way: task data -> encoder -> embedding cache -> transforms
(truncate, quantize) -> exact search -> metrics -> result rows -> tables and plots.
"""

__version__ = "0.1.0"
