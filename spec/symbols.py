"""Shared sympy symbols: one name per mathematical quantity, used by every rule module."""

import sympy as sp

g = sp.Symbol("g", real=True)  # gradient element
p = sp.Symbol("p_{t-1}", real=True)  # parameter before the step
m = sp.Symbol("m_{t-1}", real=True)  # first moment before the step
v = sp.Symbol("v_{t-1}", nonnegative=True)  # second moment before the step
t = sp.Symbol("t", positive=True, integer=True)  # 1-based step count of the parameter
N = sp.Symbol("N", positive=True, integer=True)  # numel of the parameter tensor

lr = sp.Symbol(r"\eta", nonnegative=True)
wd = sp.Symbol(r"\lambda", nonnegative=True)
beta1 = sp.Symbol(r"\beta_1", nonnegative=True)
beta2 = sp.Symbol(r"\beta_2", nonnegative=True)
eps = sp.Symbol(r"\epsilon", nonnegative=True)
c = sp.Symbol("c", nonnegative=True)  # Nesterov coefficient (already resolved: c or beta1)

ATAN2_SCALE = 4 / sp.pi  # Adam-atan2's a = 4/pi with b = 1

# Adopt, Lion, SignSGD, Simplified AdEMAMix and the AdEMAMix feature (spec/adopt.md, spec/lion.md,
# spec/signsgd.md, spec/simplified_ademamix.md, spec/ademamix.md).
m_slow = sp.Symbol(r"m^{\mathrm{slow}}_{t-1}", real=True)  # AdEMAMix's slow EMA before the step
num = sp.Symbol(r"\mathrm{num}_{t-1}", nonnegative=True)  # Simplified AdEMAMix's accumulated weight
den = sp.Symbol(r"\mathrm{den}_{t-1}", nonnegative=True)  # ... and its second-moment weight
alpha = sp.Symbol(r"\alpha", nonnegative=True)  # AdEMAMix's final alpha
beta3 = sp.Symbol(r"\beta_3", nonnegative=True)  # AdEMAMix's final beta3 (beta3_ema)
T_alpha = sp.Symbol(r"T_\alpha", positive=True)  # alpha warm-up length (None evaluates as 1)
T_beta3 = sp.Symbol(r"T_{\beta_3}", positive=True)  # beta3 warm-up length (None evaluates as 1)
alpha_g = sp.Symbol(r"\alpha_g", nonnegative=True)  # Simplified AdEMAMix's weight of the gradient
T_beta1 = sp.Symbol(r"T_{\beta_1}", positive=True)  # Simplified AdEMAMix's beta1 warm-up length
beta1_min = sp.Symbol(r"\beta_{1,\min}", nonnegative=True)  # ... and its starting beta1
q = sp.Symbol("q", nonnegative=True)  # Adopt's clip exponent (clip_lambda)
kappa = sp.Symbol(r"\kappa", positive=True)  # Lion-K exponent (kappa_p)
mu = sp.Symbol(r"\mu", nonnegative=True)  # SignSGD's momentum
s_norm = sp.Symbol(r"\lVert s_{t} \rVert_{2}", nonnegative=True)  # L2 norm of Lion-K's s over the tensor

# The Adafactor family (spec/adafactor.md, spec/came.md, spec/automagic.md). Factored second
# moments: R and C are the row and column factors of the element's row i and column j; the
# means and RMS values are tensor-wide (per batch matrix) reductions, given as symbols.
R = sp.Symbol("R_{i,t-1}", nonnegative=True)  # row factor before the step
C = sp.Symbol("C_{j,t-1}", nonnegative=True)  # column factor before the step
row_mean = sp.Symbol(r"\overline{x}_{i\cdot}", nonnegative=True)  # mean over row i of this step's squared term
col_mean = sp.Symbol(r"\overline{x}_{\cdot j}", nonnegative=True)  # mean over column j of it
R_mean = sp.Symbol(r"\overline{R}_t", positive=True)  # mean of the new row factors (of the batch matrix)
rms_u = sp.Symbol(r"\mathrm{RMS}(u_t)", nonnegative=True)  # RMS of the normalised update over the tensor
rms_p = sp.Symbol(r"\mathrm{RMS}(p_{t-1})", nonnegative=True)  # RMS of the parameter before the step
eps1 = sp.Symbol(r"\epsilon_1", nonnegative=True)
eps2 = sp.Symbol(r"\epsilon_2", nonnegative=True)
clip_d = sp.Symbol("d", positive=True)  # clip_threshold
decay_gamma = sp.Symbol(r"\gamma", nonpositive=True)  # Adafactor's decay_rate
# CAME's residual (instability) factors, the same estimator over (u_hat - m)^2 + eps2.
R_res = sp.Symbol(r"R^{\mathrm{res}}_{i,t-1}", nonnegative=True)
C_res = sp.Symbol(r"C^{\mathrm{res}}_{j,t-1}", nonnegative=True)
res_row_mean = sp.Symbol(r"\overline{r}_{i\cdot}", nonnegative=True)
res_col_mean = sp.Symbol(r"\overline{r}_{\cdot j}", nonnegative=True)
R_res_mean = sp.Symbol(r"\overline{R^{\mathrm{res}}}_t", positive=True)

# Automagic's learning-rate mask
L = sp.Symbol("L_{t-1}", positive=True)  # the mask element before the step (decoded)
lr0 = sp.Symbol(r"\eta_0", positive=True)  # lr: the mask's starting value (L_0)
lr_min = sp.Symbol(r"\eta_{\min}", positive=True)
lr_max = sp.Symbol(r"\eta_{\max}", positive=True)
lr_bump = sp.Symbol(r"\delta", nonnegative=True)
polarity = sp.Symbol("q_{t-1}", nonnegative=True)  # the last gradient's polarity [g > 0], 0 or 1
