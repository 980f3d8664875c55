"""``python -m scoring.cli``."""
from scoring.cli import main

main()
