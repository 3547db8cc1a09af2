"""The head's softmax layer fitted in NumPy/SciPy: full-batch L-BFGS, no TensorFlow.

The head is a linear softmax model on standardised features, so its training loss is
smooth and small (a few thousand rows, ~2,000 inputs, a few classes): SciPy's L-BFGS
brings it down in 40-60 full-batch iterations, a second or two, where starting
TensorFlow to run ``model.fit`` takes several. The loss is Keras' own, as the ``head``
section defines it: the mean cross-entropy, plus ``l2`` x the sum of the squared kernel
(``keras.regularizers.L2``), plus dropout's expected extra loss. Without dropout it is
convex; the dropout term, which depends on the predictions, need not be. The fit starts
from zero weights, so it needs no seed.

Dropout has no exact deterministic counterpart; what replaces it is its expected effect
on the loss to second order, "marginalised" dropout (Wager, Wang & Liang, "Dropout
Training as Adaptive Regularization", NeurIPS 2013). Inverted dropout of rate p makes
input j of the softmax layer z_j * m_j / (1 - p), whose mean is z_j and variance
p / (1 - p) z_j^2; a second-order expansion of the cross-entropy in the logits gives the
penalty, per example,

    p / (2 (1 - p)) * sum_j z_j^2 * w_j' (diag(q) - q q') w_j

with w_j the kernel's row j and q the predicted probabilities: an L2 penalty that is
weighted by each feature's size and shrinks as the model grows sure of an example. Its
gradient, through q as well, is below (``Objective``); tests/test_head.py checks it
against finite differences, the penalty against the mean loss over random dropout masks,
and the fit against Keras' on data it makes.

Early stopping is as in ``model.fit``: the monitored validation score after each
iteration (one full pass over the training set), ``patience`` iterations without a
better one stop the fit, and the best iterate is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# One BLAS thread: the fit's products are thin (k columns) and memory-bound, and L-BFGS-B
# calls BLAS on short vectors hundreds of times, each of which wakes OpenBLAS' other
# threads. The flowers fit at 224 px on 2 shared cores (load average 6) took 32 s with
# 2 threads and 9.9 s with one.
BLAS_THREADS = 1
# L-BFGS' own convergence test on the projected gradient (SciPy's default is 1e-5): the
# fit ends at a minimum unless early stopping or the iteration cap comes first.
GTOL = 1e-6


@dataclass(frozen=True)
class Softmax:
    """A fitted softmax layer: logits = z @ kernel + bias, on standardised features z."""

    kernel: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)


@dataclass(frozen=True)
class SoftmaxFit:
    """The fit's best iterate, and the per-iteration scores as Keras' History names them."""

    model: Softmax
    history: dict[str, list[float]]  # loss, accuracy, val_loss, val_accuracy per iteration
    best_iteration: int  # 1-based, the iterate kept
    iterations: int  # run
    stopped: str  # why: "early stopping", "converged" or "iteration cap"


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(q: np.ndarray, y: np.ndarray) -> float:
    """Mean -log q[i, y_i], floored as Keras' crossentropy clips at epsilon (1e-7)."""
    return float(-np.log(np.clip(q[np.arange(len(y)), y], 1e-7, 1.0)).mean())


