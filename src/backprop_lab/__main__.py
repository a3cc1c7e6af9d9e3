"""`python -m backprop_lab [overrides]`: one training run, or a sweep with -m."""

from .cli import main

if __name__ == "__main__":
    main()
