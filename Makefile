# The README's two commands. Both create the virtual environment .venv/ on
# first use (and again when pyproject.toml changes), installing the project
# into it with its dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test clean

# Build the course site into _build/html: export, checkpoints, every chapter executed.
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

# Run the test suite (including the small test books; a few seconds each) on every core,
# and list the slowest 15 tests at the end. --dist loadgroup keeps the tests that share
# something built (a chapter's NBGrader release, the graded class, a small book, the site
# when $TINYTORCH_SITE names none) in one worker, so the other never waits for it (tests/conftest.py).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadgroup --durations=15

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

clean:
	rm -rf _build
