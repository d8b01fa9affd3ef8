"""`python -m app serve`: Ghostpen as a local OpenAI-compatible completions server.

completion_request.py reads and checks a request body, engine_queue.py runs the requests one
after another on the one thread that calls the engine, completion_response.py turns token
events into OpenAI's JSON, api.py is the Starlette app (routes, API key, body limit, streaming),
server.py runs it under uvicorn on a socket bound beforehand, and main.py is the command.
Starlette and uvicorn come with the optional `serve` extra; only api.py and server.py import
them, and main.py checks they are there before it does anything else.
"""
