"""Input and output serializers of the scoring API."""
