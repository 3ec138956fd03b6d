"""The config section of every in-tree agent: pydantic models, no torch.

Each agent reads one section of the trial config (``sac.*``, ``ppo.*``, ``world_model.*``, ...)
validated by its ``Config`` model. The models live here, not in the algorithm modules, so a trial
config (``agent.config.build_config``), a sweep file (``sweep validate``) and ``sweep keys`` are
checked without importing torch: this module imports pydantic and the torch-free name tables of
the registries it checks against (``agent.common.activations``). Each algorithm module imports
its model by name at the top (``from agent.sections import SACConfig``) and sets it as its
class's ``Config``; ``agent/registry.py`` declares which agent reads which sections.

A user agent may define its config wherever it likes (it is registered eagerly, see
``agent/registry.py``); keeping it free of torch keeps that agent's configs fast to validate.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.common.activations import Activation

#: the return estimators of agent.common.returns.estimate (model-based agents' return_estimator)
ReturnEstimator = Literal["lambda_return", "gae", "td0", "monte_carlo"]


# --- model-free agents ---------------------------------------------------------------------------


class SACConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field([256, 256], min_length=1)
    activation: Activation = "relu"
    layer_norm: bool = False
    lr: float = Field(3e-4, gt=0)
    critic_lr: float | None = Field(None, gt=0, description="defaults to lr")
    gamma: float = Field(0.99, gt=0, le=1)
    tau: float = Field(0.005, gt=0, le=1)
    batch_size: int = Field(256, gt=0)
    buffer_size: int = Field(1_000_000, gt=0)
    learning_starts: int = Field(1_000, ge=0)
    utd: int = Field(1, ge=1, description="gradient updates per env step")
    alpha: float | Literal["auto"] = "auto"
    init_alpha: float = Field(1.0, gt=0)
    target_entropy: float | None = Field(None, description="defaults to -action_dim")
    warmup: Literal["policy", "uniform"] = "policy"
    actor_step: Literal["joint", "after_critic"] = Field(
        "joint",
        description="joint: one Adam step on all three losses, which all see the "
        "networks from before it (the SAC authors' code); after_critic: the critic steps "
        "first and the actor and temperature losses see the updated critic (SB3, CleanRL); "
        "uses the autograd update",
    )
    bf16: bool = Field(
        False,
        description="hidden-to-hidden matmuls of the update in bfloat16 "
        "(first layers, heads, losses and gradients stay float32); faster on CPUs "
        "with AMX/AVX512-BF16, much slower without. Acting stays float32",
    )
    manual_grad: bool = Field(
        True,
        description="hand-written backward pass of the update "
        "(same maths as autograd, ~1.3x faster update on CPU); used "
        "when the nets are plain MLPs (no layer_norm)",
    )


class PPOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field([64, 64], min_length=1)
    activation: Activation = "tanh"
    layer_norm: bool = False
    state_dependent_std: bool = False
    num_envs: int = Field(4, gt=0, description="parallel envs (gymnasium.vector.SyncVectorEnv)")
    n_steps: int = Field(1024, gt=0, description="steps per env per rollout")
    minibatch_size: int = Field(64, gt=0)
    epochs: int = Field(10, gt=0)
    lr: float = Field(3e-4, gt=0)
    anneal_lr: bool = Field(False, description="decay lr linearly to 0 at total_steps")
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip: float = Field(0.2, gt=0)
    value_clip: float | None = Field(None, gt=0, description="clip V around V_old (None: off)")
    ent_coef: float = Field(0.0, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    target_kl: float | None = Field(None, gt=0, description="stop the epochs above this KL")
    normalize_advantages: bool = True
    normalize_obs: bool = True
    normalize_reward: bool = True

    @field_validator("minibatch_size")
    @classmethod
    def _batch_fits(cls, v: int, info: ValidationInfo) -> int:
        rollout = info.data.get("num_envs", 1) * info.data.get("n_steps", 1)
        if v > rollout:
            raise ValueError(f"{v} exceeds the rollout (num_envs * n_steps = {rollout})")
        return v


class TD3Config(BaseModel):
    """The ``td3.*`` section. Defaults: the tuned Pendulum-v1 settings (10k-step bar)."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field([256, 256], min_length=1, description="actor and critic widths")
    activation: Activation = Field("relu", description="hidden activation (agent.common.networks)")
    layer_norm: bool = Field(False, description="LayerNorm after every hidden layer")
    actor_lr: float = Field(1e-3, gt=0, description="Adam step size of the actor")
    critic_lr: float = Field(1e-3, gt=0, description="Adam step size of the twin critic")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of both target networks")
    batch_size: int = Field(256, gt=0, description="replay batch per update")
    buffer_size: int = Field(1_000_000, gt=0, description="replay capacity (transitions)")
    learning_starts: int = Field(
        1_000,
        ge=0,
        description="env steps before the first update; "
        "uniform random actions until then (warmup: uniform)",
    )
    warmup: Literal["uniform", "policy"] = Field(
        "uniform",
        description="actions during learning_starts: uniform random (the paper, SB3) "
        "or the initial policy plus exploration noise",
    )
    utd: int = Field(1, ge=1, description="critic updates per env step")
    policy_delay: int = Field(2, ge=1, description="critic updates per actor (and target) update")
    exploration_noise: float = Field(
        0.1,
        ge=0,
        description="std of the Gaussian added to the "
        "actor's action when acting, in units of the [-1, 1] box",
    )
    target_noise: float = Field(0.2, ge=0, description="std of the target policy smoothing noise")
    target_noise_clip: float = Field(
        0.5, ge=0, description="the smoothing noise is clipped to [-c, c]"
    )

    @field_validator("target_noise_clip")
    @classmethod
    def _clip_with_noise(cls, v: float, info: ValidationInfo) -> float:
        if v == 0 and info.data.get("target_noise", 0) > 0:
            raise ValueError(
                "0 removes the target smoothing noise; set target_noise: 0 to turn smoothing off"
            )
        return v


