"""Service layer: what the routers call; routers stay thin."""
