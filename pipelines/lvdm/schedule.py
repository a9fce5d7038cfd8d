"""LVDM diffusion schedules: the training schedule of the official `ddpm3d` models and the DDIM step schedules.

All three official repositories (VideoCrafter, DynamiCrafter, Make-Your-Video) train on the latent-diffusion
"linear" schedule: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2, built and accumulated in float64, then
registered as float32 buffers. DynamiCrafter 512/1024 rescale the betas to zero terminal SNR
(Lin et al. 2023, Algorithm 1), so alphas_cumprod[999] == 0 exactly.

Two checkpoints also scale the clean latent during training, x0 -> scale_arr[t] * x0, with
scale_arr = cat(linspace(1, base, 400), full(1000, base)) (length 1400, indexed by t < 1000):
DynamiCrafter `use_dynamic_rescale` (base_scale) and VideoCrafter2 `use_scale` (scale_b). The DDIM sampler
undoes it; the two repositories hold the "previous" scale differently (see `DDIMSchedule`).

The DDIM schedule reproduces the attributes of the official `DDIMSampler.make_schedule`, including the values'
precision: the sampler reads the float32 model buffers, so every DDIM quantity is computed from float32
alphas_cumprod values (the official code mixes float32 tensors and float64 numpy arrays; each quantity here is
computed at the precision the official expression ends up using).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
LINEAR_START = 0.00085
LINEAR_END = 0.012
SCALE_TURNING_STEP = 400   # DynamiCrafter turning_step / VideoCrafter mid_step (official defaults, never overridden)
SPACINGS = ("uniform", "uniform_trailing")
SCALE_KINDS = ("none", "dynamicrafter", "videocrafter")


def linear_betas(num_timesteps: int = NUM_TRAIN_TIMESTEPS, linear_start: float = LINEAR_START,
                 linear_end: float = LINEAR_END) -> torch.Tensor:
    """The latent-diffusion 'linear' schedule (linear in sqrt(beta)), float64."""
    return torch.linspace(linear_start ** 0.5, linear_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alphas_cumprod) so the last step has zero SNR and the first keeps its value (float64)."""
    betas = betas.to(torch.float64)
    sqrt_ac = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ac[0].clone(), sqrt_ac[-1].clone()
    sqrt_ac = (sqrt_ac - last) * (first / (first - last))
    ac = sqrt_ac ** 2
    alphas = torch.cat([ac[:1], ac[1:] / ac[:-1]])
    return 1.0 - alphas


def make_scale_arr(base: float, num_timesteps: int = NUM_TRAIN_TIMESTEPS,
                   turning_step: int = SCALE_TURNING_STEP) -> torch.Tensor:
    """Latent scale per timestep: a ramp 1 -> base over `turning_step` entries, then `num_timesteps` entries of base.

    Both official repositories concatenate the full-length tail (length 1400 for 1000 steps; VideoCrafter calls it
    a bug and keeps it by default); only indices < 1000 are ever read. float64 -> stored float32 like the buffer.
    """
    ramp = torch.linspace(1.0, base, turning_step, dtype=torch.float64)
    return torch.cat([ramp, torch.full((num_timesteps,), base, dtype=torch.float64)]).to(torch.float32)


