# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[tflite,openvino,coreml,report,dev]"
	touch $@

.PHONY: install demo test fuzz check
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/edgeresnet compress --target tflite-int8

# The gates CI runs before the tests: lint, format, types, and the import contract (layers
# point down; bench and report need no torch), all configured in pyproject.toml.
check: $(BIN)/.installed
	$(BIN)/ruff check edgeresnet
	$(BIN)/ruff format --check edgeresnet
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# One worker per core (at most 4), each test file's tests in one worker so that its module
# fixtures are built once: on 2 cores the suite took 13:21 instead of 18:01 in one process.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

# The recipe and manifest readers against 10,000 generated inputs each (a few minutes).
fuzz: $(BIN)/.installed
	EDGERESNET_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q -m fuzz -p no:cacheprovider
