"""SCIM filters → SQL: where a SCIM search turns into a database query.

scim2-models parses and validates the filter; this :class:`FilterVisitor` translates its tree
into a SQLAlchemy condition on the resource id, reading the rows that ``store/flatten.py``
writes. Its semantics follow scim2-models' own evaluator (``ScimFilter.match``) exactly: the
storage contract suite checks every operator against it. It is written here because no
library translates scim2-models filters to SQL over an indexed attribute table.

Every comparison becomes ``id IN (SELECT resource_id FROM attribute_index WHERE path = … AND
text = …)``, which both SQLite and PostgreSQL answer from the ``(resource_type, path, text)``
index, so a filter costs the same at 100 and at 100,000 users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import Resource
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from scim2_models.path.resolution import AttributeBinding, coerce_value

# _resolve_filter_path is private (scim2-models is pinned): it resolves exactly as the evaluator.
from scim2_models.path.visitor import (  # type: ignore[attr-defined]
    FilterVisitor,
    _resolve_filter_path,
)
from sqlalchemy import (
    ColumnElement,
    FromClause,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)

from .flatten import attribute_key, extension_of, fold, format_datetime, scalar
from .tables import EFFECTIVE, GROUPS, INDEX, MEMBERS, USERS

ORDERING = {
    CompareOperator.gt: "__gt__",
    CompareOperator.ge: "__ge__",
    CompareOperator.lt: "__lt__",
    CompareOperator.le: "__le__",
}


@dataclass(frozen=True)
class Rows:
    """Where the values of one attribute are: a FROM clause with resource_id, item, kind,
    text and number columns, plus the conditions that select the attribute."""

    source: FromClause
    where: tuple[ColumnElement[bool], ...]

    def select_ids(self, *conditions: ColumnElement[bool]) -> Any:
        return select(self.source.c.resource_id).where(*self.where, *conditions)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _present(rows: FromClause) -> ColumnElement[bool]:
    """RFC 7644 §3.4.2.2 ``pr``: an empty string is absent; false and 0 are present."""
    return not_(and_(rows.c.kind == "s", rows.c.text == ""))


def _operand(binding: AttributeBinding, value: Any, op: CompareOperator) -> Any:
    """The filter's value in the form the rows hold (see flatten.scalar)."""
    coerced = coerce_value(binding, value, op)
    if coerced is None:
        return None
    return scalar(coerced, binding.case_exact)


