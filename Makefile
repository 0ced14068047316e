# Two set-up commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch: a local wheel where the machine has one (this workplace), else
# PyTorch's CPU index. An unpinned torch would pull a CUDA build of several GB.
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
QUESTION ?= What does ef_search control in HNSW?
QUESTION_KO ?= 벡터 데이터베이스는 무엇을 저장하나요?

.PHONY: run test install install-dev lint bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: $(BIN)/python
	@if $(BIN)/pip download --quiet --no-deps --no-index -d $(VENV)/.wheels "torch==$(TORCH_VERSION)" >/dev/null 2>&1; then \
		echo "torch $(TORCH_VERSION): local CPU wheel"; \
		$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"; \
	else \
		echo "torch: CPU build from $(TORCH_CPU_INDEX)"; \
		$(BIN)/pip install --quiet torch --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple; \
	fi
	rm -rf $(VENV)/.wheels
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/rag-app ingest rag_app/samples
	$(BIN)/rag-app query "$(QUESTION)"
	$(BIN)/rag-app query "$(QUESTION_KO)"

test: install-dev
	$(BIN)/ruff check rag_app tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: install-dev
	$(BIN)/python -m benchmarks.run

notebooks: install-dev
	$(BIN)/python notebooks/run.py --keep-outputs --scale full

clean:
	rm -rf $(VENV) .rag_data
