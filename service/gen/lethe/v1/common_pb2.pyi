from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VariantStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIANT_STATUS_UNSPECIFIED: _ClassVar[VariantStatus]
    VARIANT_STATUS_LOADING: _ClassVar[VariantStatus]
    VARIANT_STATUS_READY: _ClassVar[VariantStatus]
    VARIANT_STATUS_FAILED: _ClassVar[VariantStatus]
    VARIANT_STATUS_UNLOADING: _ClassVar[VariantStatus]
VARIANT_STATUS_UNSPECIFIED: VariantStatus
VARIANT_STATUS_LOADING: VariantStatus
VARIANT_STATUS_READY: VariantStatus
VARIANT_STATUS_FAILED: VariantStatus
VARIANT_STATUS_UNLOADING: VariantStatus

class Variant(_message.Message):
    __slots__ = ("name", "status", "engine", "parent", "is_default", "retrieval", "alias_of")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_OF_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: VariantStatus
    engine: str
    parent: str
    is_default: bool
    retrieval: RetrievalPolicy
    alias_of: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[VariantStatus, str]] = ..., engine: _Optional[str] = ..., parent: _Optional[str] = ..., is_default: _Optional[bool] = ..., retrieval: _Optional[_Union[RetrievalPolicy, _Mapping]] = ..., alias_of: _Optional[str] = ...) -> None: ...

class RetrievalPolicy(_message.Message):
    __slots__ = ("index", "k", "min_score", "template", "passage_format")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    index: str
    k: int
    min_score: float
    template: str
    passage_format: str
    def __init__(self, index: _Optional[str] = ..., k: _Optional[int] = ..., min_score: _Optional[float] = ..., template: _Optional[str] = ..., passage_format: _Optional[str] = ...) -> None: ...
