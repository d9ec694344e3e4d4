"""The domain core: sale, limits, pricing, tax, drawers, payloads and rules as data; no I/O."""
