# Two set-up commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch pinned by version, installed by name (pip's own configuration chooses the index): the
# pinned version resolves to a CPU build here, while an unpinned torch pulls a CUDA build of
# several GB. Elsewhere, point pip at a CPU wheel index in pip.conf or PIP_INDEX_URL.
TORCH_VERSION ?= 2.13.0
QUESTION ?= What does ef_search control in HNSW?
QUESTION_KO ?= 벡터 데이터베이스는 무엇을 저장하나요?

.PHONY: run test install install-dev test-system-packages lint bench notebooks docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: $(BIN)/python
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Debian packages the tests use: chromium + its driver for the chat page's browser test, and a
# Hangul font for the Korean PDF test (nothing is downloaded at test time).
DEBIAN_TEST_FILES := /usr/bin/chromium /usr/bin/chromedriver /usr/share/fonts/truetype/nanum/NanumGothic.ttf
test-system-packages:
	@if ! ls $(DEBIAN_TEST_FILES) >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-nanum; \
	fi

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev test-system-packages

run: install
	$(BIN)/rag-app ingest rag_app/samples
	$(BIN)/rag-app query "$(QUESTION)"
	$(BIN)/rag-app query "$(QUESTION_KO)"

# The suite includes tests/test_docs.py: the site built with --strict and its runnable examples.
test: install-dev
	$(BIN)/ruff check rag_app pinecone_local rag_lab tests benchmarks docs
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: install-dev
	$(BIN)/python -m benchmarks.run

notebooks: install-dev
	$(BIN)/python notebooks/run.py --keep-outputs --scale full

docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .rag_data site
