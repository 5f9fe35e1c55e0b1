"""A worker process knows every action kind as soon as Django is set up (handlers register on
import, and the app imports their modules at start-up), not only after some view imported them."""

import json
import subprocess
import sys

from django.conf import settings


def test_a_fresh_process_has_the_pool_action_handlers_registered():
    code = (
        "import django, json; django.setup(); "
        "from workloads.services.actions import _HANDLERS; print(json.dumps(sorted(_HANDLERS)))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "controlplane.settings.test", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    kinds = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"incident_enter", "incident_exit", "pause", "resume", "scale"} <= kinds
