"""The API's content negotiation: DRF's, with a shortcut for the requests almost every
client sends.

DRF's ``DefaultContentNegotiation`` parses the ``Accept`` header (building the dict of
every request header to read it), orders the media types by precedence and matches each
against each renderer, and parses both media types again to pick the body's parser: about
a twentieth of a resolve's CPU, on every request, to arrive at the only renderer and the
only parser the API has. Here the answer for the common headers is read straight off
``request.META``:

* renderer: no ``?format=`` override and an ``Accept`` header that is missing, ``*/*`` or
  exactly the first renderer's media type: that renderer and its media type, which is what
  DRF's matching returns for those headers;
* parser: a ``Content-Type`` exactly the first parser's media type: that parser.

Anything else (another Accept, parameters, a suffix, an unknown or parameterised content
type) goes through DRF's own code unchanged, with its 406 and 415 answers.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings


class ApiContentNegotiation(DefaultContentNegotiation):
    def select_parser(self, request, parsers):
        if parsers and request.META.get("CONTENT_TYPE") == parsers[0].media_type:
            return parsers[0]
        return super().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix:
            meta = request.META
            accept = meta.get("HTTP_ACCEPT")
            first = renderers[0]
            if (accept is None or accept == "*/*" or accept == first.media_type) and (
                not meta.get("QUERY_STRING")
                or api_settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
