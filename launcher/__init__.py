"""The launcher: config, run folder, Ray and Redis, explorers, learner and evaluation wired together."""
import os

# Must precede the first `import ray` in the process: a local Ray then binds 127.0.0.1, not the public
# address (these machines allow loopback traffic only). Not inside a cluster job (RAY_ADDRESS is set
# there): the setting also makes Ray refuse multi-node clusters.
if "RAY_ADDRESS" not in os.environ:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
