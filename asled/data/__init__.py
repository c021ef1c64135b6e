"""Data steps: demo generation (asled.data.demo), RealMCVSR download (asled.data.download), layout
validation (asled.data.layout), blur synthesis (asled.data.blur), reference preparation
(asled.data.reference), and the prepared store the training loader memory-maps (asled.data.store).

Nothing is imported here, so a step depends only on the data modules it uses (asled.stages)."""