# --- the world model and the model-based agents -----------------------------------------------


class WorldModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # model
    deter: int = Field(200, gt=0, description="GRU state size")
    stoch: int = Field(30, gt=0, description="Gaussian latent size, or number of categoricals")
    discrete: int = Field(0, ge=0, description="0: Gaussian latent; C: categoricals of C classes")
    hidden: int = Field(200, gt=0, description="width of every MLP layer")
    layers: int = Field(2, ge=1, description="hidden layers of the encoder and of each head")
    activation: Activation = Field("elu", description="activation registry name")
    min_std: float = Field(0.1, gt=0, description="floor of the Gaussian latent's std")
    unimix: float = Field(0.01, ge=0, lt=1, description="uniform mix of categorical latents")
    symlog: bool = Field(False, description="symlog observations and proprio targets")
    depth: int = Field(
        16,
        gt=0,
        description="pixels: channels of the first conv layer (doubling "
        "per layer; Dreamer: 32, DreamerV3: 96)",
    )
    channels_last: bool = Field(False, description="pixels: NHWC conv activations")
    proprio: list[str] = Field(
        default_factory=list,
        description="proprio targets to predict (of the env entry's: joint_pos, joint_vel, "
        "ee_pos, ee_vel); [] reads none",
    )
    # loss
    kl_balance: float = Field(0.8, ge=0, le=1, description="share of the KL that trains the prior")
    free_nats: float = Field(1.0, ge=0)
    obs_weight: float = Field(1.0, ge=0)
    reward_weight: float = Field(1.0, ge=0)
    continue_weight: float = Field(1.0, ge=0)
    kl_weight: float = Field(1.0, ge=0)
    proprio_weight: float = Field(1.0, ge=0, description="weight of each proprio head's loss")
    # optimisation
    lr: float = Field(6e-4, gt=0)
    adam_eps: float = Field(1e-5, gt=0)
    grad_clip: float = Field(100.0, gt=0)
    batch_size: int = Field(16, gt=0)
    seq_len: int = Field(50, gt=1)
    # data and schedule
    policy: Literal["random", "mixed"] = Field(
        "random",
        description="data-collecting policy: random (uniform), or mixed (per episode "
        "one of uniform, a held constant action, a sine gait, a smoothed random walk; see "
        "WorldModelAgent.explore_action). Either depends only on the seed: every arm of a "
        "seed sees the same data",
    )
    prefill: int = Field(1000, ge=0, description="env steps before the first update")
    train_every: int = Field(5, ge=1, description="env steps between rounds of updates")
    updates: int = Field(1, ge=1, description="model updates per round")
    buffer_size: int = Field(1_000_000, gt=0)
    # evaluation
    holdout_every: int = Field(5, ge=2, description="episodes 0, k, 2k, ... are held out")
    eval_horizons: list[int] = Field([1, 5, 15], min_length=1)
    eval_batch: int = Field(32, gt=0, description="held-out sequences per evaluation")
    probe: bool | None = Field(
        None,
        description="report model/probe/* (ridge R^2 of the true "
        "body state; the replay then stores every body quantity); None: "
        "with pixels only (on states the body is nearly the input)",
    )
    probe_sequences: int = Field(
        32,
        gt=0,
        description="held-out sequences to fit the probe on (and as many others to score it on)",
    )
    # the default stays 1.0 so stored sweeps resume unchanged (a changed default is a changed
    # config); cv is what proprio_pixels.yaml uses and what a new probe should use
    probe_alpha: Annotated[float, Field(gt=0)] | Literal["cv"] = Field(
        1.0,
        description="ridge penalty on standardised features; cv: chosen by 5-fold "
        "cross-validation within the fit set (agent.common.probe.cv_alpha), recommended",
    )

    @field_validator("proprio")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"repeated proprio targets in {v}")
        return v

    @field_validator("eval_horizons")
    @classmethod
    def _horizons_fit(cls, v: list[int], info: ValidationInfo) -> list[int]:
        seq_len = info.data.get("seq_len", 2)
        if min(v) < 1 or max(v) >= seq_len:
            raise ValueError(f"horizons must lie in [1, seq_len {seq_len}), got {v}")
        return v

    @model_validator(mode="after")
    def _default_horizons_fit(self) -> WorldModelConfig:
        """The default horizons shortened to the ones a short ``seq_len`` allows, so the config
        written to config.json (every field spelled out) validates again on resume."""
        if "eval_horizons" not in self.model_fields_set:
            self.__dict__["eval_horizons"] = [h for h in self.eval_horizons if h < self.seq_len]
        return self


