"""Demo store data files (catalogue and customers), loaded by ``hub.domain.demo_catalogue``."""
