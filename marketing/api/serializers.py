"""Input and output serializers of the marketing API."""
