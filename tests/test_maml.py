"""MAML, first-order MAML and Reptile in book.maml, checked against independent computations."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

from book.maml import (
    TaskBatch,
    TaskBatchError,
    adapt,
    apply_gradients,
    finetune_curve,
    maml_gradient,
    maml_loss,
    parameters_of,
    reptile_gradient,
    split_support_query,
    task_loss,
)

INNER_LR = 0.1


def tiny_network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1)).double()


def tiny_tasks(tasks=3, shots=4, queries=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    def shape(n, d):
        return (tasks, n, d)

    return TaskBatch(torch.randn(shape(shots, 2), generator=g, dtype=torch.float64),
                     torch.randn(shape(shots, 1), generator=g, dtype=torch.float64),
                     torch.randn(shape(queries, 2), generator=g, dtype=torch.float64),
                     torch.randn(shape(queries, 1), generator=g, dtype=torch.float64))


def explicit_meta_gradient(net, params, tasks, steps, first_order):
    """MAML's meta-gradient with plain autograd: create_graph=True keeps the inner step differentiable."""
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    total = 0.0
    for i in range(tasks.num_tasks):
        current = leaves
        for _ in range(steps):
            loss = F.mse_loss(functional_call(net, current, (tasks.x_support[i],)), tasks.y_support[i])
            grads = torch.autograd.grad(loss, list(current.values()), create_graph=not first_order)
            current = {k: v - INNER_LR * g for (k, v), g in zip(current.items(), grads)}
        total = total + F.mse_loss(functional_call(net, current, (tasks.x_query[i],)), tasks.y_query[i])
    total = total / tasks.num_tasks
    return dict(zip(leaves, torch.autograd.grad(total, list(leaves.values())))), total.detach()


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_explicit_double_backward(steps, first_order):
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    gradients, loss = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=steps,
                                    first_order=first_order)
    expected, expected_loss = explicit_meta_gradient(net, params, tasks, steps, first_order)
    assert_close(loss, expected_loss)
    for name in params:
        assert_close(gradients[name], expected[name])


def test_meta_gradient_matches_finite_differences():
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    gradients, _ = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=2)
    g = torch.Generator().manual_seed(3)
    direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}
    eps = 1e-6
    def shifted(sign):
        return {k: v + sign * eps * direction[k] for k, v in params.items()}

    def loss_at(p):
        return maml_loss(net, p, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=2)

    numeric = (loss_at(shifted(1)) - loss_at(shifted(-1))) / (2 * eps)
    analytic = sum((gradients[k] * direction[k]).sum() for k in params)
    assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_first_order_approaches_second_order_as_the_inner_step_shrinks():
    """The dropped term is -alpha * Hessian * query gradient: it vanishes with alpha."""
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    def flat(d):
        return torch.cat([v.flatten() for v in d.values()])

    gaps = []
    for alpha in (0.02, 0.01):
        second, _ = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=alpha)
        first, _ = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=alpha, first_order=True)
        assert not torch.allclose(flat(first), flat(second))
        gaps.append(float((flat(first) - flat(second)).norm()))
    assert 1.7 < gaps[0] / gaps[1] < 2.3, f"the gap should halve with alpha: {gaps}"


def test_first_order_gradient_is_query_gradient_at_adapted_parameters():
    net, tasks = tiny_network(), tiny_tasks(tasks=1)
    params = parameters_of(net)
    first, _ = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, first_order=True)
    adapted = adapt(net, params, tasks.x_support[0], tasks.y_support[0], loss_fn=F.mse_loss, inner_lr=INNER_LR)
    adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    loss = task_loss(net, adapted, tasks.x_query[0], tasks.y_query[0], F.mse_loss)
    for name, g in zip(adapted, torch.autograd.grad(loss, list(adapted.values()))):
        assert_close(first[name], g)


