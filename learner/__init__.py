"""The learner: episodes from the replay buffer become training examples (labels on the
assistant's own tokens only), packed or grouped by their shared tool-schema prefix, and a
DeepSpeed engine fine-tunes the policy on them and publishes new weights to the explorers.

Imports `replay/` and third-party libraries only, never `actors/`: weights travel the other way,
through the launcher.
"""
