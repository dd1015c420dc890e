# Two commands for a newcomer: `make run` (serve the app) and `make test` (every test).
VENV   ?= .venv
PY     := $(VENV)/bin/python
FLASK  := $(VENV)/bin/flask --app app
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test lint format clean

$(VENV)/.runtime: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt node_modules/.installed
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# axe-core for the browser tests' accessibility check (package-lock.json pins it).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## Migrate, seed demo data on an empty database, serve on http://127.0.0.1:5000
## (gunicorn, threaded workers: deploy/gunicorn.conf.py)
run: $(VENV)/.runtime
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(VENV)/bin/gunicorn -c deploy/gunicorn.conf.py --bind $(HOST):$(PORT) 'app:create_app()'

## Lint, then the whole test suite (SQLite; set DATABASE_URL for PostgreSQL)
test: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts node_modules
