"""Model-Agnostic Meta-Learning (MAML), first-order MAML and Reptile, with ``torch.func``.

Chapter 5 derives every function here step by step. The algorithms:

* MAML (Finn, Abbeel and Levine, ICML 2017). For each task $i$ with support set $S_i$ and
  query set $Q_i$, adapt the shared parameters with a few gradient steps on the support loss,
  $\\theta_i' = \\theta - \\alpha \\nabla_\\theta L_{S_i}(\\theta)$, and move $\\theta$ to lower the
  query loss of the adapted parameters, $\\min_\\theta \\sum_i L_{Q_i}(\\theta_i')$. The meta-gradient
  differentiates through the inner steps (second order).
* First-order MAML (FOMAML, same paper): the same, treating the inner gradients as constants, so
  the meta-gradient is the query gradient at $\\theta_i'$.
* Reptile (Nichol, Achiam and Schulman, 2018): run plain SGD on a task's data and move $\\theta$
  towards the result; ``reptile_gradient`` returns $\\theta - \\bar\\theta'$, a direction that any
  optimiser can follow like a gradient.

Everything is generic over an ``nn.Module`` and a loss ``loss_fn(prediction, target) -> scalar``:
the module's parameters become a dict of tensors that ``torch.func.functional_call`` plugs in,
so a task can be adapted without touching the module itself.

Two engines compute the same numbers. ``engine="func"`` takes gradients with ``torch.func.grad``
and can ``vmap`` over the tasks of a batch (fastest for small networks such as the sinusoid
regressor of Chapter 5). ``engine="autograd"`` loops over tasks and differentiates the inner
step with ``torch.autograd.grad(create_graph=True)``, freeing each task's graph before the next:
this is the faster path for the GPT of Chapter 6, whose forward pass checks its token ids (a
data-dependent branch that ``vmap`` cannot batch) and whose per-task work is large enough that
batching tasks gains little. Tests and Chapter 6 check that the two engines agree in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from book.errors import BookError

Params = Dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ENGINES = ("func", "autograd")


class TaskBatchError(BookError):
    """A batch of tasks whose tensors do not fit together."""


@dataclass(frozen=True)
class TaskBatch:
    """Support and query sets of several tasks, stacked along a leading task dimension.

    ``x_support`` has shape ``(tasks, K, ...)``, ``y_support`` ``(tasks, K, ...)``; the query
    tensors ``(tasks, Q, ...)``. Every task of a batch has the same K and Q, so they can be
    processed together with ``vmap``.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor

    def __post_init__(self):
        names = ("x_support", "y_support", "x_query", "y_query")
        tensors = [getattr(self, name) for name in names]
        for name, tensor in zip(names, tensors):
            if not isinstance(tensor, torch.Tensor):
                raise TaskBatchError(f"{name} must be a tensor, not {type(tensor).__name__}")
            if tensor.dim() < 2:
                raise TaskBatchError(f"{name} has shape {tuple(tensor.shape)}; expected (tasks, points, ...)")
        counts = {name: tensor.shape[0] for name, tensor in zip(names, tensors)}
        if len(set(counts.values())) != 1:
            raise TaskBatchError(f"the task dimension differs between tensors: {counts}")
        if self.x_support.shape[1] != self.y_support.shape[1]:
            raise TaskBatchError(f"support set has {self.x_support.shape[1]} inputs but "
                                 f"{self.y_support.shape[1]} targets per task")
        if self.x_query.shape[1] != self.y_query.shape[1]:
            raise TaskBatchError(f"query set has {self.x_query.shape[1]} inputs but "
                                 f"{self.y_query.shape[1]} targets per task")
        if self.x_support.shape[1] == 0:
            raise TaskBatchError("the support set is empty: K must be at least 1")

    @property
    def num_tasks(self) -> int:
        return self.x_support.shape[0]

    @property
    def shots(self) -> int:
        """K, the number of support examples per task."""
        return self.x_support.shape[1]

    def task(self, index: int) -> "TaskBatch":
        """The batch holding only task ``index`` (handy for plain loops over tasks)."""
        return TaskBatch(*(t[index:index + 1] for t in (self.x_support, self.y_support, self.x_query, self.y_query)))


def split_support_query(x: torch.Tensor, y: torch.Tensor, shots: int, queries: int | None = None,
                        generator: torch.Generator | None = None):
    """Randomly split one task's ``n`` examples into ``shots`` support and ``queries`` query examples.

    ``queries`` defaults to all the remaining examples. Support and query never overlap, so the
    query loss measures generalisation from the support set.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"a task has {x.shape[0]} inputs but {y.shape[0]} targets")
    available = x.shape[0]
    if shots < 1:
        raise ValueError(f"K (shots) must be at least 1, got {shots}")
    queries = available - shots if queries is None else queries
    if queries < 1:
        raise ValueError(f"no query example left: K={shots} uses all {available} examples of the task")
    if shots + queries > available:
        raise ValueError(f"K={shots} support plus {queries} query examples need {shots + queries} points, "
                         f"but the task has only {available}")
    order = torch.randperm(available, generator=generator)
    support, query = order[:shots], order[shots:shots + queries]
    return x[support], y[support], x[query], y[query]


def parameters_of(model: nn.Module) -> Params:
    """The model's parameters as a dict of plain tensors, detached from the module."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _check_params(model: nn.Module, params: Params) -> None:
    expected = {name: p.shape for name, p in model.named_parameters()}
    if set(params) != set(expected):
        missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
        raise ValueError(f"parameters do not match the model: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise ValueError(f"parameter {name} has shape {tuple(params[name].shape)}, "
                             f"the model expects {tuple(shape)}")


