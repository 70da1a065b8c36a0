# Shortcuts for the entry points in bin/. The README's two commands are
# bin/dev-up and bin/test; these targets run parts of them.
.PHONY: dev-up dev-down dev-status test lint unit molecule image vault-dev

dev-up:          ## Bring the dev stack up on local podman hosts
	bin/dev-up

dev-down:        ## Remove the dev stack's containers and network
	scripts/dev-down.sh

dev-status:      ## Show what runs where in the dev stack
	.venv/bin/python scripts/dev_status.py inventory/dev

test:            ## The whole suite (what CI runs)
	bin/test

lint:            ## yamllint, ansible-lint, ruff, mypy --strict
	bin/test lint

unit:            ## pytest: unit tests and the ETL suite against a real PostgreSQL
	bin/test unit

molecule:        ## One or more scenarios: make molecule S="common postgresql"
	bin/test molecule $(S)

image:           ## Rebuild the base image even if its recipe did not change
	scripts/build-image.sh --force

vault-dev:       ## Add keys missing from the dev vault (see inventory/secret-keys.yml)
	.venv/bin/python scripts/vault-init.py dev
