"""Denoiser geometry: Jacobian eigenbases, effective dimension (companion work)."""

from denoiserlens.geometry.jacobian import (
    JacobianOperator,
    asymmetry,
    full_jacobian,
    hutchinson_trace,
    top_eigenpairs,
)

__all__ = ["JacobianOperator", "asymmetry", "full_jacobian", "hutchinson_trace", "top_eigenpairs"]
