"""The one kind -> gRPC code table covers the one error hierarchy, and nothing else maps."""

import typing

import grpc
import pytest

from lethe.edits.errors import ErrorKind, InvalidArgument, LetheError
from lethe.retrieval.errors import EmbedderMismatch
from lethe.service.errors import QueueFull, ServiceError
from lethe.service.status import STATUS_BY_KIND, status_for


def test_every_error_kind_has_exactly_one_code():
    assert set(STATUS_BY_KIND) == set(typing.get_args(ErrorKind))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("blocks: 99 is out of range"), grpc.StatusCode.INVALID_ARGUMENT),
        (EmbedderMismatch("index built with another embedder"), grpc.StatusCode.FAILED_PRECONDITION),
        (QueueFull("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_errors_of_every_package_share_the_table(error: LetheError, code: grpc.StatusCode):
    assert isinstance(error, LetheError)
    assert status_for(error) == (code, str(error))


def test_anything_else_is_internal_without_leaking_its_message():
    code, message = status_for(KeyError("/etc/secret"))
    assert code == grpc.StatusCode.INTERNAL and "secret" not in message
    assert issubclass(ServiceError, LetheError)


def test_a_method_nothing_implements_is_unimplemented():
    # What a generated servicer base class raises for a method its subclass does not define.
    assert status_for(NotImplementedError("Method not implemented!"))[0] == grpc.StatusCode.UNIMPLEMENTED


def test_validation_problems_never_echo_a_huge_key():
    from pydantic import BaseModel, ConfigDict, ValidationError

    from lethe.edits.errors import explain

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    with pytest.raises(ValidationError) as error:
        Strict.model_validate({"k" * 100_000: 1})
    message = explain(error.value)
    assert len(message) < 1_000 and "(100000 characters)" in message