def test_zero_inner_steps_is_plain_training_on_the_query_set():
    net, tasks = tiny_network(), tiny_tasks(tasks=1)
    params = parameters_of(net)
    gradients, _ = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=0)
    loss = F.mse_loss(net(tasks.x_query[0]), tasks.y_query[0])
    for (name, _), g in zip(net.named_parameters(), torch.autograd.grad(loss, list(net.parameters()))):
        assert_close(gradients[name], g)


def test_reptile_direction_is_the_distance_to_sgd_solutions():
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    direction, _ = reptile_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=3)
    finals = []
    for i in range(tasks.num_tasks):
        x = torch.cat([tasks.x_support[i], tasks.x_query[i]])
        y = torch.cat([tasks.y_support[i], tasks.y_query[i]])
        copy = tiny_network()
        optimizer = torch.optim.SGD(copy.parameters(), lr=INNER_LR)
        for _ in range(3):
            optimizer.zero_grad()
            F.mse_loss(copy(x), y).backward()
            optimizer.step()
        finals.append(dict(copy.named_parameters()))
    for name in params:
        expected = params[name] - torch.stack([f[name].detach() for f in finals]).mean(0)
        assert_close(direction[name], expected)


def test_reptile_with_one_step_is_joint_training():
    """With k=1 Reptile's direction is alpha times the mean gradient: no meta-learning at all."""
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    direction, _ = reptile_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=1)
    x = torch.cat([tasks.x_support, tasks.x_query], dim=1)
    y = torch.cat([tasks.y_support, tasks.y_query], dim=1)
    losses = [F.mse_loss(net(x[i]), y[i]) for i in range(tasks.num_tasks)]
    grads = torch.autograd.grad(torch.stack(losses).mean(), list(net.parameters()))
    for (name, _), g in zip(net.named_parameters(), grads):
        assert_close(direction[name], INNER_LR * g)


@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_agree(first_order):
    net, tasks = tiny_network(), tiny_tasks(tasks=5)
    params = parameters_of(net)
    kwargs = dict(loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=2, first_order=first_order)
    vectorized, loss_v = maml_gradient(net, params, tasks, vectorize=True, **kwargs)
    looped, loss_l = maml_gradient(net, params, tasks, vectorize=False, **kwargs)
    assert_close(loss_v, loss_l)
    for name in params:
        assert_close(vectorized[name], looped[name])
    rv, lv = reptile_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=2, vectorize=True)
    rl, ll = reptile_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=2, vectorize=False)
    assert_close(lv, ll)
    for name in params:
        assert_close(rv[name], rl[name])


def test_finetune_curve_shape_and_first_point():
    net, tasks = tiny_network(), tiny_tasks(tasks=4)
    params = parameters_of(net)
    curves = finetune_curve(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=3)
    assert curves.shape == (4, 4)
    for i in range(4):
        assert_close(curves[i, 0], F.mse_loss(net(tasks.x_query[i]), tasks.y_query[i]).detach())
        adapted = adapt(net, params, tasks.x_support[i], tasks.y_support[i], loss_fn=F.mse_loss,
                        inner_lr=INNER_LR, steps=3)
        assert_close(curves[i, 3], task_loss(net, adapted, tasks.x_query[i], tasks.y_query[i], F.mse_loss))


def test_generic_over_module_and_loss_classification():
    """Any module and loss: a linear classifier with cross-entropy, integer labels."""
    torch.manual_seed(0)
    net = nn.Linear(3, 4)
    g = torch.Generator().manual_seed(0)
    tasks = TaskBatch(torch.randn(2, 5, 3, generator=g), torch.randint(0, 4, (2, 5), generator=g),
                      torch.randn(2, 7, 3, generator=g), torch.randint(0, 4, (2, 7), generator=g))
    gradients, loss = maml_gradient(net, parameters_of(net), tasks, loss_fn=F.cross_entropy, inner_lr=0.5)
    assert gradients["weight"].shape == (4, 3) and loss.shape == ()


