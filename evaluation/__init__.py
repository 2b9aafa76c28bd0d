"""Evaluation: how well a policy uses tools, measured the way STE and ToolLLM measure it.

`builtin` runs a policy and a search strategy over gold sets (the built-in ones, or an eval set of your
own tools read by `evalset`) and keeps one `QueryRecord` per query; `metrics` turns records into STE's
call metrics and ToolEval's pass rate, and `execution` adds execution match (the calls run, results
compared); `judges` holds the answer judges and the pairwise win rate; `bfcl` scores one-call eval sets
in the Berkeley Function Calling Leaderboard layout; `report` writes JSON and markdown; `cli` is
`imaginarium eval` and `imaginarium evalset draft`.
"""
