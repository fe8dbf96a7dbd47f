"""Triggers of the deferrable paths; the triggerer imports them by classpath from this installed package."""