def task_loss(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn) -> torch.Tensor:
    """The loss of the model with parameters ``params`` on one task's examples ``(x, y)``."""
    return loss_fn(functional_call(model, params, (x,)), y)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def adapt(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, *, loss_fn: LossFn,
          inner_lr: float, steps: int = 1, first_order: bool = False, engine: str = "func") -> Params:
    """Inner loop: ``steps`` steps of gradient descent on one task's support set.

    $\\theta' = \\theta - \\alpha \\nabla_\\theta L_S(\\theta)$, repeated. Differentiable: when the caller
    takes gradients of the result with respect to ``params`` (MAML), they flow through every
    step, including through the inner gradients themselves, unless ``first_order`` treats
    those as constants (FOMAML). With ``engine="autograd"`` the ``params`` that gradients are
    taken with respect to must require grad (see :func:`leaf_parameters`).
    """
    if steps < 0:
        raise ValueError(f"the number of inner steps must be non-negative, got {steps}")
    _check_engine(engine)
    if engine == "autograd":
        return _autograd_steps(model, params, x, y, loss_fn, inner_lr, steps, first_order)[0]
    support_gradient = grad(task_loss, argnums=1)
    for _ in range(steps):
        gradients = support_gradient(model, params, x, y, loss_fn)
        if first_order:
            gradients = {name: g.detach() for name, g in gradients.items()}
        params = {name: p - inner_lr * gradients[name] for name, p in params.items()}
    return params


