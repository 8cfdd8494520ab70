"""One module per CLI verb: orchestration over config, model, host, engine and net."""
