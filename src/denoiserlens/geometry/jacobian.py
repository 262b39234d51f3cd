"""The denoiser's Jacobian and its eigenbasis (companion work: geometry-adaptive harmonic
representations; slides in ../shared/papers).

A bias-free denoiser is locally linear, f(y) = J_y y with J_y = df/dy; J_y is close to symmetric,
and its eigenvectors form an adaptive basis in which the denoiser shrinks coefficients: eigenvalues
near 1 keep a direction (signal), near 0 remove it (noise). The effective dimension of the signal
subspace the denoiser preserves is the trace of J_y (its divergence).

Matrix-free: J v and J^T v by torch.func (jvp, vjp); the top eigenpairs of the symmetric part
(J + J^T)/2 by scipy's Lanczos (``eigsh``) on that operator; the trace by Hutchinson's estimator.
For small images the full Jacobian by ``jacrev`` with chunking. The model is put in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import jacrev, jvp, vjp

from denoiserlens.errors import UserError

MAX_FULL_PIXELS = (
    80 * 80
)  # values of the image: the full Jacobian is at most 6400^2 float32 = 164 MB


def _flat_fn(model: torch.nn.Module, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v (N,) -> f(v as y's shape) flattened, for one image y (1, C, H, W), in eval mode."""
    model.eval()
    shape = y.shape

    def f(v: torch.Tensor) -> torch.Tensor:
        return model(v.view(shape)).reshape(-1)

    return f


def full_jacobian(model: torch.nn.Module, y: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """J = df/dy at one image y (1, C, H, W), (N, N) with N = C*H*W, by jacrev in chunks."""
    n = y.numel()
    if y.shape[0] != 1:
        raise UserError(f"the Jacobian is of one image, got a batch of {y.shape[0]}")
    if n > MAX_FULL_PIXELS:
        raise UserError(
            f"image of {n} values is too large for the full Jacobian (at most "
            f"{MAX_FULL_PIXELS}); use the matrix-free eigen-solver"
        )
    f = _flat_fn(model, y)
    return jacrev(f, chunk_size=chunk)(y.reshape(-1).detach()).detach()


class JacobianOperator:
    """Matrix-free J and J^T at one image: ``matvec(v)`` = J v, ``rmatvec(v)`` = J^T v."""

    def __init__(self, model: torch.nn.Module, y: torch.Tensor) -> None:
        if y.shape[0] != 1:
            raise UserError(f"the Jacobian is of one image, got a batch of {y.shape[0]}")
        self.f = _flat_fn(model, y)
        self.y = y.reshape(-1).detach()
        self.n = self.y.numel()
        self.fy, self._vjp = vjp(self.f, self.y)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return jvp(self.f, (self.y,), (v.to(self.y.dtype),))[1]

    def rmatvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._vjp(v.to(self.y.dtype))[0]

    def homogeneity_error(self) -> float:
        """||J y - f(y)|| / ||f(y)||: zero for a bias-free network (f(y) = J_y y, so f acts
        locally as the linear map J); a network with biases is affine, not linear, there."""
        with torch.no_grad():
            jy = self.matvec(self.y)
        fy = self.fy.detach()
        return float((jy - fy).norm() / fy.norm().clamp_min(1e-12))

    def symmetric_matvec(self, v: torch.Tensor) -> torch.Tensor:
        """(J + J^T) v / 2."""
        return 0.5 * (self.matvec(v) + self.rmatvec(v))


def top_eigenpairs(
    op: JacobianOperator, k: int = 16, tol: float = 1e-4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues (descending) and eigenvectors (N, k) of (J + J^T)/2, by Lanczos
    (scipy eigsh) on the matrix-free operator; the start vector is seeded."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    if not 1 <= k < op.n:
        raise UserError(f"k = {k} eigenpairs needs 1 <= k < {op.n} (the pixels)")

    def mv(v: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32).reshape(-1))
        with torch.no_grad():
            return op.symmetric_matvec(t.to(op.y.device)).detach().double().cpu().numpy()

    lin = LinearOperator((op.n, op.n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(op.n)
    vals, vecs = eigsh(lin, k=k, which="LA", tol=tol, v0=v0)
    order = np.argsort(-vals)
    return vals[order], vecs[:, order]


def hutchinson_trace(op: JacobianOperator, probes: int = 32, seed: int = 0) -> tuple[float, float]:
    """tr(J) by Hutchinson's estimator with Rademacher probes: (estimate, its standard error)."""
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(probes):
        v = (torch.randint(0, 2, (op.n,), generator=g).float() * 2 - 1).to(op.y.device)
        with torch.no_grad():
            vals.append(float(v @ op.matvec(v)))
    vals_a = np.array(vals)
    return float(vals_a.mean()), float(vals_a.std(ddof=1) / np.sqrt(probes))


def asymmetry(op: JacobianOperator, probes: int = 16, seed: int = 0) -> float:
    """||J - J^T||_F / ||J||_F estimated with Gaussian probes (E||A v||^2 = ||A||_F^2)."""
    g = torch.Generator().manual_seed(seed)
    num = den = 0.0
    for _ in range(probes):
        v = torch.randn(op.n, generator=g).to(op.y.device)  # drawn on the CPU: same on any device
        with torch.no_grad():
            jv, jtv = op.matvec(v), op.rmatvec(v)
        num += float((jv - jtv).pow(2).sum())
        den += float(jv.pow(2).sum())
    return float(np.sqrt(num / den))