class Objective:
    """theta (the kernel (d, k) then the bias (k), flattened) -> (loss, gradient) of the
    head's training loss on standardised features ``z`` (n, d) and labels ``y``.

    The dropout penalty of example i is c * sum_kl C_i[k, l] M_i[k, l], with
    C_i = diag(q_i) - q_i q_i' and M_i[k, l] = sum_j z_ij^2 w_jk w_jl: matrix products
    with the k (k + 1) / 2 class pairs (k <= l) as columns carry it and its gradient.
    An evaluation reads the (n, d) data four times (z and z^2, each way round): in float32,
    as Keras trains, half the memory traffic of float64; the sums and the loss in float64.
    The probabilities of the last evaluation are kept: the iteration's scores reuse them.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, classes: int, l2: float,
                 dropout: float) -> None:
        z = np.asarray(z, np.float32)
        self.n, self.d = z.shape
        self.classes, self.l2 = classes, l2
        self.onehot = np.eye(classes)[y]
        self.c = dropout / (2.0 * (1.0 - dropout)) / self.n  # per example, averaged
        # Each way round in memory order: a transposed view is read 2-3x slower.
        self.z, self.z_t = z, np.ascontiguousarray(z.T)
        if self.c:
            z2 = z * z
            self.z2, self.z2_t = z2, np.ascontiguousarray(z2.T)
        self.first, self.second = np.triu_indices(classes)  # the class pairs k <= l
        self.diagonal = self.first == self.second
        self.twice = np.where(self.diagonal, 1.0, 2.0)  # symmetric: k < l counts twice
        self.last: tuple[np.ndarray, np.ndarray] | None = None  # (theta, q) evaluated

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, bias) of a flat parameter vector."""
        cut = self.d * self.classes
        return theta[:cut].reshape(self.d, self.classes), theta[cut:]

    def _symmetric(self, pairs: np.ndarray) -> np.ndarray:
        """(m, pairs) -> (m, k, k), filled on both sides of the diagonal."""
        full = np.empty((len(pairs), self.classes, self.classes))
        full[:, self.first, self.second] = pairs
        full[:, self.second, self.first] = pairs
        return full

    def _product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.astype(np.float32)).astype(np.float64)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = self.split(theta)
        logits = self._product(self.z, w) + b
        logits -= logits.max(axis=1, keepdims=True)
        log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        q = np.exp(log_q)
        self.last = (theta.copy(), q)
        loss = -float((self.onehot * log_q).sum()) / self.n + self.l2 * float((w * w).sum())
        d_logits = (q - self.onehot) / self.n
        grad_w = 2.0 * self.l2 * w
        if self.c:
            first, second, c = self.first, self.second, self.c
            m = self._product(self.z2, w[:, first] * w[:, second])  # (n, pairs): M_i[k, l]
            pair_c = -q[:, first] * q[:, second]  # (n, pairs): C_i[k, l]
            pair_c[:, self.diagonal] += q
            loss += c * float((self.twice * pair_c * m).sum())
            # through q: dT_i/dq_i = diag(M_i) - 2 M_i q_i, then the softmax's Jacobian
            g = m[:, self.diagonal] - 2.0 * np.einsum("ikl,il->ik", self._symmetric(m), q)
            d_logits += c * q * (g - (q * g).sum(axis=1, keepdims=True))
            # and through M, q held fixed: dT/dw_jk = 2 sum_l (z^2' C)[j, k, l] w_jl
            full_d = self._symmetric(self._product(self.z2_t, pair_c))
            grad_w += 2.0 * c * np.einsum("jkl,jl->jk", full_d, w)
        grad_w += self._product(self.z_t, d_logits)
        return loss, np.concatenate([grad_w.ravel(), d_logits.sum(axis=0)])

    def probabilities(self, theta: np.ndarray) -> np.ndarray:
        """q on the training set at ``theta``: the last evaluation's when it was there."""
        if self.last is not None and np.array_equal(self.last[0], theta):
            return self.last[1]
        w, b = self.split(theta)
        return softmax(self._product(self.z, w) + b)


def fit_softmax(z: np.ndarray, y: np.ndarray, z_val: np.ndarray, y_val: np.ndarray, *,
                classes: int, l2: float, dropout: float, max_iterations: int,
                patience: int, monitor: str,
                out_of_time: Callable[[], bool] | None = None) -> SoftmaxFit:
    """Minimise the head's training loss from zero weights (no seed: the same data give
    the same head) by L-BFGS, with early stopping on ``monitor`` (val_loss or
    val_accuracy; val_loss includes the L2 term, as Keras' does). ``out_of_time``: asked
    after each iteration; True ends the fit there ("budget"), the best iterate kept."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    loss_and_grad = Objective(z, y, classes, l2, dropout)
    z_val = np.asarray(z_val, np.float32)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [],
                                       "val_accuracy": []}
    minimise = monitor.endswith("loss")
    best: dict = {"score": np.inf if minimise else -np.inf, "theta": None, "iteration": 0,
                  "stopped": ""}

    def after_iteration(intermediate_result) -> None:  # noqa: ANN001 - SciPy's OptimizeResult
        theta = intermediate_result.x
        w, b = loss_and_grad.split(theta)
        q = loss_and_grad.probabilities(theta)
        q_val = softmax((z_val @ w.astype(np.float32)).astype(np.float64) + b)
        history["loss"].append(float(intermediate_result.fun))
        history["accuracy"].append(float((q.argmax(axis=1) == y).mean()))
        history["val_loss"].append(cross_entropy(q_val, y_val) + l2 * float((w * w).sum()))
        history["val_accuracy"].append(float((q_val.argmax(axis=1) == y_val).mean()))
        score, iteration = history[monitor][-1], len(history["loss"])
        if score < best["score"] if minimise else score > best["score"]:
            best.update(score=score, theta=theta.copy(), iteration=iteration)
        elif iteration - best["iteration"] >= patience:
            best["stopped"] = "early stopping"
            raise StopIteration  # SciPy ends the fit and returns the result so far
        if out_of_time is not None and out_of_time():
            best["stopped"] = "budget"
            raise StopIteration

    d = loss_and_grad.d
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        result = minimize(loss_and_grad, np.zeros(d * classes + classes), jac=True,
                          method="L-BFGS-B", callback=after_iteration,
                          options={"maxiter": max_iterations, "gtol": GTOL})
    if best["theta"] is None:  # not one iteration: the zero start already optimal
        raise ValueError(f"the head's fit made no iteration: {result.message}")
    iterations = len(history["loss"])
    stopped = best["stopped"] or ("iteration cap" if iterations >= max_iterations
                                  else "converged")
    log.info(f"softmax fit: {iterations} L-BFGS iterations ({stopped}), best "
             f"{best['iteration']}: {monitor} {best['score']:.4f}")
    return SoftmaxFit(Softmax(*loss_and_grad.split(best["theta"])), history,
                      best["iteration"], iterations, stopped)
