"""asled-bench: reproducible pipeline for Asymmetric Dual-Lens Video Deblurring (AsLeD-Net)."""

__version__ = "0.1.0"
