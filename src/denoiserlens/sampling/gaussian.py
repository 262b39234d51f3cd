"""A Gaussian prior N(mu, Sigma): the reference whose denoiser, score and conditionals are known
in closed form, used to check the samplers and the Eq. 4 estimator.

For y = x + sigma z, the optimal (MMSE) denoiser is linear:
    x_hat(y) = mu + Sigma (Sigma + sigma^2 I)^{-1} (y - mu),
and the score of the noisy density is grad log p_sigma(y) = -(Sigma + sigma^2 I)^{-1} (y - mu).
``blind_denoise`` does without sigma, as the samplers' networks do: it takes the maximum-likelihood
noise level of y under N(mu, Sigma + sigma^2 I) (accurate once the dimension is a few dozen).
"""

from __future__ import annotations

import torch


class GaussianPrior:
    """N(mean, cov) over vectors of ``shape`` (e.g. (1, 8, 8)); computations in float64."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        self.n = int(torch.tensor(self.shape).prod())
        self.mean = mean.double().reshape(self.n)
        self.cov = cov.double()
        if self.cov.shape != (self.n, self.n):
            raise ValueError(f"covariance {tuple(cov.shape)} does not match {self.n} dimensions")
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.cov)
        if self.eigvals.min() <= 0:
            raise ValueError("the covariance must be positive definite")

    @classmethod
    def random(cls, shape: tuple[int, ...], lo: float, hi: float, seed: int = 0) -> GaussianPrior:
        """Random eigenvectors, eigenvalues log-spaced from ``lo`` to ``hi``, mean 0.5."""
        g = torch.Generator().manual_seed(seed)
        n = int(torch.tensor(shape).prod())
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        lam = torch.logspace(
            torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), n, dtype=torch.float64
        )
        return cls(torch.full((n,), 0.5, dtype=torch.float64), (q * lam) @ q.T, shape)

    def draw(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` samples of the prior, (count, *shape)."""
        z = torch.randn(count, self.n, generator=generator, dtype=torch.float64)
        x = self.mean + (z * self.eigvals.sqrt()) @ self.eigvecs.T
        return x.reshape(count, *self.shape)

    def _coords(self, y: torch.Tensor) -> torch.Tensor:
        return (y.double().reshape(len(y), self.n) - self.mean) @ self.eigvecs  # (B, n)

    def denoise(self, y: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The MMSE denoiser at noise level ``sigma`` (a number or one per row)."""
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) ** 2
        u = self._coords(y) * (self.eigvals / (self.eigvals + s2))
        return (self.mean + u @ self.eigvecs.T).reshape(y.shape).to(y.dtype)

    def score(self, y: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """grad log p_sigma(y) = -(Sigma + sigma^2 I)^{-1} (y - mu)."""
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) ** 2
        u = -self._coords(y) / (self.eigvals + s2)
        return (u @ self.eigvecs.T).reshape(y.shape).to(y.dtype)

    def ml_sigma(self, y: torch.Tensor, newton_steps: int = 8) -> torch.Tensor:
        """Maximum-likelihood noise level of each row of ``y`` under N(mu, Sigma + sigma^2 I)."""
        u2 = self._coords(y) ** 2
        lam = self.eigvals
        grid = torch.logspace(-10, 2, 49, dtype=torch.float64)  # candidate sigma^2
        var = lam[:, None] + grid[None, :]  # (n, G)
        loglik = -0.5 * (var.log().sum(0) + u2 @ (1 / var))  # (B, G): one matrix product
        s = grid[loglik.argmax(1)]
        for _ in range(newton_steps):  # refine sigma^2 by Newton steps on the log-likelihood
            r = (lam + s[:, None]).reciprocal()  # 1 / v
            a = u2 * r
            grad = -0.5 * (r * (1 - a)).sum(1)  # d/ds of -0.5 sum(log v + u2 / v)
            hess = 0.5 * (r * r * (1 - 2 * a)).sum(1)
            step = torch.where(hess < 0, -grad / hess, torch.zeros_like(s))
            s = (s + step).clamp_min(0.0)
        return s.sqrt()

    def blind_denoise(self, y: torch.Tensor) -> torch.Tensor:
        """The denoiser at the maximum-likelihood noise level of each row: no sigma given."""
        return self.denoise(y, self.ml_sigma(y))
