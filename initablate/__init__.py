"""Plumbing shared by every package of the project, free of torch, Ray and plotting libraries.

``initablate.registry`` holds the one registry helper (``Registry``, ``RegistryError``,
``suggest``) that agents, envs, init schemes, init scenarios and activations are registered in.
It lives here, not in a domain package, so that importing it (and validating a config with it)
pulls in nothing heavy.
"""
