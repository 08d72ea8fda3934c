# The two commands of a newcomer: `make demo` (the stack on the embedded simulator) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test bench demo clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/safevla demo

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build install log ros2_ws/build ros2_ws/install ros2_ws/log *.egg-info
