# The README's two set-up commands are `make up` and `make test`; each creates .venv if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint install browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser test (quant_platform_tests/test_ui_browser.py) drives Debian's Chromium through Playwright;
# Playwright's own browser download is never used. Installed here when missing (root or sudo, apt-get).
CHROMIUM := /usr/bin/chromium
APT_ENV := DEBIAN_FRONTEND=noninteractive
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: $(CHROMIUM) is missing and apt-get is not available; install Debian's" \
			"'chromium' package (or a Chromium at $(CHROMIUM)) to run the browser test." >&2; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else \
		echo "make browser: installing Debian's chromium needs root (or sudo); run" \
			"'apt-get install -y chromium' as root." >&2; exit 1; fi; \
	echo "make browser: installing Debian's chromium for the browser test"; \
	$$SUDO env $(APT_ENV) apt-get install -y -q --no-install-recommends chromium \
		|| { $$SUDO env $(APT_ENV) apt-get update -q \
		&& $$SUDO env $(APT_ENV) apt-get install -y -q --no-install-recommends chromium; } \
		|| { echo "make browser: apt-get could not install chromium" >&2; exit 1; }; \
	test -x $(CHROMIUM) || { echo "make browser: $(CHROMIUM) still missing after apt-get" >&2; exit 1; }

up: $(STAMP)
	$(BIN)/quant-platform up

test: $(STAMP) browser
	$(BIN)/ruff check quant_platform quant_platform_tests
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=30

lint: $(STAMP)
	$(BIN)/ruff check quant_platform quant_platform_tests