def test_meta_training_lowers_the_meta_loss():
    net = tiny_network()
    tasks = tiny_tasks(tasks=4)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        gradients, loss = maml_gradient(net, parameters_of(net), tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR)
        apply_gradients(net, optimizer, gradients)
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0]


def test_mismatched_task_batches_are_rejected():
    x, y = torch.zeros(3, 4, 1), torch.zeros(3, 4, 1)
    with pytest.raises(TaskBatchError, match="task dimension differs"):
        TaskBatch(x, y, torch.zeros(2, 5, 1), torch.zeros(2, 5, 1))
    with pytest.raises(TaskBatchError, match="support set has 4 inputs but 3 targets"):
        TaskBatch(x, torch.zeros(3, 3, 1), x, y)
    with pytest.raises(TaskBatchError, match="query set has 4 inputs but 2 targets"):
        TaskBatch(x, y, x, torch.zeros(3, 2, 1))
    with pytest.raises(TaskBatchError, match="expected \\(tasks, points, ...\\)"):
        TaskBatch(torch.zeros(4), y, x, y)
    with pytest.raises(TaskBatchError, match="K must be at least 1"):
        TaskBatch(torch.zeros(3, 0, 1), torch.zeros(3, 0, 1), x, y)
    assert issubclass(TaskBatchError, ValueError)


