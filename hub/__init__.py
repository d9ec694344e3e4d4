"""storehub: the on-premises store hub (the process, its features, the live protocol, the store)."""