class ModelBasedConfig(BaseModel):
    """Knobs every model-based agent has; subclasses add their own (and may change defaults)."""

    model_config = ConfigDict(extra="forbid")

    prefill: int = Field(1000, ge=0, description="real steps with uniform random actions first")
    explore_steps: int = Field(100, gt=0, description="real steps per round")
    model_updates: int = Field(50, ge=0, description="world-model updates per round")
    imagine_horizon: int = Field(15, gt=0, description="imagined steps from each start state")
    return_estimator: ReturnEstimator = Field(
        "lambda_return",
        description="agent.common.returns.estimate: lambda_return, gae, td0, monte_carlo",
    )
    gamma: float = Field(0.99, gt=0, le=1)
    lam: float = Field(0.95, ge=0, le=1, description="lambda of lambda_return and gae")
    hidden: list[int] = Field([128, 128], min_length=1, description="behaviour nets' widths")
    activation: Activation = Field("elu", description="behaviour nets' activation")
    buffer_size: int = Field(1_000_000, gt=0, description="real steps the replay keeps")


class DreamerConfig(ModelBasedConfig):
    hidden: list[int] = Field([64, 64], min_length=1, description="actor and critic MLPs")
    behaviour_updates: int = Field(25, ge=1, description="actor-critic updates per round")
    start_sequences: int = Field(16, gt=0, description="replayed sequences encoded per round")
    start_length: int = Field(32, gt=0, description="their length (start states: the product)")
    imagine_batch: int = Field(256, gt=0, description="start states per update")
    actor_grad: Literal["dynamics", "reinforce"] = "dynamics"
    entropy_coef: float = Field(1e-3, ge=0, description="eta: weight of the entropy bonus")
    actor_lr: float = Field(3e-4, gt=0)
    critic_lr: float = Field(3e-4, gt=0)
    adam_eps: float = Field(1e-5, gt=0)
    grad_clip: float = Field(100.0, gt=0)
    target_tau: float = Field(0.02, gt=0, le=1, description="slow critic: V' <- lerp(V', V, tau)")
    target_every: int = Field(1, ge=1, description="behaviour updates between slow updates")
    return_norm: bool = Field(True, description="divide advantages by S (else S = 1)")
    norm_low: float = Field(0.05, ge=0, lt=1, description="lower percentile of the range")
    norm_high: float = Field(0.95, gt=0, le=1, description="upper percentile of the range")
    norm_decay: float = Field(0.99, ge=0, lt=1, description="EMA decay of the percentiles")
    norm_limit: float = Field(1.0, gt=0, description="S = max(limit, range)")
    log_std_min: float = Field(-5.0, description="floor of the policy's log-std")

    @field_validator("norm_high")
    @classmethod
    def _ordered(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("norm_low", 0.0)
        if v <= low:
            raise ValueError(f"norm_high {v} must exceed norm_low {low}")
        return v


class MBPPOConfig(ModelBasedConfig):
    prefill: int = Field(500, ge=0, description="real steps with uniform random actions first")
    model_updates: int = Field(50, ge=0, description="world-model updates per round")
    gamma: float = Field(0.95, gt=0, le=1)
    num_sequences: int = Field(32, gt=0, description="replayed sequences encoded per round")
    sequence_length: int = Field(
        32,
        gt=0,
        description="their length: S = num_sequences x sequence_length start states per round",
    )
    updates_per_iteration: int = Field(16, gt=0, description="minibatch updates per round")
    minibatch_size: int = Field(256, gt=0, description="start states imagined per update")
    epochs: int = Field(1, gt=0, description="gradient steps on each imagined batch")
    return_estimator: ReturnEstimator = Field("gae", description="see ModelBasedConfig")
    clip: float = Field(0.2, gt=0)
    ent_coef: float = Field(1e-2, ge=0)
    actor_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    max_grad_norm: float = Field(10.0, gt=0, description="per network")
    normalize_advantages: bool = True

    @field_validator("minibatch_size")
    @classmethod
    def _fits(cls, v: int, info: ValidationInfo) -> int:
        states = info.data.get("num_sequences", 1) * info.data.get("sequence_length", 1)
        if v > states:
            raise ValueError(
                f"{v} exceeds the start states per round (num_sequences x "
                f"sequence_length = {states})"
            )
        return v


class MBSACConfig(ModelBasedConfig):
    hidden: list[int] = Field([128, 128], min_length=1, description="actor and critic MLPs")
    activation: Activation = "relu"
    imagine_horizon: int = Field(5, gt=0, description="imagined steps from each start state")
    real_ratio: float = Field(0.1, ge=0, le=1, description="share of real transitions per batch")
    sac_updates: int = Field(100, ge=1, description="SAC updates per round")
    start_sequences: int = Field(16, gt=0, description="replayed sequences encoded per round")
    start_length: int = Field(32, gt=1, description="their length")
    batch_size: int = Field(256, gt=0)
    lr: float = Field(3e-4, gt=0)
    critic_lr: float | None = Field(None, gt=0, description="defaults to lr")
    tau: float = Field(0.005, gt=0, le=1)
    alpha: float | Literal["auto"] = "auto"
    init_alpha: float = Field(1.0, gt=0)
    target_entropy: float | None = Field(None, description="defaults to -action_dim")
