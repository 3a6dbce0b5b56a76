"""Preprocessing, parity comparison and (later) latency measurement, independent of any one backend."""
