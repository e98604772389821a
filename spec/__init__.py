"""The specification: sympy update rules (``spec.<optimizer>``) and hyperparameter tables.

Importing ``spec`` or ``spec.hparams`` does not import sympy; the rule modules do.
"""
