"""Which side a contract change breaks, in each direction.

Two contract sets (folders written by `contracts export`) are compared route by route and
member by member. Each change gets two verdicts:

- old producer, new consumer: is what an old producer sends still accepted?
- new producer, old consumer: is what a new producer sends accepted by an old consumer?

For request bodies the producer is Dify and the consumer the daemon; for response items the
producer is the daemon and the consumer Dify. An unknown member is ignored by the consumer
(the daemon and Dify both drop it), so it never breaks by itself, but the verdict says it is
dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALL = None
"""An enum of ALL means any value of the type."""


class UnusableContract(Exception):
    """A folder that is not a contract set (exit status 2)."""


@dataclass(frozen=True)
class Verdict:
    breaks: bool
    reason: str

    @classmethod
    def fine(cls, reason: str) -> Verdict:
        return cls(False, reason)

    @classmethod
    def breaking(cls, reason: str) -> Verdict:
        return cls(True, reason)


@dataclass(frozen=True)
class Change:
    route: str
    part: str
    """"request" or "response"."""
    path: str
    what: str
    old_to_new: Verdict
    new_to_old: Verdict

    @property
    def breaks(self) -> bool:
        return self.old_to_new.breaks or self.new_to_old.breaks


@dataclass
class Member:
    """What a schema says of one member: enough to judge a change."""

    types: set[str] = field(default_factory=set)
    values: set[str] | None = ALL
    required: bool = False
    min_length: int = 0
    others: dict[str, str] = field(default_factory=dict)
    """Every other keyword (maxLength, pattern, if/then, ...) as JSON: compared, not judged."""


JUDGED = {"type", "enum", "const", "minLength", "properties", "required", "items", "anyOf", "$ref"}
IGNORED = {"x-go", "title", "description", "$defs", "$schema", "$id"}
ROUTE_ATTRIBUTES = ("method", "access_type", "action", "streamed")

PARTIES = {
    "request": ("Dify", "daemon"),
    "response": ("daemon", "Dify"),
    "envelope": ("daemon", "Dify"),
}


def diff(old: Path, new: Path) -> list[Change]:
    """Every change from the contract set in `old` to the one in `new`."""
    old_index, new_index = _index(old), _index(new)
    old_routes, new_routes = _routes(old, old_index), _routes(new, new_index)
    changes: list[Change] = []
    for path in sorted(old_routes.keys() | new_routes.keys()):
        if path not in new_routes:
            changes.append(_route_removed(path))
        elif path not in old_routes:
            changes.append(_route_added(path))
        else:
            changes.extend(_route_changes(path, old_routes[path], new_routes[path]))
            for part in ("request", "response"):
                old_members = _members(old, old_routes[path][f"{part}_schema"])
                new_members = _members(new, new_routes[path][f"{part}_schema"])
                changes.extend(_member_changes(path, part, old_members, new_members))
    old_envelope, new_envelope = old_index.get("envelope_schema"), new_index.get("envelope_schema")
    if isinstance(old_envelope, str) and isinstance(new_envelope, str):
        changes.extend(
            _member_changes(
                "*", "envelope", _members(old, old_envelope), _members(new, new_envelope)
            )
        )
    return changes


def render(changes: list[Change]) -> str:
    if not changes:
        return "no changes"
    lines = []
    for change in changes:
        producer, consumer = PARTIES.get(change.part, ("producers", "consumers"))
        where = f"{change.part} {change.path}" if change.path else change.part
        lines.append(f"{change.route} {where}: {change.what}")
        lines.append(f"  old {producer} -> new {consumer}: {_word(change.old_to_new)}")
        lines.append(f"  new {producer} -> old {consumer}: {_word(change.new_to_old)}")
    broken = sum(change.breaks for change in changes)
    lines.append(f"{len(changes)} change(s), {broken} breaking")
    return "\n".join(lines)


def as_json(changes: list[Change]) -> list[dict[str, Any]]:
    return [
        {
            "route": c.route,
            "part": c.part,
            "path": c.path,
            "what": c.what,
            "old_to_new": {"breaks": c.old_to_new.breaks, "reason": c.old_to_new.reason},
            "new_to_old": {"breaks": c.new_to_old.breaks, "reason": c.new_to_old.reason},
        }
        for c in changes
    ]


def _word(verdict: Verdict) -> str:
    return ("BREAKS: " if verdict.breaks else "ok: ") + verdict.reason


# Routes -----------------------------------------------------------------------------------


def _index(folder: Path) -> dict[str, Any]:
    index = _load(folder / "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("routes"), list):
        raise UnusableContract(f"{folder / 'index.json'}: not an index with a list of routes")
    return index


def _routes(folder: Path, index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    routes: dict[str, dict[str, Any]] = {}
    for route in index["routes"]:
        if not isinstance(route, dict) or not isinstance(route.get("path"), str):
            raise UnusableContract(f"{folder / 'index.json'}: a route without a path: {route!r}")
        if route["path"] in routes:
            raise UnusableContract(f"{folder / 'index.json'}: route {route['path']} twice")
        for part in ("request_schema", "response_schema"):
            _schema_file(folder, route.get(part))
        routes[route["path"]] = route
    return routes


def _schema_file(folder: Path, file: Any) -> Path:
    """A schema named by the index: a relative path inside the contract folder."""
    if not isinstance(file, str) or Path(file).is_absolute() or ".." in Path(file).parts:
        raise UnusableContract(f"{folder / 'index.json'}: {file!r} is not a schema in the folder")
    return folder / file


def _route_changes(path: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for attribute in ROUTE_ATTRIBUTES:
        if old.get(attribute) != new.get(attribute):
            disagree = f"old and new disagree on the route's {attribute}"
            yield Change(
                path,
                "route",
                attribute,
                f"{attribute} {old.get(attribute)!r} -> {new.get(attribute)!r}",
                Verdict.breaking(disagree),
                Verdict.breaking(disagree),
            )


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UnusableContract(f"{path}: {error}") from None


def _route_added(path: str) -> Change:
    return Change(
        path,
        "route",
        "",
        "route added",
        Verdict.fine("old producers never call it"),
        Verdict.breaking("a new producer calling it gets the old daemon's NoRoute 404"),
    )


def _route_removed(path: str) -> Change:
    return Change(
        path,
        "route",
        "",
        "route removed",
        Verdict.breaking("an old producer calling it gets the new daemon's NoRoute 404"),
        Verdict.fine("new producers no longer call it"),
    )


# Members ----------------------------------------------------------------------------------


def _members(folder: Path, file: str) -> dict[str, Member]:
    schema = _load(_schema_file(folder, file))
    if not isinstance(schema, dict):
        raise UnusableContract(f"{folder / file}: not a JSON Schema object")
    try:
        members = dict(_walk(schema, schema, "", frozenset()))
    except (AttributeError, TypeError, KeyError) as error:
        raise UnusableContract(f"{folder / file}: not a schema this tool reads ({error})") from None
    members["(whole)"] = Member(types={"object"}, required=True, others=_others(schema))
    return members


def _walk(
    node: Any, document: dict[str, Any], path: str, ancestors: frozenset[str]
) -> Iterator[tuple[str, Member]]:
    """Each member below `node`, by a dotted path (`[]` for array items)."""
    node, ancestors = _resolved(node, document, ancestors)
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        member = _member(child, document, ancestors)
        member.required = name in required
        yield child_path, member
        yield from _walk(child, document, child_path, ancestors)
    for variant in node.get("anyOf", []):
        yield from _walk(variant, document, path, ancestors)
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], document, f"{path}[]", ancestors)


def _resolved(
    node: Any, document: dict[str, Any], ancestors: frozenset[str]
) -> tuple[dict[str, Any], frozenset[str]]:
    if not isinstance(node, dict):
        return {}, ancestors
    reference = node.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return node, ancestors
    name = reference.removeprefix("#/$defs/")
    if name in ancestors:
        return {}, ancestors  # a struct inside itself: its members are listed above already
    definitions = document.get("$defs", {})
    if name not in definitions:
        raise KeyError(f"{reference} is not defined")
    resolved: dict[str, Any] = definitions[name]
    return {**resolved, "type": resolved.get("type", "object")}, ancestors | {name}


def _member(node: Any, document: dict[str, Any], ancestors: frozenset[str]) -> Member:
    resolved = _resolved(node, document, ancestors)[0]
    member = Member(others=_others(resolved))
    value_sets = []
    for variant in _variants(resolved):
        variant = _resolved(variant, document, ancestors)[0]
        types = _types(variant)
        member.types |= types
        member.min_length = max(member.min_length, variant.get("minLength", 0))
        member.others.update(
            {
                f"anyOf.{key}": text
                for key, text in _others(variant).items()
                if variant is not resolved
            }
        )
        if types != {"null"}:
            value_sets.append(_values(variant))
    if value_sets and all(values is not ALL for values in value_sets):
        member.values = set().union(*value_sets)  # type: ignore[arg-type]
    return member


def _others(node: dict[str, Any]) -> dict[str, str]:
    return {
        key: json.dumps(value, sort_keys=True)
        for key, value in node.items()
        if key not in JUDGED and key not in IGNORED
    }


def _variants(node: dict[str, Any]) -> list[dict[str, Any]]:
    variants: list[dict[str, Any]] = node.get("anyOf", [node])
    return variants


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return set(kind)
    if isinstance(kind, str):
        return {kind}
    if "$ref" in node or "properties" in node:
        return {"object"}
    if "const" in node:
        return {_json_type(node["const"])}
    return {"any"}


def _values(node: dict[str, Any]) -> set[str] | None:
    if "const" in node:
        return {json.dumps(node["const"])}
    if "enum" in node:
        return {json.dumps(value) for value in node["enum"]}
    return ALL


def _json_type(value: Any) -> str:
    return {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), "any")


def _member_changes(
    route: str, part: str, old: dict[str, Member], new: dict[str, Member]
) -> Iterator[Change]:
    producer, consumer = PARTIES[part]
    for path in sorted(old.keys() | new.keys()):
        if path not in old:
            yield _added(route, part, path, new[path], producer, consumer)
        elif path not in new:
            yield _removed(route, part, path, old[path], producer, consumer)
        else:
            yield from _changed(route, part, path, old[path], new[path], producer, consumer)
            yield from _constraint_changes(route, part, path, old[path], new[path])


def _added(
    route: str, part: str, path: str, member: Member, producer: str, consumer: str
) -> Change:
    ignored = Verdict.fine(f"an old {consumer} ignores `{path}`: its value is dropped there")
    if member.required:
        missing = Verdict.breaking(
            f"old {producer} does not send `{path}`; the new {consumer} requires it"
        )
        return Change(route, part, path, "required member added", missing, ignored)
    absent = Verdict.fine(f"`{path}` is optional: old {producer} simply leaves it out")
    return Change(route, part, path, "optional member added", absent, ignored)


def _removed(
    route: str, part: str, path: str, member: Member, producer: str, consumer: str
) -> Change:
    ignored = Verdict.fine(f"the new {consumer} ignores `{path}` if old {producer} still sends it")
    if member.required:
        gone = Verdict.breaking(
            f"new {producer} no longer sends `{path}`; an old {consumer} requires it"
        )
        return Change(route, part, path, "required member removed", ignored, gone)
    fine = Verdict.fine(f"an old {consumer} never required `{path}`")
    return Change(route, part, path, "optional member removed", ignored, fine)


def _changed(
    route: str, part: str, path: str, old: Member, new: Member, producer: str, consumer: str
) -> Iterator[Change]:
    def change(what: str, old_to_new: Verdict, new_to_old: Verdict) -> Change:
        return Change(route, part, path, what, old_to_new, new_to_old)

    if old.required != new.required:
        if new.required:
            yield change(
                "made required",
                Verdict.breaking(
                    f"old {producer} may leave `{path}` out; the new {consumer} requires it"
                ),
                Verdict.fine(f"new {producer} always sends `{path}`"),
            )
        else:
            yield change(
                "made optional",
                Verdict.fine(f"old {producer} always sends `{path}`"),
                Verdict.breaking(
                    f"new {producer} may leave `{path}` out; an old {consumer} requires it"
                ),
            )
    narrowed = {kind for kind in old.types if not _covered(kind, new.types)}
    widened = {kind for kind in new.types if not _covered(kind, old.types)}
    if narrowed or widened:
        yield change(
            f"type {_listed(old.types)} -> {_listed(new.types)}",
            _refused(narrowed, f"old {producer} may send {_listed(narrowed)}", consumer, new=True),
            _refused(widened, f"new {producer} may send {_listed(widened)}", consumer, new=False),
        )
    if old.values != new.values:
        yield change(
            f"values {_values_text(old.values)} -> {_values_text(new.values)}",
            _refused(
                _beyond(old.values, new.values),
                f"old {producer} may send {_values_text(_beyond(old.values, new.values))}",
                consumer,
                new=True,
            ),
            _refused(
                _beyond(new.values, old.values),
                f"new {producer} may send {_values_text(_beyond(new.values, old.values))}",
                consumer,
                new=False,
            ),
        )
    if old.min_length != new.min_length:
        stricter = new.min_length > old.min_length
        yield change(
            f"minimum length {old.min_length} -> {new.min_length}",
            Verdict(
                stricter,
                f"old {producer} may send shorter `{path}` than the new minimum"
                if stricter
                else "the new minimum is looser",
            ),
            Verdict(
                not stricter,
                f"new {producer} may send shorter `{path}` than the old minimum"
                if not stricter
                else "the old minimum is looser",
            ),
        )


def _constraint_changes(
    route: str, part: str, path: str, old: Member, new: Member
) -> Iterator[Change]:
    keys = sorted(
        key
        for key in old.others.keys() | new.others.keys()
        if old.others.get(key) != new.others.get(key)
    )
    if keys:
        unjudged = Verdict.breaking(f"not judged: {', '.join(keys)} changed; check it by hand")
        yield Change(
            route, part, path, f"constraints changed: {', '.join(keys)}", unjudged, unjudged
        )


def _covered(kind: str, types: set[str]) -> bool:
    """Whether a member of `types` accepts every value of `kind`."""
    return kind in types or "any" in types or (kind == "integer" and "number" in types)


def _refused(extra: Any, sent: str, consumer: str, new: bool) -> Verdict:
    which = "the new" if new else "an old"
    if extra is ALL or extra:
        return Verdict.breaking(f"{sent}, which {which} {consumer} refuses")
    return Verdict.fine(f"everything it may send, {which} {consumer} accepts")


def _beyond(values: set[str] | None, limit: set[str] | None) -> set[str] | None:
    """The values in `values` that `limit` does not allow (ALL when unbounded)."""
    if limit is ALL:
        return set()
    if values is ALL:
        return ALL
    return values - limit


def _listed(items: set[str]) -> str:
    return "|".join(sorted(items)) or "nothing"


def _values_text(values: set[str] | None) -> str:
    return "any value" if values is ALL else "{" + ", ".join(sorted(values)) + "}"
