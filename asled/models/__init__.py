"""Models: the registry, AsLeD-Net and its parts, and the identity 'blur' method."""

from asled.models.registry import build_model, count_parameters, describe, model_names

__all__ = ["build_model", "count_parameters", "describe", "model_names"]
