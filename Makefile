# The README's commands. `make run` and `make test` each set up .venv first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean install

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# `make run` accepts the public demo key: it listens on this machine only (HOST=0.0.0.0 to share it).
run: $(BIN)/.installed  ## serve http://localhost:8080 from the built-in Bedrock emulator
	exec env SWIFTCHAT_EMULATOR=1 HOST=$(or $(HOST),127.0.0.1) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(BIN)/.installed  ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BIN)/.installed  ## concurrent streams through one worker vs. straight to the emulator
	$(BIN)/python bench/streams.py

install:  ## production install on this host, as root: user, /opt/swiftchat-api, systemd unit (deploy/install.sh)
	deploy/install.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
