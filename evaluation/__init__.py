"""Evaluation: how well a policy uses tools, measured the way STE and ToolLLM measure it.

`builtin` runs a policy and a search strategy over the built-in gold sets and keeps one `QueryRecord`
per query; `metrics` turns records into STE's call metrics and ToolEval's pass rate; `judges` holds
the answer judges and the pairwise win rate; `bfcl` scores one-call eval sets in the Berkeley
Function Calling Leaderboard layout; `report` writes JSON and markdown; `cli` is `imaginarium eval`.
"""
