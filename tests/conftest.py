"""Shared test set-up: hypothesis profiles and the brute-force reference."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci": derandomized so a CI run is reproducible; no deadlines on a noisy shared machine.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
