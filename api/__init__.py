"""The OpenAI-compatible `/api/v1` FastAPI app (see `api.app`)."""
