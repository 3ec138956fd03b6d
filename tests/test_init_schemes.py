"""Init schemes, scenarios and apply_init: the statistics each scheme promises."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch

import init_schemes
from agent.common.networks import GaussianActor, RoleLinear, SquashedGaussianActor, mlp
from init_schemes import InitConfig, RegistryError, apply_init, gain_value, resolve, schemes

N = 512


def _theory(name: str, gain: float, scale: float, fan_in: int, fan_out: int):
    """(expected std, bound or None) of a weight drawn by ``name``."""
    u = 1.0 / math.sqrt(fan_in)
    return {
        "pytorch_default": (u / math.sqrt(3), u),
        "fanin": (u / math.sqrt(3), u),
        "orthogonal": (gain / math.sqrt(fan_in), None),
        "kaiming": (gain / math.sqrt(fan_in), None),
        "kaiming_normal": (gain / math.sqrt(fan_in), None),
        "kaiming_uniform": (gain / math.sqrt(fan_in), gain * math.sqrt(3 / fan_in)),
        "xavier": (
            gain * math.sqrt(2 / (fan_in + fan_out)),
            gain * math.sqrt(6 / (fan_in + fan_out)),
        ),
        "xavier_normal": (gain * math.sqrt(2 / (fan_in + fan_out)), None),
        "small_uniform": (scale / math.sqrt(3), scale),
        "zeros": (0.0, None),
    }[name]


BUILTIN = [
    "pytorch_default",
    "fanin",
    "orthogonal",
    "kaiming",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier",
    "xavier_normal",
    "small_uniform",
    "zeros",
]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_scheme_statistics(name):
    w = torch.empty(N, N)
    gain, scale = gain_value("relu", "linear"), 3e-3
    schemes.get(name).fn(w, fan_in=N, fan_out=N, gain=gain, scale=scale)
    std, bound = _theory(name, gain, scale, N, N)
    if std == 0:
        assert torch.count_nonzero(w) == 0
    else:
        assert abs(w.std().item() / std - 1) < 0.05, (w.std().item(), std)
        assert abs(w.mean().item()) < 0.05 * std
    if bound is not None:
        assert w.abs().max().item() <= bound + 1e-7
        assert w.abs().max().item() > 0.95 * bound  # actually uses the range


@pytest.mark.parametrize("name", schemes.names())
def test_every_registered_scheme_fills_the_tensor_finitely(name):
    w = torch.full((64, 32), float("nan"))
    schemes.get(name).fn(w, fan_in=32, fan_out=64, gain=1.0, scale=1e-3)
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("gain_name", ["relu", "tanh", "linear"])
def test_orthogonal_is_orthogonal_times_gain(gain_name):
    g = gain_value(gain_name, "relu")
    w = torch.empty(N, N)
    schemes.get("orthogonal").fn(w, fan_in=N, fan_out=N, gain=g, scale=0)
    assert torch.allclose(w @ w.T, g**2 * torch.eye(N), atol=1e-4)


def test_gains():
    assert gain_value("auto", "relu") == pytest.approx(math.sqrt(2))
    assert gain_value("auto", "elu") == gain_value("relu", "tanh")  # ELU borrows ReLU's gain
    assert gain_value("tanh", "relu") == pytest.approx(5 / 3)
    assert gain_value(0.5, "relu") == 0.5
    with pytest.raises(RegistryError, match="unknown gain 'softsign'"):
        gain_value("softsign", "relu")


def _layers(module):
    return {name: m for name, m in module.named_modules() if hasattr(m, "role")}


SMALL = {  # scenario -> output roles that must stay small
    "small_outputs": {"policy_mean", "policy_std", "q"},
    "small_critic_std": {"policy_std", "q"},
    "small_std": {"policy_std"},
    "small_mean_critic": {"policy_mean", "q"},
    "no_small": set(),
}


@pytest.mark.parametrize("scenario", sorted(SMALL))
@pytest.mark.parametrize("scheme", ["fanin", "orthogonal", "kaiming"])
def test_scenarios_put_the_right_init_on_each_output_layer(scheme, scenario):
    actor = SquashedGaussianActor(3, 2, [256, 256], "relu")
    critic = mlp(5, [256, 256], 1, "relu", out_role="q", ensemble=2)
    cfg = InitConfig(scheme=scheme, scenario=scenario, small_scale=1e-3)
    records = apply_init(actor, cfg) + apply_init(critic, cfg)
    by_role = {}
    for r in records:
        by_role.setdefault(r["role"], set()).add(r["scheme"])
    for role in ("policy_mean", "policy_std", "q"):
        expected = "small_uniform" if role in SMALL[scenario] else scheme
        assert by_role[role] == {expected}
    assert by_role["hidden"] == {scheme}
    # and the weights really have it (no default init ran afterwards)
    for mod in [*_layers(actor).values(), *_layers(critic).values()]:
        w = mod.weight
        if mod.role in SMALL[scenario]:
            assert w.abs().max() <= 1e-3 and mod.bias.abs().max() <= 1e-3
        else:
            assert w.abs().max() > 1e-2
            fan_in = w.shape[-1]
            if scheme == "kaiming" and mod.role == "hidden":
                assert abs(w.std().item() * math.sqrt(fan_in) / math.sqrt(2) - 1) < 0.1


def test_ensemble_members_are_initialised_independently():
    critic = mlp(4, [128], 1, "relu", out_role="q", ensemble=2)
    apply_init(critic, InitConfig(scheme="orthogonal", scenario="no_small"))
    w = critic[0].weight  # [2, 128, 4]
    assert not torch.allclose(w[0], w[1])
    for member in w:  # each member is orthogonal on its own (columns orthonormal * gain)
        assert torch.allclose(member.T @ member, 2.0 * torch.eye(4), atol=1e-4)


def test_per_role_gain_and_scheme_overrides():
    actor = SquashedGaussianActor(3, 1, [64, 64], "relu")
    cfg = InitConfig(
        scheme="orthogonal",
        scenario="no_small",
        gains={"policy_mean": "tanh", "hidden": 1.0},
        roles={"policy_std": "zeros"},
    )
    recs = {r["role"]: r for r in apply_init(actor, cfg)}
    assert recs["policy_mean"]["gain"] == pytest.approx(5 / 3)
    assert recs["hidden"]["gain"] == 1.0
    assert recs["policy_std"]["scheme"] == "zeros"
    assert torch.count_nonzero(actor.log_std.weight) == 0
    # policy mean weights: orthogonal rows scaled by 5/3 -> each row has norm 5/3
    assert torch.allclose(actor.mean.weight.norm(dim=1), torch.tensor([5 / 3]), atol=1e-4)


def test_default_gain_follows_each_layers_activation():
    actor = SquashedGaussianActor(3, 1, [64], "elu")
    recs = {
        r["role"]: r
        for r in apply_init(actor, InitConfig(scheme="orthogonal", scenario="no_small"))
    }
    assert recs["hidden"]["gain"] == pytest.approx(math.sqrt(2))  # elu -> relu's gain
    assert recs["policy_mean"]["gain"] == pytest.approx(5 / 3)  # tanh squash follows
    assert recs["policy_std"]["gain"] == pytest.approx(1.0)  # linear


def test_state_independent_log_std_takes_the_configured_value():
    actor = GaussianActor(3, 2, [32], "tanh")
    recs = apply_init(actor, InitConfig(log_std=-0.5))
    assert torch.allclose(actor.log_std.log_std, torch.full((2,), -0.5))
    assert {r["role"]: r["scheme"] for r in recs}["policy_std"] == "constant"


def test_bias_rules():
    assert resolve(InitConfig(scheme="orthogonal", scenario="no_small"), "q").bias == "zeros"
    assert resolve(InitConfig(scheme="pytorch_default"), "hidden").bias == "pytorch_default"
    assert resolve(InitConfig(), "q").bias == "small_uniform"
    assert resolve(InitConfig(bias="zeros"), "q").bias == "zeros"


def test_untagged_layer_is_an_error():
    net = torch.nn.Sequential(RoleLinear(3, 4, "hidden"), torch.nn.Linear(4, 1))
    with pytest.raises(RegistryError, match="has no role"):
        apply_init(net, InitConfig())


@pytest.mark.parametrize(
    "field,value,msg",
    [
        ("scheme", "orthogonl", "did you mean 'orthogonal'"),
        ("scenario", "small_stdd", "did you mean 'small_std'"),
        ("gains", {"polcy_mean": "tanh"}, "unknown layer role 'polcy_mean'"),
        ("gains", {"policy_mean": "tanhh"}, "unknown gain 'tanhh'"),
        ("roles", {"q": "kaimin"}, "unknown init scheme 'kaimin'"),
    ],
)
def test_unknown_names_give_one_line_errors_listing_valid_names(field, value, msg):
    with pytest.raises(ValueError) as info:
        InitConfig(**{field: value})
    text = str(info.value)
    assert msg in text and "known:" in text


def test_registering_twice_is_an_error():
    with pytest.raises(RegistryError, match="already registered"):
        init_schemes.register("orthogonal")(lambda t, **_: None)


def test_a_module_outside_the_package_registers_a_usable_scheme(tmp_path):
    (tmp_path / "my_inits.py").write_text(
        textwrap.dedent("""
        import torch
        import init_schemes

        @init_schemes.register("constant_half", "every weight 0.5", uses_gain=False)
        def constant_half(tensor, *, fan_in, fan_out, gain, scale):
            torch.nn.init.constant_(tensor, 0.5)
    """)
    )
    code = textwrap.dedent("""
        import torch
        import init_schemes
        from sweeps.cli import import_user_modules
        from agent import build_config
        from agent.sac import SAC
        import_user_modules(["my_inits"])
        cfg = build_config({"agent": "sac", "init.scheme": "constant_half",
                            "init.scenario": "small_std", "total_steps": 100})
        agent = SAC(cfg)
        agent.initialise()
        assert torch.all(agent.actor.mean.weight == 0.5)
        assert agent.actor.log_std.weight.abs().max() <= 3e-3
        print("ok")
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    listed = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "--import", "my_inits", "list", "inits"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "constant_half" in listed.stdout and "every weight 0.5" in listed.stdout
