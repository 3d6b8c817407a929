"""Markers of the torch tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs (tens of seconds); still part of "
                            "`make test`")
