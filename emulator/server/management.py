"""The daemon's management routes Dify calls (lists of providers, tools, plugins, ...).

Answers come from the loaded plugins' declarations (emulator.runtime.declaration), shaped as
the daemon's services shape their database rows (internal/service/manage_plugin.go and
friends): every tenant has every loaded plugin installed, in load order, from `package`, as a
`local` runtime. Row ids are UUIDv7 and timestamps the start of the run, both stable for the
life of the app.

The daemon's order on every route: the key (401), gin's binding with its errors discarded,
the validator (400 with its text), then the service, whose failures are HTTP 200 envelopes
(-404 PluginNotFoundError, -500 PluginDaemonInternalServerError, -400 for a bad category).
Routes the emulator does not implement (install, upgrade, uninstall, upload, endpoint set-up,
readme, ...) answer the daemon's failure envelope, HTTP 200 with -500, naming the route.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from fastapi import FastAPI, Request, Response

from emulator.contract import envelopes
from emulator.contract.declarations import PluginMeta
from emulator.contract.envelopes import ErrorType
from emulator.contract.gojson import GoDecoder, GoMap, encode_any, parse_document
from emulator.contract.gotypes import Go, GoStruct, Slice, StructValue, flat_fields
from emulator.contract.validation import CUSTOM_TAGS, validate
from emulator.runtime.declaration import (
    DeclarationError,
    PluginPackage,
    now_in_go_format,
    read_package,
)
from emulator.runtime.registry import PluginSet
from emulator.server.answers import error_answer, json_answer

_UNIQUE_IDENTIFIER = re.compile(
    r"^(?:([a-z0-9_-]{1,64})/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}(-\w{1,16})?"
    r"@[a-f0-9]{32,64}$",
    re.ASCII,
)
_PLUGIN_TAGS = frozenset(
    {
        "search",
        "image",
        "videos",
        "weather",
        "finance",
        "design",
        "travel",
        "social",
        "news",
        "medical",
        "productivity",
        "education",
        "business",
        "entertainment",
        "utilities",
        "agent",
        "rag",
        "other",
        "trigger",
    }
)
"""manifest_entities.PluginTag values."""
CUSTOM_TAGS.setdefault("plugin_unique_identifier", lambda v: bool(_UNIQUE_IDENTIFIER.match(v)))
CUSTOM_TAGS.setdefault("plugin_tag", lambda value: value in _PLUGIN_TAGS)

logger = logging.getLogger("emulator.server")

CATEGORIES = ("tool", "model", "extension", "agent-strategy", "datasource", "trigger")
SOURCE = "package"
RUNTIME_TYPE = "local"
PREFIX = "/plugin/{tenant_id:tenant}"


# Requests, as the controllers declare them ------------------------------------------------


class _Request(GoStruct):
    """A controller's request struct. Unnamed Go structs have no namespace in 400 texts."""

    form_keys: ClassVar[dict[str, str]] = {}
    """The `form:` tag of each field that has one; others bind from a form by Go name."""
    uri_keys: ClassVar[dict[str, str]] = {"tenant_id": "tenant_id"}


_TENANT = Annotated[str, Go("TenantID", validate="required")]
_PAGE = Annotated[int, Go(validate="required,min=1")]
_PAGE_SIZE = Annotated[int, Go(validate="required,min=1,max=256")]
_IDENTIFIER = Annotated[str, Go(validate="required,plugin_unique_identifier")]


class _Paged(_Request):
    tenant_id: _TENANT = ""
    page: _PAGE = 0
    page_size: _PAGE_SIZE = 0
    form_keys: ClassVar[dict[str, str]] = {"page": "page", "page_size": "page_size"}


class _EndpointPaged(_Request):
    tenant_id: _TENANT = ""
    page: Annotated[int, Go(validate="required")] = 0
    page_size: Annotated[int, Go(validate="required,max=100")] = 0
    form_keys: ClassVar[dict[str, str]] = {"page": "page", "page_size": "page_size"}


