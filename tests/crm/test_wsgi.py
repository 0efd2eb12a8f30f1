"""The WSGI entry point gunicorn loads (crm.wsgi): the application, with the URLconf
imported and everything loaded frozen out of the garbage collector's sight."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def test_the_loaded_code_is_frozen_out_of_the_collector():
    probe = (
        "import gc, sys\n"
        "import crm.wsgi\n"
        "assert callable(crm.wsgi.application)\n"
        "assert 'customers.api.views' in sys.modules  # the URLconf was imported\n"
        "frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())\n"
        "print(frozen, tracked)\n"
        "assert frozen > 10 * tracked, (frozen, tracked)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crm.settings.base", "DEBUG": "0"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
