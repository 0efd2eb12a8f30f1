"""WSGI entry point (gunicorn crm.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.base")
application = get_wsgi_application()

# Everything loaded by now lives as long as the process: the settings, the apps and models,
# and (imported here rather than by the first request) the URLconf with every view and
# serializer. gc.freeze() moves it out of the cyclic garbage collector's sight, so a full
# collection walks the few thousand objects of the requests instead of the ~160,000 of the
# loaded code: 80-170 ms with the worker stalled, measured in-process (docs/profiles/README.md,
# "The garbage collector"). Nothing is left uncollected that could ever be freed.
get_resolver().url_patterns  # noqa: B018 - imported for its side effect
gc.collect()
gc.freeze()