class _PluginEndpointPaged(_Request):
    tenant_id: _TENANT = ""
    plugin_id: Annotated[str, Go("PluginID", validate="required")] = ""
    page: Annotated[int, Go(validate="required")] = 0
    page_size: Annotated[int, Go(validate="required,max=100")] = 0
    form_keys: ClassVar[dict[str, str]] = {
        "plugin_id": "plugin_id",
        "page": "page",
        "page_size": "page_size",
    }


class _OneProvider(_Request):
    tenant_id: _TENANT = ""
    plugin_id: Annotated[str, Go("PluginID", validate="required")] = ""
    provider: Annotated[str, Go(validate="required")] = ""
    form_keys: ClassVar[dict[str, str]] = {"plugin_id": "plugin_id", "provider": "provider"}


class _TenantOnly(_Request):
    tenant_id: _TENANT = ""


class listModelPluginBindingsRequest(_TenantOnly):
    go_type_name = "listModelPluginBindingsRequest"


class RequestGetRemoteDebuggingKey(_TenantOnly):
    go_type_name = "RequestGetRemoteDebuggingKey"


class listInstalledPluginIDsRequest(_Request):
    tenant_id: _TENANT = ""
    category: Annotated[str, Go(validate="required")] = ""
    form_keys: ClassVar[dict[str, str]] = {"category": "category"}
    go_type_name = "listInstalledPluginIDsRequest"


class listPluginsByCategoryRequest(_Request):
    tenant_id: _TENANT = ""
    category: Annotated[str, Go(validate="required")] = ""
    page: _PAGE = 0
    page_size: _PAGE_SIZE = 0
    query: Annotated[str, Go(validate="omitempty,max=256")] = ""
    tags: Annotated[list[str] | None, Go(validate="omitempty,max=128,dive,plugin_tag")] = None
    language: Annotated[str, Go(validate="omitempty,oneof=en_US zh_Hans ja_JP pt_BR")] = ""
    form_keys: ClassVar[dict[str, str]] = {
        key: key for key in ("page", "page_size", "query", "tags", "language")
    }
    uri_keys: ClassVar[dict[str, str]] = {"tenant_id": "tenant_id", "category": "category"}
    go_type_name = "listPluginsByCategoryRequest"


class _TaskId(_Request):
    tenant_id: _TENANT = ""
    id: Annotated[str, Go("TaskID", validate="required")] = ""
    uri_keys: ClassVar[dict[str, str]] = {"tenant_id": "tenant_id", "id": "id"}


class _ByIdentifier(_Request):
    tenant_id: _TENANT = ""
    PluginUniqueIdentifier: _IDENTIFIER = ""
    form_keys: ClassVar[dict[str, str]] = {"PluginUniqueIdentifier": "plugin_unique_identifier"}


class _ByIdentifierNoTenant(_Request):
    PluginUniqueIdentifier: _IDENTIFIER = ""
    form_keys: ClassVar[dict[str, str]] = {"PluginUniqueIdentifier": "plugin_unique_identifier"}
    uri_keys: ClassVar[dict[str, str]] = {}


class RequestCheckToolExistence(GoStruct):
    plugin_id: Annotated[str, Go("PluginID", validate="required")] = ""
    provider_name: Annotated[str, Go(validate="required")] = ""


class _CheckExistence(_Request):
    tenant_id: _TENANT = ""
    provider_ids: Annotated[
        list[RequestCheckToolExistence] | None, Go("ProviderIDS", validate="required,dive")
    ] = None


class _BatchFetch(_Request):
    tenant_id: _TENANT = ""
    plugin_ids: Annotated[list[str] | None, Go("PluginIDs", validate="required,max=256")] = None


class _Missing(_Request):
    tenant_id: _TENANT = ""
    plugin_unique_identifiers: Annotated[
        list[str] | None,
        Go(validate="required,max=256,dive,plugin_unique_identifier"),
    ] = None


# Binding: gin's ShouldBind / ShouldBindJSON / ShouldBindUri, errors discarded ------------


