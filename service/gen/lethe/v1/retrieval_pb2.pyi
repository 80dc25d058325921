from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("index", "query", "k", "filter_json")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    index: str
    query: str
    k: int
    filter_json: str
    def __init__(self, index: _Optional[str] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., filter_json: _Optional[str] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("id", "doc_id", "score", "text", "title", "source", "metadata_json", "start", "end")
    ID_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    id: str
    doc_id: str
    score: float
    text: str
    title: str
    source: str
    metadata_json: str
    start: int
    end: int
    def __init__(self, id: _Optional[str] = ..., doc_id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., source: _Optional[str] = ..., metadata_json: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("index", "passages")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    index: str
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    def __init__(self, index: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ...) -> None: ...

class IndexStatsRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: str
    def __init__(self, index: _Optional[str] = ...) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("name", "path", "snapshot", "format_version", "embedder", "dimension", "index_type", "documents", "passages", "vectors", "size_bytes", "created_at", "max_k")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    snapshot: str
    format_version: int
    embedder: str
    dimension: int
    index_type: str
    documents: int
    passages: int
    vectors: int
    size_bytes: int
    created_at: str
    max_k: int
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., snapshot: _Optional[str] = ..., format_version: _Optional[int] = ..., embedder: _Optional[str] = ..., dimension: _Optional[int] = ..., index_type: _Optional[str] = ..., documents: _Optional[int] = ..., passages: _Optional[int] = ..., vectors: _Optional[int] = ..., size_bytes: _Optional[int] = ..., created_at: _Optional[str] = ..., max_k: _Optional[int] = ...) -> None: ...

class ListIndexesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIndexesResponse(_message.Message):
    __slots__ = ("indexes",)
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    indexes: _containers.RepeatedCompositeFieldContainer[IndexInfo]
    def __init__(self, indexes: _Optional[_Iterable[_Union[IndexInfo, _Mapping]]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "text", "title", "source", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    title: str
    source: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., source: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class AddDocumentsRequest(_message.Message):
    __slots__ = ("index", "documents", "replace")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    index: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    replace: bool
    def __init__(self, index: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., replace: _Optional[bool] = ...) -> None: ...

class AddDocumentsResponse(_message.Message):
    __slots__ = ("passages_embedded", "passages_total", "done", "documents_added", "passages_added", "documents_replaced", "passages_replaced", "stats")
    PASSAGES_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_ADDED_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_ADDED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_REPLACED_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_REPLACED_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    passages_embedded: int
    passages_total: int
    done: bool
    documents_added: int
    passages_added: int
    documents_replaced: int
    passages_replaced: int
    stats: IndexInfo
    def __init__(self, passages_embedded: _Optional[int] = ..., passages_total: _Optional[int] = ..., done: _Optional[bool] = ..., documents_added: _Optional[int] = ..., passages_added: _Optional[int] = ..., documents_replaced: _Optional[int] = ..., passages_replaced: _Optional[int] = ..., stats: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("index", "ids")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    index: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("documents_deleted", "passages_deleted", "stats")
    DOCUMENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_DELETED_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    documents_deleted: int
    passages_deleted: int
    stats: IndexInfo
    def __init__(self, documents_deleted: _Optional[int] = ..., passages_deleted: _Optional[int] = ..., stats: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...
