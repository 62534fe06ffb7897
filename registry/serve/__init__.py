"""`registry serve` and `registry export --format vllm|tgi`: from the registry to traffic.

One concern per module:
    server.py    build what one process serves (ServeOptions -> Server) and run it (uvicorn)
    app.py       the FastAPI routes: OpenAI-compatible chat/completions, models, health
    protocol.py  the OpenAI wire format: request schemas, response bodies, error bodies
    routing.py   model name -> loaded adapter version; leases; what may be unloaded
    batching.py  the admission queue: batches of one adapter, control tasks between batches
    engine.py    the generation thread over one AdapterFleet (registry/consume.py)
    follower.py  the initial set (store, --adapters, --lock) and polling the current pointers
    export.py    verified copies + vLLM --lora-modules / TGI LORA_ADAPTERS

See docs/serve.md.
"""