async def _bind(request: Request, cls: type[_Request]) -> dict[str, Any] | Response:
    """The bound request, or the validator's 400."""
    content_type = request.headers.get("content-type", "")
    if _binds_json(request.method, content_type):
        document = parse_document(await request.body(), [])
        values = GoDecoder().decode_document(cls, document)
    else:
        values = GoDecoder().decode_document(cls, None)
        _bind_form(cls, values, request)
    for field, parameter in cls.uri_keys.items():
        values[field] = request.path_params[parameter]
    namespace = cls.go_type_name or ""
    errors = validate(cls, values, namespace or "\0")
    if errors:
        message = "\n".join(error.replace("'\0.", "'") for error in errors)
        return error_answer(400, ErrorType.BAD_REQUEST, message)
    return values


def _binds_json(method: str, content_type: str) -> bool:
    """BindRequest binds JSON for exactly application/json; gin's ShouldBind, on a non-GET
    request whose media type is application/json."""
    if content_type == "application/json":
        return True
    media_type = re.split("[ ;]", content_type, maxsplit=1)[0]
    return method != "GET" and media_type == "application/json"


def _bind_form(cls: type[_Request], values: dict[str, Any], request: Request) -> None:
    """gin's form mapping: fields in order, the first unparsable one stops the rest."""
    for field in flat_fields(cls):
        if field.json_name in cls.uri_keys:
            continue
        key = cls.form_keys.get(field.json_name, field.go_name)
        given = request.query_params.getlist(key)
        if not given:
            continue
        if isinstance(field.gotype, Slice):
            values[field.json_name] = given
        elif isinstance(values[field.json_name], int):
            number = _go_int(given[0])
            if number is None:
                return
            values[field.json_name] = number
        else:
            values[field.json_name] = given[0]


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64) as gin calls it; "" means 0."""
    if text == "":
        return 0
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


# The installed plugins, as rows -----------------------------------------------------------


@dataclass(frozen=True)
class _Installed:
    plugin: Any
    package: PluginPackage
    index: int

    @property
    def plugin_id(self) -> str:
        plugin_id: str = self.plugin.identity.plugin_id
        return plugin_id

    @property
    def unique_identifier(self) -> str:
        identifier: str = self.plugin.identity.unique_identifier
        return identifier

    @property
    def version(self) -> str:
        version: str = self.plugin.identity.version
        return version

    @property
    def checksum(self) -> str:
        checksum: str = self.plugin.identity.checksum
        return checksum


class Catalog:
    """Every tenant's installations: the loaded plugins, read the way the daemon reads them."""

    PROVIDER_NAME: ClassVar[dict[str, Callable[[Any], str]]] = {
        "model": lambda provider: provider["provider"],
        "tool": lambda provider: provider["identity"]["name"],
        "agent_strategy": lambda provider: provider["identity"]["name"],
        "datasource": lambda provider: provider["identity"]["name"],
        "trigger": lambda provider: provider["identity"]["name"],
    }

    def __init__(self, plugins: PluginSet) -> None:
        self._plugins = plugins
        self._started = datetime.now(UTC)
        self._seed = uuid.uuid4().hex
        self._packages: dict[str, PluginPackage] = {}
        self.debugging_keys: dict[str, str] = {}

    def installed(self) -> list[_Installed]:
        """In installation (load) order; DeclarationError if a plugin cannot be decoded."""
        return [
            _Installed(plugin, self._package(plugin), index)
            for index, plugin in enumerate(self._plugins)
        ]

    def _package(self, plugin: Any) -> PluginPackage:
        key = plugin.identity.unique_identifier
        if key not in self._packages:
            try:
                self._packages[key] = read_package(plugin.directory)
            except DeclarationError as error:
                message = (
                    f"emulator: the daemon could not install {key} from {plugin.directory}, "
                    f"so it lists nothing: {error}"
                )
                logger.warning("%s", message)
                raise DeclarationError(message) from None
        return self._packages[key]

    def created_at(self, installed: _Installed) -> str:
        """Installed one microsecond apart, in load order, when the app started."""
        moment = self._started.timestamp() + installed.index / 1_000_000
        return now_in_go_format(datetime.fromtimestamp(moment, UTC))

    def row_id(self, tenant_id: str, table: str, installed: _Installed) -> str:
        """A UUIDv7 for one row, stable for the run (gorm's BeforeCreate makes v7 ids)."""
        digest = hashlib.sha256(
            f"{self._seed}/{tenant_id}/{table}/{installed.plugin_id}".encode()
        ).digest()
        milliseconds = int(self._started.timestamp() * 1000) + installed.index
        raw = bytearray(milliseconds.to_bytes(6, "big") + digest[:10])
        raw[6] = 0x70 | (raw[6] & 0x0F)
        raw[8] = 0x80 | (raw[8] & 0x3F)
        return str(uuid.UUID(bytes=bytes(raw)))

    def base_row(self, tenant_id: str, table: str, installed: _Installed) -> dict[str, Any]:
        """models.Model: id, created_at, updated_at."""
        created = self.created_at(installed)
        return {
            "id": self.row_id(tenant_id, table, installed),
            "created_at": created,
            "updated_at": created,
        }

    def provider_rows(self, tenant_id: str, kind: str) -> list[dict[str, Any]]:
        """The tenant's rows of one provider table, in insertion order, with `declaration`."""
        rows = []
        for installed in self.installed():
            provider = installed.package.declaration[kind]
            if provider is None:
                continue
            row = self.base_row(tenant_id, f"{kind}_installations", installed)
            identity = {
                "tenant_id": tenant_id,
                "provider": self.PROVIDER_NAME[kind](provider),
                "plugin_unique_identifier": installed.unique_identifier,
                "plugin_id": installed.plugin_id,
            }
            if kind == "model":  # AIModelInstallation declares provider before tenant_id
                identity = {"provider": identity.pop("provider"), **identity}
            row.update(identity)
            row["declaration"] = provider
            if kind == "agent_strategy":
                meta = installed.package.declaration["meta"]
                row["meta"] = _struct_value(PluginMeta, meta)
            rows.append(row)
        return rows

    def installation_row(self, tenant_id: str, installed: _Installed) -> dict[str, Any]:
        """models.PluginInstallation."""
        row = self.base_row(tenant_id, "plugin_installations", installed)
        row.update(
            tenant_id=tenant_id,
            plugin_id=installed.plugin_id,
            plugin_unique_identifier=installed.unique_identifier,
            runtime_type=RUNTIME_TYPE,
            endpoints_setups=0,
            endpoints_active=0,
            source=SOURCE,
            meta=GoMap(),
        )
        return row

    def listing(self, tenant_id: str, installed: _Installed) -> dict[str, Any]:
        """manage_plugin.go's installation item of /list and /{category}/list."""
        row = self.installation_row(tenant_id, installed)
        declaration = installed.package.declaration
        return {
            "id": row["id"],
            "name": declaration["name"],
            "plugin_id": installed.plugin_id,
            "tenant_id": tenant_id,
            "plugin_unique_identifier": installed.unique_identifier,
            "endpoints_active": 0,
            "endpoints_setups": 0,
            "installation_id": row["id"],
            "declaration": declaration,
            "runtime_type": RUNTIME_TYPE,
            "version": declaration["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "source": SOURCE,
            "checksum": installed.checksum,
            "meta": GoMap(),
        }

    def find(self, unique_identifier: str) -> _Installed | None:
        return next((i for i in self.installed() if i.unique_identifier == unique_identifier), None)


def _struct_value(cls: type[GoStruct], value: dict[str, Any]) -> Any:
    return StructValue(cls, dict(value))


# Answers ----------------------------------------------------------------------------------


def _success(data: Any) -> Response:
    return json_answer(200, envelopes.success(encode_any(data)))


def _failure(error_type: ErrorType, message: str) -> Response:
    """A service's failure: HTTP 200, the error in the envelope."""
    return error_answer(200, error_type, message)


def _page(rows: list[Any], page: int, page_size: int) -> list[Any]:
    """db.Page: OFFSET (page-1)*size LIMIT size."""
    start = (page - 1) * page_size
    return rows[max(start, 0) : max(start, 0) + page_size]


Handler = Callable[[Request, dict[str, Any], Catalog], Any]


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    request: type[_Request] | None
    handler: Handler | None
    """None: the emulator does not implement it (the daemon's failure envelope)."""


def _list_providers(kind: str) -> Handler:
    def handler(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
        rows = catalog.provider_rows(bound["tenant_id"], kind)
        return _success(_page(rows, bound["page"], bound["page_size"]))

    return handler


def _one_provider(kind: str, missing: tuple[ErrorType, str]) -> Handler:
    def handler(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
        rows = catalog.provider_rows(bound["tenant_id"], kind)
        row = next((r for r in rows if r["plugin_id"] == bound["plugin_id"]), None)
        if row is None:
            return _failure(*missing)
        if row["provider"] != bound["provider"]:
            return _failure(ErrorType.PLUGIN_NOT_FOUND, "plugin not found")
        return _success(row)

    return handler


_NOT_FOUND = (ErrorType.PLUGIN_NOT_FOUND, "plugin not found")
# GetDatasource does not tell gorm's ErrRecordNotFound apart: it answers its text as a 500.
_DATASOURCE_NOT_FOUND = (ErrorType.INTERNAL, "record not found")


def _model_bindings(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    bindings = []
    seen = set()
    for row in catalog.provider_rows(bound["tenant_id"], "model"):
        key = (row["plugin_id"], row["provider"])
        if key in seen:
            continue
        seen.add(key)
        installed = next(i for i in catalog.installed() if i.plugin_id == row["plugin_id"])
        installation = catalog.installation_row(bound["tenant_id"], installed)
        bindings.append(
            {
                "provider": row["provider"],
                "installation_id": installation["id"],
                "plugin_id": row["plugin_id"],
                "plugin_unique_identifier": row["plugin_unique_identifier"],
                "runtime_type": RUNTIME_TYPE,
                "source": SOURCE,
                "version": installed.version,
                "verified": installed.package.declaration["verified"],
            }
        )
    # ORDER BY plugin_installations.created_at DESC
    return _success(list(reversed(bindings)))


def _check_existence(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    rows = catalog.provider_rows(bound["tenant_id"], "tool")
    found = {(row["plugin_id"], row["provider"]) for row in rows}
    asked = bound["provider_ids"]
    return _success([(item["plugin_id"], item["provider_name"]) in found for item in asked])


def _newest_first(catalog: Catalog) -> list[_Installed]:
    """ORDER BY created_at DESC: the last plugin loaded is the newest installation."""
    return list(reversed(catalog.installed()))


def _list_plugins(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    tenant_id = bound["tenant_id"]
    everything = _newest_first(catalog)
    page = _page(everything, bound["page"], bound["page_size"])
    items = [catalog.listing(tenant_id, installed) for installed in page]
    return _success({"list": items, "total": len(everything)})


def _list_by_category(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    if bound["category"] not in CATEGORIES:
        return _failure(ErrorType.BAD_REQUEST, "invalid plugin category")
    matches = [
        installed
        for installed in _newest_first(catalog)
        if installed.package.category == bound["category"] and _matches_filters(installed, bound)
    ]
    start = (bound["page"] - 1) * bound["page_size"]
    page = matches[start : start + bound["page_size"]]
    items = [catalog.listing(bound["tenant_id"], installed) for installed in page]
    return _success({"list": items, "has_more": len(matches) > start + bound["page_size"]})


def _matches_filters(installed: _Installed, bound: dict[str, Any]) -> bool:
    declaration = installed.package.declaration
    tags = bound["tags"] or []
    if tags and not set(tags) & set(declaration["tags"] or []):
        return False
    query = bound["query"].lower()
    if not query:
        return True
    language = bound["language"]
    candidates = [
        installed.plugin_id,
        declaration["name"],
        _localized(declaration["label"], language),
        _localized(declaration["description"], language),
    ]
    return any(query in candidate.lower() for candidate in candidates)


def _localized(text: dict[str, Any], language: str) -> str:
    localized: str = text.get(language, "") if language in ("ja_JP", "zh_Hans", "pt_BR") else ""
    return localized or str(text["en_US"])


_CATEGORY_TABLES = {
    "tool": "tool",
    "model": "model",
    "datasource": "datasource",
    "agent-strategy": "agent_strategy",
    "trigger": "trigger",
}


def _installed_ids(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    category = bound["category"]
    if category == "extension":
        ids = [i.plugin_id for i in _newest_first(catalog) if i.package.category == "extension"]
    elif category in _CATEGORY_TABLES:
        rows = catalog.provider_rows(bound["tenant_id"], _CATEGORY_TABLES[category])
        ids = list(dict.fromkeys(row["plugin_id"] for row in reversed(rows)))
    else:
        return _failure(ErrorType.BAD_REQUEST, "invalid plugin category")
    return _success({"plugin_ids": ids})


def _fetch_batch(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    wanted = set(bound["plugin_ids"])
    items = []
    for installed in catalog.installed():
        if installed.plugin_id in wanted:
            row = catalog.installation_row(bound["tenant_id"], installed)
            row.update(
                version=installed.version,
                checksum=installed.checksum,
                declaration=installed.package.declaration,
            )
            items.append(row)
    return _success(items[:256])


def _missing(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    installed = {i.plugin_id: i.unique_identifier for i in catalog.installed()}
    result = []
    for identifier in bound["plugin_unique_identifiers"]:
        plugin_id = identifier.split(":")[0] if identifier.count(":") == 1 else identifier
        current = installed.get(plugin_id)
        if current is None:
            result.append({"plugin_unique_identifier": identifier, "current_identifier": ""})
        elif current != identifier:
            result.append({"plugin_unique_identifier": identifier, "current_identifier": current})
    return _success(result)


def _no_tasks(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    return _success([])


def _no_such_task(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    return _failure(ErrorType.INTERNAL, "record not found")


def _no_endpoints(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    return _success([])


def _debugging_key(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    key = catalog.debugging_keys.setdefault(bound["tenant_id"], str(uuid.uuid4()))
    return _success({"key": key})


def _fetch_identifier(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    return _success(catalog.find(bound["PluginUniqueIdentifier"]) is not None)


def _fetch_manifest(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    installed = catalog.find(bound["PluginUniqueIdentifier"])
    if installed is None:
        return _failure(ErrorType.BAD_REQUEST, "plugin not found")
    return _success(installed.package.declaration)


def _decode_from_identifier(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    installed = catalog.find(bound["PluginUniqueIdentifier"])
    if installed is None:
        return _failure(ErrorType.BAD_REQUEST, "plugin package not found, please upload it firstly")
    return _success(
        GoMap(
            unique_identifier=installed.unique_identifier,
            manifest=installed.package.declaration,
            verification=None,
        )
    )


def _asset(request: Request, bound: dict[str, Any], catalog: Catalog) -> Any:
    asset_id = request.path_params["id"]
    for installed in catalog.installed():
        if asset_id in installed.package.assets:
            return Response(
                installed.package.assets[asset_id], media_type="application/octet-stream"
            )
    # The daemon's handler returns without writing when the file does not exist.
    return Response(b"", status_code=200)


M = "/management"
ROUTES: tuple[_Route, ...] = (
    _Route("POST", "/debugging/key", RequestGetRemoteDebuggingKey, _debugging_key),
    _Route("POST", f"{M}/install/upload/package", None, None),
    _Route("POST", f"{M}/install/upload/bundle", None, None),
    _Route("POST", f"{M}/install/identifiers", None, None),
    _Route("POST", f"{M}/install/upgrade", None, None),
    _Route("GET", f"{M}/install/tasks/{{id}}", _TaskId, _no_such_task),
    _Route("POST", f"{M}/install/tasks/delete_all", None, None),
    _Route("POST", f"{M}/install/tasks/{{id}}/delete", None, None),
    _Route("POST", f"{M}/install/tasks/{{id}}/delete/{{identifier:path}}", None, None),
    _Route("GET", f"{M}/install/tasks", _Paged, _no_tasks),
    _Route("GET", f"{M}/decode/from_identifier", _ByIdentifierNoTenant, _decode_from_identifier),
    _Route("GET", f"{M}/fetch/manifest", _ByIdentifier, _fetch_manifest),
    _Route("GET", f"{M}/fetch/identifier", _ByIdentifierNoTenant, _fetch_identifier),
    _Route("GET", f"{M}/fetch/readme", None, None),
    _Route("POST", f"{M}/uninstall", None, None),
    _Route("GET", f"{M}/list", _Paged, _list_plugins),
    _Route("GET", f"{M}/installation/ids", listInstalledPluginIDsRequest, _installed_ids),
    _Route("POST", f"{M}/installation/fetch/batch", _BatchFetch, _fetch_batch),
    _Route("POST", f"{M}/installation/missing", _Missing, _missing),
    _Route("GET", f"{M}/models/bindings", listModelPluginBindingsRequest, _model_bindings),
    _Route("GET", f"{M}/models", _Paged, _list_providers("model")),
    _Route("GET", f"{M}/tools", _Paged, _list_providers("tool")),
    _Route("GET", f"{M}/tool", _OneProvider, _one_provider("tool", _NOT_FOUND)),
    _Route("GET", f"{M}/triggers", _Paged, _list_providers("trigger")),
    _Route("GET", f"{M}/trigger", _OneProvider, _one_provider("trigger", _NOT_FOUND)),
    _Route("POST", f"{M}/tools/check_existence", _CheckExistence, _check_existence),
    _Route("GET", f"{M}/agent_strategies", _Paged, _list_providers("agent_strategy")),
    _Route("GET", f"{M}/agent_strategy", _OneProvider, _one_provider("agent_strategy", _NOT_FOUND)),
    _Route("GET", f"{M}/datasources", _Paged, _list_providers("datasource")),
    _Route(
        "GET",
        f"{M}/datasource",
        _OneProvider,
        _one_provider("datasource", _DATASOURCE_NOT_FOUND),
    ),
    # after the fixed paths: gin prefers a static segment to `:category`
    _Route("GET", f"{M}/{{category}}/list", listPluginsByCategoryRequest, _list_by_category),
    _Route("POST", "/endpoint/setup", None, None),
    _Route("POST", "/endpoint/remove", None, None),
    _Route("POST", "/endpoint/update", None, None),
    _Route("GET", "/endpoint/list", _EndpointPaged, _no_endpoints),
    _Route("GET", "/endpoint/list/plugin", _PluginEndpointPaged, _no_endpoints),
    _Route("POST", "/endpoint/enable", None, None),
    _Route("POST", "/endpoint/disable", None, None),
    _Route("GET", "/asset/{id}", None, _asset),
    _Route("GET", "/extract-asset/", None, None),
)
"""Every route of the daemon's plugin group but dispatch (internal/server/http_server.go)."""


def add_routes(app: FastAPI) -> None:
    """Mount the management routes on `app`; they read `app.state.plugins`."""
    app.state.catalog = Catalog(app.state.plugins)
    for route in ROUTES:
        app.add_api_route(
            PREFIX + route.path,
            _endpoint(route),
            methods=[route.method],
            name=route.path,
            summary=f"{route.method} {route.path}"
            + ("" if route.handler else " (not implemented by the emulator)"),
        )


def _endpoint(route: _Route) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        if request.headers.get("x-api-key", "") != request.app.state.settings.key:
            return error_answer(401, ErrorType.UNAUTHORIZED, "unauthorized")
        if route.handler is None:
            return _failure(ErrorType.INTERNAL, _unimplemented(route))
        bound: dict[str, Any] = {}
        if route.request is not None:
            binding = await _bind(request, route.request)
            if isinstance(binding, Response):
                return binding
            bound = binding
        try:
            result: Response = route.handler(request, bound, request.app.state.catalog)
        except DeclarationError as error:
            return _failure(ErrorType.INTERNAL, str(error))
        return result

    return answer


def _unimplemented(route: _Route) -> str:
    return (
        f"the emulator does not implement {route.method} /plugin/{{tenant_id}}{route.path}: "
        "it serves the loaded plugins and cannot install, upgrade, uninstall or set up anything"
    )
