"""The agent registry. Every agent module registers its class here on import.

An agent class has a pydantic ``Config`` (its section of the trial config), a ``sections`` tuple
naming every config section it reads, and the methods of :class:`agent.base.Agent`.
"""

from init_schemes import Registry

agents: Registry = Registry("agent")
register = agents.register
