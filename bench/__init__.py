"""libimchat's benchmark suite: our server against a raw pyzmq relay (and an IRC daemon).

Run it with ``python -m bench`` (``--quick``: under two minutes; ``--peers``:
also InspIRCd). See docs/BENCH.md for the method and the latest figures.
"""
