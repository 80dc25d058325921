from lethe.service.gen.lethe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadVariantRequest(_message.Message):
    __slots__ = ("name", "checkpoint", "model", "alias_of", "engine", "engine_options", "wait", "retrieval")
    class EngineOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_OF_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    checkpoint: str
    model: str
    alias_of: str
    engine: str
    engine_options: _containers.ScalarMap[str, str]
    wait: bool
    retrieval: _common_pb2.RetrievalPolicy
    def __init__(self, name: _Optional[str] = ..., checkpoint: _Optional[str] = ..., model: _Optional[str] = ..., alias_of: _Optional[str] = ..., engine: _Optional[str] = ..., engine_options: _Optional[_Mapping[str, str]] = ..., wait: _Optional[bool] = ..., retrieval: _Optional[_Union[_common_pb2.RetrievalPolicy, _Mapping]] = ...) -> None: ...

class LoadVariantResponse(_message.Message):
    __slots__ = ("variant",)
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    variant: VariantDetails
    def __init__(self, variant: _Optional[_Union[VariantDetails, _Mapping]] = ...) -> None: ...

class UnloadVariantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadVariantResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetVariantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class MemoryUsage(_message.Message):
    __slots__ = ("parameter_bytes", "shared_bytes", "own_bytes")
    PARAMETER_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHARED_BYTES_FIELD_NUMBER: _ClassVar[int]
    OWN_BYTES_FIELD_NUMBER: _ClassVar[int]
    parameter_bytes: int
    shared_bytes: int
    own_bytes: int
    def __init__(self, parameter_bytes: _Optional[int] = ..., shared_bytes: _Optional[int] = ..., own_bytes: _Optional[int] = ...) -> None: ...

class VariantDetails(_message.Message):
    __slots__ = ("name", "status", "engine", "checkpoint", "parent", "edit_manifest_json", "memory", "error", "is_default", "edited_tensors", "retrieval", "alias_of")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    EDIT_MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    EDITED_TENSORS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_OF_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: _common_pb2.VariantStatus
    engine: str
    checkpoint: str
    parent: str
    edit_manifest_json: str
    memory: MemoryUsage
    error: str
    is_default: bool
    edited_tensors: _containers.RepeatedScalarFieldContainer[str]
    retrieval: _common_pb2.RetrievalPolicy
    alias_of: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.VariantStatus, str]] = ..., engine: _Optional[str] = ..., checkpoint: _Optional[str] = ..., parent: _Optional[str] = ..., edit_manifest_json: _Optional[str] = ..., memory: _Optional[_Union[MemoryUsage, _Mapping]] = ..., error: _Optional[str] = ..., is_default: _Optional[bool] = ..., edited_tensors: _Optional[_Iterable[str]] = ..., retrieval: _Optional[_Union[_common_pb2.RetrievalPolicy, _Mapping]] = ..., alias_of: _Optional[str] = ...) -> None: ...