class SqlFilter(FilterVisitor[ColumnElement[bool]]):
    """Translate a filter on one resource type into a condition on ``id_column``."""

    def __init__(
        self, model: type[Resource[Any]], resource_type: str, id_column: ColumnElement[Any]
    ):
        self.model = model
        self.resource_type = resource_type
        self.id_column = id_column

    # -- where the values of an attribute are ----------------------------------

    def _rows(self, binding: AttributeBinding, *, head_only: bool = False) -> Rows | None:
        """Rows of the attribute a binding names; None for an attribute with no values."""
        field, sub = binding.field_name, (None if head_only else binding.sub_field_name)
        if self.resource_type == "Group" and field == "members":
            return self._member_rows(sub)
        if self.resource_type == "User" and field == "groups":
            return self._group_rows(sub)
        key = attribute_key(extension_of(binding.model), field, sub)
        rows = INDEX.alias()
        return Rows(rows, (rows.c.resource_type == self.resource_type, rows.c.path == key))

    def _member_rows(self, sub: str | None) -> Rows | None:
        columns = {
            None: (literal("e"), null()),
            "value": (literal("s"), MEMBERS.c.member_id),
            "type": (literal("s"), func.lower(MEMBERS.c.member_type)),
        }
        if sub not in columns:
            return None
        kind, text = columns[sub]
        source = select(
            MEMBERS.c.group_id.label("resource_id"),
            MEMBERS.c.member_id.label("item"),
            kind.label("kind"),
            text.label("text"),
            null().label("number"),
        ).subquery()
        return Rows(source, ())

    def _group_rows(self, sub: str | None) -> Rows | None:
        """User.groups: the groups the user is directly in, and those it inherits while active."""
        is_direct = (
            select(MEMBERS.c.group_id)
            .where(
                MEMBERS.c.group_id == EFFECTIVE.c.group_id,
                MEMBERS.c.member_id == EFFECTIVE.c.user_id,
            )
            .exists()
        )
        columns = {
            None: (literal("e"), null()),
            "value": (literal("s"), EFFECTIVE.c.group_id),
            "type": (literal("s"), case((is_direct, "direct"), else_="indirect")),
            "display": (literal("s"), GROUPS.c.display_name_key),
        }
        if sub not in columns:
            return None
        kind, text = columns[sub]
        source = (
            select(
                EFFECTIVE.c.user_id.label("resource_id"),
                EFFECTIVE.c.group_id.label("item"),
                kind.label("kind"),
                text.label("text"),
                null().label("number"),
            )
            .join(GROUPS, GROUPS.c.id == EFFECTIVE.c.group_id)
            .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
            .where(or_(USERS.c.active.is_(True), is_direct))
            .subquery()
        )
        return Rows(source, ())

    def _is_id(self, binding: AttributeBinding) -> bool:
        return binding.field_name == "id" and not extension_of(binding.model)

    # -- comparisons on the values of one cell --------------------------------

    @staticmethod
    def _matches(rows: FromClause, op: CompareOperator, operand: Any) -> ColumnElement[bool]:
        """The condition a row meets when it satisfies ``op operand`` (operand not null)."""
        kind, text, number = operand
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            if kind != "s":
                return false()
            escaped = _escape_like(text)
            pattern = {
                CompareOperator.co: f"%{escaped}%",
                CompareOperator.sw: f"{escaped}%",
                CompareOperator.ew: f"%{escaped}",
            }[op]
            return and_(rows.c.kind == "s", rows.c.text.like(pattern, escape="\\"))
        column = rows.c.number if kind == "n" else rows.c.text
        value = number if kind == "n" else text
        if op in (CompareOperator.eq, CompareOperator.ne):
            return and_(rows.c.kind == kind, column == value)
        return and_(rows.c.kind == kind, getattr(column, ORDERING[op])(value))

    def _compare_top(self, binding: AttributeBinding, node: Comparison) -> ColumnElement[bool]:
        if self._is_id(binding):
            return self._compare_id(node)
        rows = self._rows(binding)
        if rows is None:
            return true() if node.op == CompareOperator.ne and node.value is not None else false()
        operand = _operand(binding, node.value, node.op)
        multivalued = binding.is_multivalued and binding.sub_field_name is not None
        if operand is None:
            return self._compare_null(binding, rows, node.op, multivalued)
        src = rows.source
        if node.op == CompareOperator.ne:
            equal = rows.select_ids(self._matches(src, CompareOperator.eq, operand))
            return self.id_column.not_in(equal)
        return self.id_column.in_(rows.select_ids(self._matches(src, node.op, operand)))

    def _compare_null(
        self, binding: AttributeBinding, rows: Rows, op: CompareOperator, multivalued: bool
    ) -> ColumnElement[bool]:
        if op not in (CompareOperator.eq, CompareOperator.ne):
            return false()
        if not multivalued:
            has_value = self.id_column.in_(rows.select_ids())
            return not_(has_value) if op == CompareOperator.eq else has_value
        # A sub-attribute of a multi-valued attribute: eq null holds when the attribute is
        # absent or one of its entries lacks the sub-attribute; ne null is the opposite.
        entries = self._rows(binding, head_only=True)
        assert entries is not None
        entry = entries.source
        value_rows = rows.source
        lacking = entries.select_ids(
            entry.c.kind == "e",
            ~exists().where(
                *rows.where,
                value_rows.c.resource_id == entry.c.resource_id,
                value_rows.c.item == entry.c.item,
            ),
        )
        has_entries = self.id_column.in_(entries.select_ids(entry.c.kind == "e"))
        eq_null = or_(not_(has_entries), self.id_column.in_(lacking))
        return eq_null if op == CompareOperator.eq else not_(eq_null)

    def _compare_id(self, node: Comparison) -> ColumnElement[bool]:
        value = node.value
        column = self.id_column
        if value is None:
            return true() if node.op == CompareOperator.ne else false()
        if not isinstance(value, str):
            return true() if node.op == CompareOperator.ne else false()
        if node.op == CompareOperator.co:
            return column.like(f"%{_escape_like(value)}%", escape="\\")
        if node.op == CompareOperator.sw:
            return column.like(f"{_escape_like(value)}%", escape="\\")
        if node.op == CompareOperator.ew:
            return column.like(f"%{_escape_like(value)}", escape="\\")
        if node.op == CompareOperator.eq:
            return column == value  # type: ignore[no-any-return]
        if node.op == CompareOperator.ne:
            return column != value  # type: ignore[no-any-return]
        return getattr(column, ORDERING[node.op])(value)  # type: ignore[no-any-return]

    # -- the visitor ------------------------------------------------------------

    def _resolve(self, attr_path: AttrPath, *, for_comparison: bool) -> AttributeBinding | None:
        return _resolve_filter_path(
            self.model, attr_path, strict=False, for_comparison=for_comparison
        )

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        binding = self._resolve(node.attr_path, for_comparison=True)
        if binding is None:
            return false()
        return self._compare_top(binding, node)

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        binding = self._resolve(node.attr_path, for_comparison=False)
        if binding is None:
            return false()
        if self._is_id(binding):
            return true()
        return self.id_column.in_(self._present_ids(binding))

    def _present_ids(self, binding: AttributeBinding) -> Any:
        complex_head = binding.sub_field_name is None and binding.target_model is not None
        complex_head = complex_head and _has_sub_attributes(binding)
        if not complex_head:
            rows = self._rows(binding)
            if rows is None:
                return select(literal(None)).where(false())
            return rows.select_ids(_present(rows.source), rows.source.c.kind != "e")
        if binding.field_name == "members" and self.resource_type == "Group":
            rows = self._member_rows("value")
            assert rows is not None
            return rows.select_ids()
        key = attribute_key(extension_of(binding.model), binding.field_name)
        index = INDEX.alias()
        return select(index.c.resource_id).where(
            index.c.resource_type == self.resource_type,
            index.c.path.like(f"{_escape_like(key)}.%", escape="\\"),
            _present(index),
        )

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        binding = self._resolve(node.attr_path, for_comparison=False)
        if binding is None or not binding.is_multivalued:
            return false()
        entries = self._rows(binding, head_only=True)
        if entries is None:
            return false()
        field_type = binding.field_type
        entry = entries.source
        if isinstance(field_type, type) and _is_complex(field_type):
            condition = _EntryFilter(self, binding, field_type, entry).visit(node.val_filter)
            return self.id_column.in_(entries.select_ids(entry.c.kind == "e", condition))
        condition = _ScalarEntryFilter(binding, entry).visit(node.val_filter)
        return self.id_column.in_(entries.select_ids(condition))


