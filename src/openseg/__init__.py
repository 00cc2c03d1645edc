"""openseg: self-hosted customer segmentation speaking AEP's Segmentation and Profile APIs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