@dataclasses.dataclass
class TrainingSchedule:
    """The buffers the official `DDPM.register_schedule` / `LatentDiffusion.__init__` register (float32)."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    parameterization: str = "eps"              # "eps" | "v"
    scale_kind: str = "none"                   # "none" | "dynamicrafter" | "videocrafter"
    scale_arr: torch.Tensor | None = None   # float32 [1400] when scale_kind != "none"

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @classmethod
    def make(cls, zero_terminal_snr: bool = False, parameterization: str = "eps", scale_kind: str = "none",
             base_scale: float = 0.7, num_timesteps: int = NUM_TRAIN_TIMESTEPS, linear_start: float = LINEAR_START,
             linear_end: float = LINEAR_END) -> TrainingSchedule:
        if parameterization not in ("eps", "v"):
            raise ValueError(f"parameterization must be 'eps' or 'v', not {parameterization!r}")
        if scale_kind not in SCALE_KINDS:
            raise ValueError(f"scale_kind must be one of {SCALE_KINDS}, not {scale_kind!r}")
        betas = linear_betas(num_timesteps, linear_start, linear_end)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        ac = torch.cumprod(1.0 - betas, dim=0)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        f32 = torch.float32
        return cls(betas=betas.to(f32), alphas_cumprod=ac.to(f32), alphas_cumprod_prev=ac_prev.to(f32),
                   sqrt_alphas_cumprod=ac.sqrt().to(f32), sqrt_one_minus_alphas_cumprod=(1.0 - ac).sqrt().to(f32),
                   parameterization=parameterization, scale_kind=scale_kind,
                   scale_arr=None if scale_kind == "none" else make_scale_arr(base_scale, num_timesteps))

    @classmethod
    def for_variant(cls, variant) -> TrainingSchedule:
        """The schedule of a `config.Variant` (parameterization, zero_terminal_snr, scale_kind, base_scale)."""
        return cls.make(zero_terminal_snr=variant.zero_terminal_snr, parameterization=variant.parameterization,
                        scale_kind=variant.scale_kind, base_scale=variant.base_scale)


def ddim_timesteps(steps: int, spacing: str = "uniform", num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
                   ) -> torch.Tensor:
    """Ascending int64 DDIM timesteps as the official `make_ddim_timesteps`.

    'uniform': range(0, N, N // S) + 1 (1, 21, ..., 981 for S=50; the last step never reaches 999).
    'uniform_trailing': flip(round(arange(N, 0, -N/S))) - 1 (19, ..., 999), which starts at the last timestep.
    """
    if steps < 1 or steps > num_train_timesteps:
        raise ValueError(f"DDIM steps must be in 1..{num_train_timesteps}, got {steps}")
    if spacing == "uniform":
        c = num_train_timesteps // steps
        ts = torch.arange(0, num_train_timesteps, c, dtype=torch.int64) + 1
    elif spacing == "uniform_trailing":
        c = num_train_timesteps / steps
        # numpy's float-step arange and round-half-to-even, exactly as the official expression
        ts = torch.from_numpy(np.flip(np.round(np.arange(num_train_timesteps, 0, -c))).astype(np.int64) - 1)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")
    return ts


def check_official_steps(steps: int, spacing: str, num_timesteps: int = NUM_TRAIN_TIMESTEPS, what: str = "") -> None:
    """Refuse step counts whose official timesteps reach past the last training step: 'uniform' spacing
    (range(0, N, N // S) + 1) ends at timestep N when N // S divides N - 1 (e.g. 3 or 9 steps of 1000), where the
    official sampler fails with an index error. The message suggests the nearest step count that works."""
    def ok(n: int) -> bool:
        return int(ddim_timesteps(n, spacing, num_timesteps).max()) < num_timesteps

    if ok(int(steps)):
        return
    near = [n for n in range(max(1, steps - 10), steps + 11) if ok(n)]
    best = min(near, key=lambda n: (abs(n - steps), -n)) if near else 50
    raise ValueError(f"{what or 'the model'} samples with the official '{spacing}' DDIM timesteps, which reach past "
                     f"the last training step for {steps} steps (the official sampler fails there too); use e.g. "
                     f"{best} steps")


@dataclasses.dataclass
class DDIMSchedule:
    """The per-step DDIM quantities of the official `DDIMSampler.make_schedule`, index i = i-th ascending timestep.

    Sampling runs i = S-1 ... 0. `alphas_prev[i]` is alphas_cumprod of timesteps[i-1], and alphas_cumprod[0] (not 1)
    for i = 0. `scale` / `scale_prev` exist when the training schedule has a scale_arr:
    DynamiCrafter: scale_prev[0] = scale[0] (the last step's ratio is 1);
    VideoCrafter: scale_prev[0] = scale_arr[0] = 1.
    Stored float64 (timesteps int64); values carry the official precision (see module docstring).
    """

    timesteps: torch.Tensor
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    sqrt_one_minus_alphas: torch.Tensor
    eta: float
    spacing: str
    train: TrainingSchedule
    scale: torch.Tensor | None = None
    scale_prev: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    @classmethod
    def make(cls, train: TrainingSchedule, steps: int, spacing: str = "uniform", eta: float = 0.0) -> DDIMSchedule:
        ts = ddim_timesteps(steps, spacing, train.num_timesteps)
        ac32 = train.alphas_cumprod                      # the float32 buffer the official sampler reads
        a32 = ac32[ts]
        a_prev32 = torch.cat([ac32[:1], ac32[ts[:-1]]])
        f64 = torch.float64
        alphas, alphas_prev = a32.to(f64), a_prev32.to(f64)
        # Bit-exact with the official mixed numpy/torch expressions: `1 - alphas` is a float32 tensor; numpy-array /
        # tensor runs as tensor.reciprocal() (float32) * array (float64); np.sqrt of a float32 tensor is a correctly
        # rounded float32 sqrt (computed here as float64 sqrt rounded to float32: torch's CPU float32 sqrt is not
        # always correctly rounded).
        one_minus_a32 = 1.0 - a32
        recip32 = (1.0 / one_minus_a32.to(f64)).to(torch.float32).to(f64)
        sigmas = eta * torch.sqrt((1.0 - alphas_prev) * recip32 * (1.0 - alphas / alphas_prev))
        sqrt_one_minus = one_minus_a32.to(f64).sqrt().to(torch.float32).to(f64)
        scale = scale_prev = None
        if train.scale_kind != "none":
            s32 = train.scale_arr[ts]
            scale = s32.to(f64)
            first = s32[:1] if train.scale_kind == "dynamicrafter" else train.scale_arr[:1]
            scale_prev = torch.cat([first, train.scale_arr[ts[:-1]]]).to(f64)
        return cls(timesteps=ts, alphas=alphas, alphas_prev=alphas_prev, sigmas=sigmas,
                   sqrt_one_minus_alphas=sqrt_one_minus, eta=float(eta), spacing=spacing, train=train,
                   scale=scale, scale_prev=scale_prev)


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """k-diffusion noise levels sigma = sqrt((1 - a) / a) (inf where a == 0)."""
    a = alphas_cumprod.to(torch.float64)
    return ((1.0 - a) / a).sqrt()


def alphas_cumprod_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Inverse of `sigmas_from_alphas_cumprod`: a = 1 / (1 + sigma^2)."""
    s = sigmas.to(torch.float64)
    return 1.0 / (1.0 + s * s)


# ComfyUI's ModelSamplingDiscrete(zsnr=True) replaces the terminal alphas_cumprod of 0 by this value, so the largest
# sigma is finite (~4518); the same cap keeps our k-diffusion grids finite.
ZSNR_TERMINAL_ALPHA_CUMPROD = 4.8973451890853435e-08


def training_sigmas(train: TrainingSchedule) -> torch.Tensor:
    """sigma(t) for t = 0..N-1 (float32), the terminal zero-SNR step capped like ComfyUI's zsnr sampling."""
    ac = train.alphas_cumprod.to(torch.float64).clone()
    ac[ac <= 0] = ZSNR_TERMINAL_ALPHA_CUMPROD
    return sigmas_from_alphas_cumprod(ac).to(torch.float32)


def timestep_from_sigma(train: TrainingSchedule, sigma) -> int:
    """The training timestep whose sigma is nearest in log space (ComfyUI's ModelSamplingDiscrete.timestep)."""
    log_sigmas = training_sigmas(train).log()
    s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)[0]
    return int((log_sigmas - s.log()).abs().argmin())


def ddim_sigma_grid(schedule: DDIMSchedule, final: str = "official") -> torch.Tensor:
    """The DDIM timesteps as a descending k-diffusion sigma grid (float32, len(schedule) + 1 entries).

    final="official": the last entry is sigma(alphas_cumprod[0]) (the official last step lands on
    alphas_prev[0]; the k-diffusion latent there is the official one divided by sqrt(alphas_cumprod[0]));
    final="zero": the last entry is 0 (ComfyUI's convention: the last step returns the denoised x0).
    """
    sig = training_sigmas(schedule.train)
    grid = sig[schedule.timesteps.flip(0)]
    if final == "official":
        last = sig[:1]
    elif final == "zero":
        last = torch.zeros(1)
    else:
        raise ValueError(f"final must be 'official' or 'zero', not {final!r}")
    return torch.cat([grid, last])


def denoised_scale_fn(train: TrainingSchedule):
    """`denoised_scale(sigma, sigma_next)` for `ddim.sample_ddim_sigmas` (None without a latent scale).

    The official DDIM rescales pred_x0 by scale[t_prev] / scale[t] (DynamiCrafter; 1 on the last step) or uses
    scale_prev / scale with scale_prev = scale_arr[0] = 1 on the last step (VideoCrafter). Timesteps are found from
    the sigmas like ComfyUI does; a sigma_next of 0 or of timestep 0 is the last step.
    """
    if train.scale_kind == "none":
        return None
    scale = train.scale_arr

    def ratio(sigma, sigma_next) -> float:
        t = timestep_from_sigma(train, sigma)
        sn = float(torch.as_tensor(sigma_next).reshape(-1)[0])
        t_next = 0 if sn == 0.0 else timestep_from_sigma(train, sn)
        if t_next == 0:  # the last step
            return 1.0 if train.scale_kind == "dynamicrafter" else float(scale[0] / scale[t])
        return float(scale[t_next] / scale[t])

    return ratio
