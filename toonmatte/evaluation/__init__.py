"""Measuring mattes: ToonOut's metrics against a reference, and how unsure a matte looks without one."""
