"""``python -m art2mus ...``: the same command as the ``art2mus`` console script."""

from art2mus.cli import main

if __name__ == "__main__":
    main(prog_name="art2mus")
