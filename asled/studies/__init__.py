"""Measurement studies behind the model cards' readings (run as `python -m asled.studies.<name>`)."""
