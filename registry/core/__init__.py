"""Helpers with one home each, and no torch: file writes, locks, hashing, cache folders, git, semver.

Everything above this package (spec, train, evaluate, store, gitops) uses these instead of writing
its own; nothing in here imports from the rest of the registry except `registry.errors`.
"""