def test_split_support_query():
    x, y = torch.arange(10.0)[:, None], torch.arange(10.0)
    xs, ys, xq, yq = split_support_query(x, y, shots=3, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (3, 1) and xq.shape == (7, 1)
    assert set(ys.tolist()).isdisjoint(yq.tolist()) and len(set(ys.tolist()) | set(yq.tolist())) == 10
    with pytest.raises(ValueError, match="K=12 support plus 5 query examples need 17 points, but the task has only 10"):
        split_support_query(x, y, shots=12, queries=5)
    with pytest.raises(ValueError, match="no query example left: K=10 uses all 10"):
        split_support_query(x, y, shots=10)
    with pytest.raises(ValueError, match="at least 1"):
        split_support_query(x, y, shots=0)
    with pytest.raises(ValueError, match="10 inputs but 9 targets"):
        split_support_query(x, y[:9], shots=2)


def test_parameters_that_do_not_fit_the_model_are_rejected():
    net, tasks = tiny_network(), tiny_tasks()
    params = parameters_of(net)
    with pytest.raises(ValueError, match="missing \\['2.bias'\\]"):
        maml_loss(net, {k: v for k, v in params.items() if k != "2.bias"}, tasks, loss_fn=F.mse_loss, inner_lr=0.1)
    with pytest.raises(ValueError, match="parameter 0.weight has shape"):
        maml_loss(net, dict(params, **{"0.weight": torch.zeros(2, 2)}), tasks, loss_fn=F.mse_loss, inner_lr=0.1)
    with pytest.raises(ValueError, match="non-negative"):
        adapt(net, params, tasks.x_support[0], tasks.y_support[0], loss_fn=F.mse_loss, inner_lr=0.1, steps=-1)


def test_maml_on_the_books_gpt_matches_explicit_double_backward():
    """The later MetaGPT chapter relies on this: book.maml on book.model.GPT, full second order.

    CPU's fused attention kernel has no double backward, so second-order MAML uses the math
    kernel; the GPT's input checks are data-dependent, so tasks are looped (vectorize=False).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from book.model import GPT

    torch.manual_seed(0)
    gpt = GPT.from_config(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8).double()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (2, 4, 9), generator=g)
    tasks = TaskBatch(ids[:, :2, :-1], ids[:, :2, 1:], ids[:, 2:, :-1], ids[:, 2:, 1:])

    def lm_loss(output, targets):
        return F.cross_entropy(output[0].flatten(0, 1), targets.flatten())

    params = parameters_of(gpt)
    with sdpa_kernel(SDPBackend.MATH):
        ours, loss = maml_gradient(gpt, params, tasks, loss_fn=lm_loss, inner_lr=0.5, vectorize=False)
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        total = 0.0
        for i in range(tasks.num_tasks):
            support = lm_loss(functional_call(gpt, leaves, (tasks.x_support[i],)), tasks.y_support[i])
            inner = torch.autograd.grad(support, list(leaves.values()), create_graph=True)
            adapted = {k: v - 0.5 * gi for (k, v), gi in zip(leaves.items(), inner)}
            total = total + lm_loss(functional_call(gpt, adapted, (tasks.x_query[i],)), tasks.y_query[i])
        expected = torch.autograd.grad(total / tasks.num_tasks, list(leaves.values()))
    assert_close(loss, (total / tasks.num_tasks).detach())
    for name, e in zip(leaves, expected):
        assert_close(ours[name], e)


@pytest.mark.parametrize("support_weight", [0.0, 0.5])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_autograd_and_func_engines_agree(first_order, steps, support_weight):
    net, tasks = tiny_network(), tiny_tasks(tasks=4)
    params = parameters_of(net)
    kwargs = dict(loss_fn=F.mse_loss, inner_lr=INNER_LR, steps=steps, first_order=first_order,
                  support_weight=support_weight)
    functional, loss_f = maml_gradient(net, params, tasks, engine="func", **kwargs)
    looped, loss_a = maml_gradient(net, params, tasks, engine="autograd", **kwargs)
    assert_close(loss_a, loss_f)
    for name in params:
        assert_close(looped[name], functional[name])


def test_autograd_engine_on_the_books_gpt_matches_the_func_engine():
    from book.model import GPT

    torch.manual_seed(0)
    gpt = GPT.from_config(vocab_size=11, context_length=8, n_layer=2, n_head=2, d_model=8).double()
    ids = torch.randint(0, 11, (3, 4, 9), generator=torch.Generator().manual_seed(0))
    tasks = TaskBatch(ids[:, :2, :-1], ids[:, :2, 1:], ids[:, 2:, :-1], ids[:, 2:, 1:])

    def lm_loss(output, targets):
        return F.cross_entropy(output[0].flatten(0, 1), targets.flatten())

    params = parameters_of(gpt)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):
        reference, _ = maml_gradient(gpt, params, tasks, loss_fn=lm_loss, inner_lr=0.5, vectorize=False)
    ours, _ = maml_gradient(gpt, params, tasks, loss_fn=lm_loss, inner_lr=0.5, engine="autograd")
    for name in params:
        assert_close(ours[name], reference[name])


def test_unknown_engine_is_rejected():
    net, tasks = tiny_network(), tiny_tasks()
    with pytest.raises(ValueError, match="unknown engine 'jax'"):
        maml_gradient(net, parameters_of(net), tasks, loss_fn=F.mse_loss, inner_lr=0.1, engine="jax")


@pytest.mark.parametrize("first_order", [False, True])
def test_support_weight_adds_the_gradient_of_the_support_loss_before_adaptation(first_order):
    net, tasks = tiny_network(), tiny_tasks(tasks=4)
    params = parameters_of(net)
    plain, plain_loss = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR,
                                      first_order=first_order)
    functional, loss_f = maml_gradient(net, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR,
                                       first_order=first_order, support_weight=0.5)

    def support_loss(p):
        return torch.stack([task_loss(net, p, tasks.x_support[i], tasks.y_support[i], F.mse_loss)
                            for i in range(tasks.num_tasks)]).mean()

    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    support_gradients = dict(zip(leaves, torch.autograd.grad(support_loss(leaves), list(leaves.values()))))
    assert_close(loss_f, plain_loss + 0.5 * support_loss(params))
    for name in params:
        assert_close(functional[name], plain[name] + 0.5 * support_gradients[name])


def test_support_weight_needs_an_inner_step():
    net, tasks = tiny_network(), tiny_tasks()
    with pytest.raises(ValueError, match="at least one inner step"):
        maml_gradient(net, parameters_of(net), tasks, loss_fn=F.mse_loss, inner_lr=0.1, steps=0, support_weight=1.0)
