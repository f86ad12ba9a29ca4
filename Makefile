# The two Quick-start commands: `make run` and `make test`. Both do their own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests drive as real peers over loopback.
TEST_PEERS := sip-tester baresip sipvicious chromium
PEER_BINARIES := sipp baresip svwar chromium

.PHONY: run test lint bench peers clean

$(STAMP): pyproject.toml src/outbound_pro/rtp/_fastpath.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/outbound-pro serve $(ARGS)

peers:
	@missing=0; for b in $(PEER_BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
		echo "installing test peers: $(TEST_PEERS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PEERS); \
	fi

test: $(STAMP) peers
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