def _autograd_steps(model, params, x, y, loss_fn, inner_lr, steps, first_order):
    """The inner steps with autograd; also returns the first support loss and its gradients (or None)."""
    first_loss = first_gradients = None
    # PyTorch's fused CPU attention has no double backward: second order needs the plain kernel.
    # First order never differentiates a gradient, so it keeps the fused kernel (a little faster).
    kernels = [SDPBackend.MATH] if not first_order else [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(kernels):
        for step in range(steps):
            loss = task_loss(model, params, x, y, loss_fn)
            gradients = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
            if step == 0:
                first_loss, first_gradients = loss, gradients
            params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params, first_loss, first_gradients


def leaf_parameters(params: Params) -> Params:
    """Copies of ``params`` that require grad: the variables of an autograd meta-gradient."""
    return {name: p.detach().clone().requires_grad_() for name, p in params.items()}


def adapted_query_loss(model: nn.Module, params: Params, x_support, y_support, x_query, y_query, *,
                       loss_fn: LossFn, inner_lr: float, steps: int = 1, first_order: bool = False,
                       engine: str = "func") -> torch.Tensor:
    """One task's query loss after adapting on its support set: $L_Q(\\theta')$."""
    adapted = adapt(model, params, x_support, y_support, loss_fn=loss_fn, inner_lr=inner_lr,
                    steps=steps, first_order=first_order, engine=engine)
    return task_loss(model, adapted, x_query, y_query, loss_fn)


def maml_loss(model: nn.Module, params: Params, tasks: TaskBatch, *, loss_fn: LossFn, inner_lr: float,
              steps: int = 1, first_order: bool = False, vectorize: bool = True,
              support_weight: float = 0.0) -> torch.Tensor:
    """The meta-objective: mean over tasks of the query loss after adaptation.

    ``vectorize=True`` processes all tasks at once with ``vmap``; ``False`` loops over them.
    Both give the same number. Loop for models whose forward pass branches on the values of
    its inputs (such as the book's GPT, which checks its token ids): ``vmap`` cannot batch that.
    ``support_weight`` $w$ adds $w\\,L_{S_i}(\\theta)$, the support loss *before* adaptation, to
    each task's term: the objective then also asks the shared weights to be good as they are.
    """
    _check_params(model, params)

    def one_task(xs, ys, xq, yq):
        loss = adapted_query_loss(model, params, xs, ys, xq, yq, loss_fn=loss_fn, inner_lr=inner_lr,
                                  steps=steps, first_order=first_order)
        if support_weight:
            loss = loss + support_weight * task_loss(model, params, xs, ys, loss_fn)
        return loss

    sets = (tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)
    if vectorize:
        return vmap(one_task)(*sets).mean()
    return torch.stack([one_task(*(t[i] for t in sets)) for i in range(tasks.num_tasks)]).mean()


def maml_gradient(model: nn.Module, params: Params, tasks: TaskBatch, *, loss_fn: LossFn, inner_lr: float,
                  steps: int = 1, first_order: bool = False, vectorize: bool = True, engine: str = "func",
                  support_weight: float = 0.0):
    """The meta-gradient $\\nabla_\\theta \\frac1T\\sum_i L_{Q_i}(\\theta_i')$ and the meta-loss.

    Returns ``(gradients, loss)``: a dict shaped like ``params`` and the meta-loss before the update.
    ``engine="autograd"`` loops over the tasks (``vectorize`` is then ignored) and keeps one task's
    graph in memory at a time. ``support_weight`` is that of :func:`maml_loss`; the autograd engine
    re-uses the first inner step's support loss for it, so it costs almost nothing.
    """
    _check_engine(engine)
    if support_weight and steps < 1:
        raise ValueError("support_weight needs at least one inner step")
    if engine == "autograd":
        _check_params(model, params)
        variables = leaf_parameters(params)
        total, loss_sum, count = None, 0.0, tasks.num_tasks
        for index in range(count):
            xs, ys, xq, yq = (t[index] for t in (tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query))
            adapted, support_loss, support_gradients = _autograd_steps(model, variables, xs, ys, loss_fn, inner_lr,
                                                                       steps, first_order)
            loss = task_loss(model, adapted, xq, yq, loss_fn) / count
            if support_weight and not first_order:  # the inner step's graph is kept: differentiate through it
                loss = loss + support_weight * support_loss / count
            gradients = torch.autograd.grad(loss, list(variables.values()))
            if support_weight and first_order:  # the support loss's gradient is the inner step's own
                gradients = [g + support_weight * s / count for g, s in zip(gradients, support_gradients)]
                loss = loss + support_weight * support_loss.detach() / count
            total = gradients if total is None else [a + g for a, g in zip(total, gradients)]
            loss_sum += float(loss.detach())
        return dict(zip(variables, total)), torch.tensor(loss_sum, dtype=next(iter(params.values())).dtype)

    def objective(p):
        loss = maml_loss(model, p, tasks, loss_fn=loss_fn, inner_lr=inner_lr, steps=steps,
                         first_order=first_order, vectorize=vectorize, support_weight=support_weight)
        return loss, loss

    return grad(objective, has_aux=True)(params)


def reptile_gradient(model: nn.Module, params: Params, tasks: TaskBatch, *, loss_fn: LossFn, inner_lr: float,
                     steps: int, vectorize: bool = True):
    """Reptile's update direction $\\theta - \\frac1T\\sum_i \\theta_i'$ and the mean pre-adaptation loss.

    Reptile does not need a query set: each task adapts on all its examples (support and query
    together). Feeding the direction to an optimiser as a gradient moves $\\theta$ towards the
    adapted parameters.
    """
    _check_params(model, params)
    x = torch.cat([tasks.x_support, tasks.x_query], dim=1)
    y = torch.cat([tasks.y_support, tasks.y_query], dim=1)

    def one_task(xt, yt):
        adapted = adapt(model, params, xt, yt, loss_fn=loss_fn, inner_lr=inner_lr, steps=steps, first_order=True)
        return adapted, task_loss(model, params, xt, yt, loss_fn)

    if vectorize:
        adapted, losses = vmap(one_task)(x, y)
        mean_adapted = {name: a.mean(0) for name, a in adapted.items()}
    else:
        results = [one_task(x[i], y[i]) for i in range(tasks.num_tasks)]
        mean_adapted = {name: torch.stack([a[name] for a, _ in results]).mean(0) for name in params}
        losses = torch.stack([loss for _, loss in results])
    direction = {name: (params[name] - mean_adapted[name]).detach() for name in params}
    return direction, losses.mean().detach()


def apply_gradients(model: nn.Module, optimizer: torch.optim.Optimizer, gradients: Params) -> None:
    """Outer loop update: hand ``gradients`` to the module's parameters and take an optimiser step."""
    for name, p in model.named_parameters():
        p.grad = gradients[name].detach().clone()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def finetune_curve(model: nn.Module, params: Params, tasks: TaskBatch, *, loss_fn: LossFn, inner_lr: float,
                   steps: int, per_task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                   ) -> torch.Tensor:
    """Query losses after 0, 1, ..., ``steps`` gradient steps on each task's support set.

    Returns a tensor of shape ``(tasks, steps + 1)``: the adaptation curve of every task, the
    quantity the MAML paper plots. ``per_task_loss`` measures the query error (default: ``loss_fn``).
    """
    _check_params(model, params)
    measure = loss_fn if per_task_loss is None else per_task_loss
    step = grad(task_loss, argnums=1)

    def one_task(xs, ys, xq, yq):
        current, losses = params, []
        for k in range(steps + 1):
            losses.append(measure(functional_call(model, current, (xq,)), yq))
            if k < steps:
                gradients = step(model, current, xs, ys, loss_fn)
                current = {name: p - inner_lr * gradients[name] for name, p in current.items()}
        return torch.stack(losses)

    curves = vmap(one_task)(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)
    return curves.detach()
