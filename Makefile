# The README's quick start.
.PHONY: demo test setup

demo:   ## set up and run the installation on the demo collection (default engine)
	scripts/demo.sh

test:   ## set up and run the whole test suite
	scripts/test.sh

setup:  ## set up everything (diffusion engine and test tools too) without running
	scripts/setup.sh --full
