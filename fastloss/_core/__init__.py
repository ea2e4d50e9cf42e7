"""The internals every loss family builds on: the table of losses, and the stub generator."""
