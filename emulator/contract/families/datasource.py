"""Datasource routes: pkg/entities/requests/datasource.go and
pkg/entities/datasource_entities."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.families.tool import RESPONSE_CHUNK_TYPES
from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.model import Credentials
from emulator.contract.validation import CUSTOM_TAGS

CUSTOM_TAGS["is_valid_data_source_response_chunk_type"] = lambda value: (
    value in RESPONSE_CHUNK_TYPES
)

# requests ---------------------------------------------------------------------------------


class BaseRequestInvokeDatasource(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    datasource: Annotated[str, Go(validate="required")] = ""


class RequestValidateDatasourceCredentials(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""


# Go declares these two as defined types over RequestInvokeDatasourceRequest: the same
# members under their own names, which is what the validator's keys show.
class RequestDatasourceGetWebsiteCrawl(Credentials, BaseRequestInvokeDatasource):
    datasource_parameters: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class RequestDatasourceGetOnlineDocumentPages(Credentials, BaseRequestInvokeDatasource):
    datasource_parameters: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class RequestInvokeOnlineDocumentDatasourceGetContent(Credentials, BaseRequestInvokeDatasource):
    page: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class OnlineDriveBrowseFilesRequest(GoStruct):
    bucket: Annotated[str | None, Go(validate="omitempty")] = None
    prefix: Annotated[str, Go(validate="omitempty")] = ""
    max_keys: Annotated[int, Go(validate="required")] = 0
    next_page_parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class DatasourceOnlineDriveBrowseFilesRequest(Credentials, BaseRequestInvokeDatasource):
    request: Annotated[OnlineDriveBrowseFilesRequest, Go(validate="required")] = (
        OnlineDriveBrowseFilesRequest()
    )


class OnlineDriveDownloadFileRequest(GoStruct):
    bucket: Annotated[str | None, Go(validate="omitempty")] = None
    id: Annotated[str, Go("ID", validate="required")] = ""


class DatasourceOnlineDriveDownloadFileRequest(Credentials, BaseRequestInvokeDatasource):
    request: Annotated[OnlineDriveDownloadFileRequest, Go(validate="required")] = (
        OnlineDriveDownloadFileRequest()
    )


# datasource_entities ----------------------------------------------------------------------


class DataSourceValidateCredentialsResponse(GoStruct):
    result: bool = False


class DataSourceResponseChunk(GoStruct):
    type: Annotated[str, Go(validate="required,is_valid_data_source_response_chunk_type")] = ""
    message: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


class WebsiteCrawlChunk(GoStruct):
    result: dict[str, Any] | None = None


class DatasourceGetPagesResponse(GoStruct):
    result: list[dict[str, Any] | None] | None = None


class OnlineDriveFile(GoStruct):
    id: Annotated[str, Go("ID", validate="required")] = ""
    name: Annotated[str, Go(validate="required")] = ""
    size: Annotated[int, Go(validate="required")] = 0
    type: Annotated[str, Go(validate="required")] = ""


class OnlineDriveFileBucket(GoStruct):
    bucket: Annotated[str | None, Go(validate="omitempty")] = None
    files: Annotated[list[OnlineDriveFile] | None, Go(validate="required")] = None
    is_truncated: Annotated[bool, Go(validate="required")] = False
    next_page_parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class GetOnlineDriveBrowseFilesResponse(GoStruct):
    result: Annotated[list[OnlineDriveFileBucket] | None, Go(validate="required")] = None
