"""Image-quality metrics: full-reference (`asled.metrics.fr`: PSNR, SSIM, LPIPS; PSNR itself in
`asled.metrics.pixels`), no-reference (`asled.metrics.nr`) and temporal (`asled.metrics.temporal`).

Nothing is imported here, so a step that needs one metric depends on that metric's file only."""
