"""The committed generated code must be exactly what grpcio-tools makes from proto/."""

from pathlib import Path

from lethe.service.protogen import GEN_DIR, generate, proto_files


def test_committed_code_matches_the_protos(tmp_path: Path):
    written = generate(tmp_path)
    assert len(proto_files()) == 4
    stale = []
    for path in written:
        committed = GEN_DIR / path.relative_to(tmp_path)
        if not committed.is_file() or committed.read_text() != path.read_text():
            stale.append(str(committed))
    committed_modules = {p.relative_to(GEN_DIR) for p in (GEN_DIR / "lethe").rglob("*.py*")}
    fresh_modules = {p.relative_to(tmp_path) for p in written}
    assert not stale, f"regenerate with `python -m lethe.service.protogen`: {stale}"
    assert committed_modules == fresh_modules


def test_contract_names():
    from lethe.service.gen.lethe.v1 import inference_pb2

    fields = {f.name for f in inference_pb2.GenerateRequest.DESCRIPTOR.fields}
    assert fields >= {"variant", "prompt", "sampling", "request_id"}
    sampling = {f.name for f in inference_pb2.SamplingParams.DESCRIPTOR.fields}
    assert sampling >= {"max_tokens", "temperature", "top_p", "top_k", "seed", "stop"}
    response = {f.name for f in inference_pb2.GenerateResponse.DESCRIPTOR.fields}
    assert response >= {"variant", "text", "finish_reason", "usage"}
    service = inference_pb2.DESCRIPTOR.services_by_name["Inference"]
    assert {m.name for m in service.methods} == {"Generate", "GenerateStream", "ListVariants"}
    assert service.methods_by_name["GenerateStream"].server_streaming


def test_retrieval_contract_names():
    from lethe.service.gen.lethe.v1 import inference_pb2, retrieval_pb2

    reads = retrieval_pb2.DESCRIPTOR.services_by_name["Retrieval"]
    assert {m.name for m in reads.methods} == {"Search", "IndexStats", "ListIndexes"}
    writes = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalAdmin"]
    assert {m.name for m in writes.methods} == {"AddDocuments", "DeleteDocuments"}
    assert writes.methods_by_name["AddDocuments"].client_streaming
    request = {f.name for f in inference_pb2.GenerateRequest.DESCRIPTOR.fields}
    assert request >= {"retrieval", "retrieval_k"}
    for message in (inference_pb2.GenerateResponse, inference_pb2.GenerateStreamResponse):
        assert "passages" in {f.name for f in message.DESCRIPTOR.fields}
