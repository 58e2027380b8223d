"""Fault-injection tests: a real server killed, cut off, flooded and fed garbage."""
