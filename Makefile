# The two commands of the README: `make run` and `make test`.
.PHONY: run test bootstrap lint types pytest audit

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

# pip-audit against uv.lock; needs PyPI's JSON API or OSV, so it is not part of `make test`
audit: bootstrap
	scripts/dependency_audit.py
