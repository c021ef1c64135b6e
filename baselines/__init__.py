"""Comparison methods of Table 1, one module per method.

Each is registered by name in `asled/models/catalog.yaml` with a `"baselines.<module>:<Class>"`
target, so `asled` imports this package only when a baseline is asked for. Every method follows
`forward(blur, ref) -> restored` on `[B, T, 3, H, W]` in [0, 1].
"""
