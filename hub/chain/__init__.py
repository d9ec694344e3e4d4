"""The store as one of a chain (issue 17): events up to headquarters (link.py), catalogue and prices down (catalogue.py); feature.py wires it into the hub."""
