# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Patron needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The CDNOW purchase history ships inside this wheel; its own dependencies are not needed to read the file.
	$(BIN)/pip install --quiet --no-deps lifetimes==0.11.3
	touch $(STAMP)

install: $(STAMP)

## Starts Patron on SQLite with the demo program and the real CDNOW purchase history: http://127.0.0.1:8000/docs
demo: $(STAMP)
	$(BIN)/patron demo

## Runs the whole test suite on SQLite and PostgreSQL, with the linters.
test: $(STAMP) lint
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache patron-demo.db*
