"""The conformance suite: fast vs reference vs spec, with tolerances as documented data."""
