# The two commands of the README: `make run` and `make test`.
.PHONY: run test bootstrap lint types pytest

run: bootstrap
	.venv/bin/raxx-queue dev

test: bootstrap lint types pytest

bootstrap:
	@scripts/bootstrap.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

types:
	.venv/bin/mypy

pytest:
	.venv/bin/pytest
