# Set-up and entry points. Every target creates its own virtual environment.
# TORCH_SPEC: the torch requirement installed before the package. The default pin
# takes the local CPU wheel on the project's machines; users with a GPU install
# their CUDA build first (or pass TORCH_SPEC='torch==2.13.0+cu128' and an index).
PYTHON     ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV       ?= .venv
BENCH_VENV ?= .venv-bench
DEMO_OUT   ?= demo_out
SOAK_OUT   ?= soak_out
SOAK_S     ?= 300
SOAK_SEED  ?= 0

.PHONY: all venv browser test test-fast demo soak bench-rop bench-replay bench-policy bench-service gpu-check clean abtem-validation-set

all: test

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

## make browser: Debian's chromium and chromium-driver for the live view's browser test, installed where
## apt-get can (as root); elsewhere it says so and that test is skipped with the reason
BROWSER_PACKAGES ?= chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(BROWSER_PACKAGES) (Debian) for the live view's browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1; } || \
	  echo "could not install $(BROWSER_PACKAGES): the live view's browser test will be skipped"; \
	else echo "no chromium/chromedriver and no apt-get as root: the live view's browser test will be skipped"; fi

## make test: install and run the whole suite (slow tests included)
test: $(VENV)/.installed browser
	$(VENV)/bin/python -m pytest

## make test-fast: skip tests marked slow
test-fast: $(VENV)/.installed browser
	$(VENV)/bin/python -m pytest -m "not slow"

## make demo: simulate two recordings, start the server with the shipped model, replay them with every
## strategy, print the table, write the figures, stop the server
demo: $(VENV)/.installed
	$(VENV)/bin/scan-client demo --out $(DEMO_OUT)

## make soak: SOAK_S seconds (default 300; SOAK_SEED picks the kills and the hostile messages) of sessions of every strategy under random kill -9 and restarts and
## hostile messages, then every acknowledged frame is checked on disk; prints the table (SOAK_OUT/soak.md) and
## fails if a frame was lost or a hostile message got an unexpected answer (writes ~2-3 GB under SOAK_OUT)
soak: $(VENV)/.installed
	rm -rf $(SOAK_OUT)/sessions $(SOAK_OUT)/server.log
	$(VENV)/bin/python -m scan_server.emulation.soak --duration-s $(SOAK_S) --seed $(SOAK_SEED) --out $(SOAK_OUT)

$(BENCH_VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench]"
	touch $@

## make bench-rop: our ROP against py4DSTEM SingleslicePtychography, same data, positions, iterations
bench-rop: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench_rop.py

## make bench-replay: peak memory and frames/s replaying a 1.3 GB Dectris recording (written to a temp folder)
bench-replay: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_replay.py

## make bench-policy: REINFORCE iterations/s (cpu preset, batch 8) and one policy step's time
bench-policy: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_policy.py

## make bench-service: per-step decision latency of the server (p50, p95, fallbacks), one session and four at
## once, against the previous release's path in the same run
bench-service: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_service.py

## make gpu-check: on a CUDA machine, the gpu tests, ROP on CUDA against the CPU, the paper preset's policy
## step and the service benchmark on CUDA, in one table (a few minutes); without CUDA it says so and stops
gpu-check: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO_OUT) $(SOAK_OUT) .pytest_cache

## make abtem-validation-set: an independent validation set simulated with abTEM (12 recordings with their
## ground truth, for `scan-server evaluate` only: never train or tune on it) into ABTEM_OUT; resumable; about 5 minutes
## a recording on 2 CPU cores. abTEM's own environment: abTEM 1.0.11 with numpy 2.4 beside torch 2.13.0
ABTEM_VENV ?= .venv-abtem
ABTEM_SPEC ?= abtem==1.0.11
ABTEM_OUT  ?= data/abtem-validation
$(ABTEM_VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(ABTEM_VENV)
	$(ABTEM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ABTEM_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(ABTEM_VENV)/bin/python -m pip install --quiet -e .
	$(ABTEM_VENV)/bin/python -m pip install --quiet "$(ABTEM_SPEC)"
	touch $@

abtem-validation-set: $(ABTEM_VENV)/.installed
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	  $(ABTEM_VENV)/bin/python scripts/abtem_validation_set.py --out $(ABTEM_OUT)
