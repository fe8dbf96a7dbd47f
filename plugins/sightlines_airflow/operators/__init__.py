"""Operators: thin wrappers that hand a step to a backend (``step``) and watch or report on the fleet (``fleet``)."""
