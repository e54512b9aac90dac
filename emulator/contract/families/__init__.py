"""The `data` and response items of the 20 dispatch routes outside the model family.

One module per daemon family, each pairing `pkg/entities/requests/<family>.go` with the
family's `<family>_entities` package, so a module reads beside the two Go files it mirrors;
the model family keeps `model.py` and `responses.py`. Structs two families share live in
`plugin_entities.py`, as they do in the daemon.
"""
