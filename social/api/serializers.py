"""Input and output serializers of the social API."""
