"""GitOps: what a git change asks CI to do (plan), making a store match main (sync), and reading
the specs that earlier commits declared (history)."""
