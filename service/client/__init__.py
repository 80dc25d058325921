"""A Python client for Lethe's gRPC API, for application code and the `lethe` CLI.

It imports grpc and the generated messages, not the ML stack (torch, transformers, faiss, numpy),
so an application that only calls the API stays light.

    from lethe.client import LetheClient

    with LetheClient("localhost:50051") as client:
        print(client.generate("The capital of France is", max_tokens=8, temperature=0).text)
        for delta in client.stream("Once upon a time", max_tokens=32):
            print(delta.text, end="", flush=True)
        for passage in client.search("demo", "Who deciphered the Rosetta Stone?", k=3):
            print(passage.score, passage.text)
"""

from lethe.client.blocking import Completion, LetheClient, VariantInfo

__all__ = ["Completion", "LetheClient", "VariantInfo"]
