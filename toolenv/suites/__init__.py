"""The built-in offline tools, a module per category, found by `toolenv.registry.discover`.

Each module exports `TOOLS: list[Tool]`; every spec sets its `category`, `suite` and `round` (1..4, the
continual-learning round that introduces it). Tools run in a worker thread, so a tool that keeps a
sqlite connection must open it per call (or with `check_same_thread=False`). A tool that runs code the
model wrote sets `Tool(..., isolate=True)` to run in a memory-limited subprocess instead.
"""
