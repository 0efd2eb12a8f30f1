"""Input and output serializers of the automation API."""
