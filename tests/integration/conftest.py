"""Options of the integration tests."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--proof-seeds",
        default="0",
        help="Comma-separated testbed seeds the memorization proof runs on (CI: 0; the sweep: 0,1,2,3,4). "
        "Each new seed trains a testbed, about 4 minutes of CPU.",
    )