def _is_complex(model: type[Any]) -> bool:
    return hasattr(model, "model_fields")


def _has_sub_attributes(binding: AttributeBinding) -> bool:
    field_type = binding.field_type
    return isinstance(field_type, type) and _is_complex(field_type)


class _EntryFilter(FilterVisitor[ColumnElement[bool]]):
    """The inner filter of ``emails[…]``, on one entry (rows sharing ``item``)."""

    def __init__(
        self,
        outer: SqlFilter,
        head: AttributeBinding,
        entry_model: type[Any],
        entry: FromClause,
    ):
        self.outer = outer
        self.head = head
        self.entry_model = entry_model
        self.entry = entry

    def _cell(self, attr_path: AttrPath, for_comparison: bool) -> tuple[Rows, Any] | None:
        sub = _resolve_filter_path(
            self.entry_model, attr_path, strict=False, for_comparison=for_comparison
        )
        if sub is None:
            return None
        if self.outer.resource_type == "Group" and self.head.field_name == "members":
            rows = self.outer._member_rows(sub.field_name)
        elif self.outer.resource_type == "User" and self.head.field_name == "groups":
            rows = self.outer._group_rows(sub.field_name)
        else:
            key = attribute_key(extension_of(self.head.model), self.head.field_name, sub.field_name)
            index = INDEX.alias()
            rows = Rows(
                index, (index.c.resource_type == self.outer.resource_type, index.c.path == key)
            )
        if rows is None:
            return None
        return rows, sub

    def _exists(self, rows: Rows, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        src = rows.source
        return exists().where(
            *rows.where,
            src.c.resource_id == self.entry.c.resource_id,
            src.c.item == self.entry.c.item,
            *conditions,
        )

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        cell = self._cell(node.attr_path, True)
        if cell is None:
            return true() if node.op == CompareOperator.ne and node.value is not None else false()
        rows, binding = cell
        operand = _operand(binding, node.value, node.op)
        if operand is None:
            if node.op == CompareOperator.eq:
                return not_(self._exists(rows))
            if node.op == CompareOperator.ne:
                return self._exists(rows)
            return false()
        if node.op == CompareOperator.ne:
            return not_(
                self._exists(rows, SqlFilter._matches(rows.source, CompareOperator.eq, operand))
            )
        return self._exists(rows, SqlFilter._matches(rows.source, node.op, operand))

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        cell = self._cell(node.attr_path, False)
        if cell is None:
            return false()
        rows, _ = cell
        return self._exists(rows, _present(rows.source))

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        return false()  # nested value selections are forbidden by the RFC errata


class _ScalarEntryFilter(FilterVisitor[ColumnElement[bool]]):
    """The inner filter of ``schemas[value eq "…"]``: ``value`` is the entry itself."""

    def __init__(self, head: AttributeBinding, row: FromClause):
        self.head = head
        self.row = row

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        if node.attr_path.attr.lower() != "value" or node.attr_path.sub_attr:
            return false()
        if node.value is None:
            return false() if node.op != CompareOperator.ne else true()
        operand = scalar(node.value, self.head.case_exact)
        if operand is None:
            return false()
        if node.op == CompareOperator.ne:
            return not_(SqlFilter._matches(self.row, CompareOperator.eq, operand))
        return SqlFilter._matches(self.row, node.op, operand)

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        if node.attr_path.attr.lower() != "value" or node.attr_path.sub_attr:
            return false()
        return _present(self.row)

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        return false()


def filter_condition(
    model: type[Resource[Any]], resource_type: str, id_column: ColumnElement[Any], node: FilterNode
) -> ColumnElement[bool]:
    """The SQL condition on ``id_column`` that selects the resources matching ``node``."""
    return SqlFilter(model, resource_type, id_column).visit(node)


__all__ = ["filter_condition", "fold", "format_datetime"]
