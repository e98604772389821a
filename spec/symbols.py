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
