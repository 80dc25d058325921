"""Short progress lines on stderr, so stdout stays clean for results."""

import sys


def say(message: str) -> None:
    print(f"lethe: {message}", file=sys.stderr, flush=True)
