"""Pure torch signal functions: no fastai, no state. Every function works on leading batch dimensions."""

from .crop import crop, pad, pad_batch

__all__ = ["crop", "pad", "pad_batch"]
