"""API tests: the real server under uvicorn, driven by stock boto3 and raw HTTP."""
