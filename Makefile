# inferq: `make up` runs the service, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= cpu,test,monitoring
comma := ,
# TF Serving's real gRPC client, for the tests of api/grpc/tfserving (and the descriptors its protos are
# made from). Not in pyproject's test extra: it requires the full `tensorflow` package, which must not
# sit beside tensorflow-cpu (both are the `tensorflow` module); with --no-deps, tensorflow-cpu is it.
TF_SERVING_API := tensorflow-serving-api==2.21.0

.PHONY: setup up test compose-test train bench lint protos clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "inferq needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(if $(filter test,$(subst $(comma), ,$(EXTRAS))),$(PY) -m pip install --quiet --no-deps $(TF_SERVING_API))
	touch $(STAMP)

up: setup
	$(PY) -m launcher

# make train ARCH=cnn trains with config/model_cnn.json; PARAMS=<file> names any parameters file.
ARCH ?= mlp
PARAMS ?= config/model$(if $(filter-out mlp,$(ARCH)),_$(ARCH)).json

train: setup
	$(PY) -m trainer --params $(PARAMS)

# pytest exits 5 when a selection (make test PYTEST_ARGS='-k ...') matches no test: say so, not fail.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no test matched the selection"; exit 0; fi; exit $$status

# docker-compose.yml run for real (tests/compose): starts a Docker engine where none answers (as root),
# builds the images on an offline Debian base, then up, scale, kill, restart, retrain, down -v.
compose-test: setup
	$(PY) -m pytest -p no:cacheprovider tests/compose $(PYTEST_ARGS)

# The load comes from wrk and, for the tensor path over HTTP and gRPC, h2load (nghttp2-client): Debian
# packages, installed here when missing and we may.
# MODEL=<path or name> benchmarks that model alone (python -m bench --help says which names).
# The tensor path also runs on NVIDIA PyTriton (bench.peers), from .venv-pytriton, built the first time.
# Last, two bulk tenants share the bulk lane (bench.tenants): QUICK=1 makes that part two short rounds.
bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
		{ echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	@command -v h2load >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq nghttp2-client >/dev/null; } || \
		{ echo "make bench needs h2load: apt-get install nghttp2-client"; exit 1; }
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(MODEL),--model '$(MODEL)',)

# api/grpc/protos' Python modules, generated again from its vendored .proto files with grpcio-tools, and
# api/grpc/tfserving/protos' from the descriptors tensorflow-serving-api and TensorFlow carry.
# They are committed (the API image and `make up` need no protoc); tests/contracts/test_grpc_protos.py
# fails when what is committed is not what this makes.
protos: setup
	$(PY) -m api.grpc.protos.generate
	$(PY) -m api.grpc.tfserving.protos.generate

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .venv-pytriton .run .pytest_cache .ruff_cache
