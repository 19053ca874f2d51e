"""`field__any=[...]`: `field = ANY(%s)` with the list as one array parameter.

An `__in` of a build batch's thousand ids costs Django a prepared value per element and psycopg a parsed
placeholder per element in a query text that differs with every batch size (so its parse cache misses);
one array parameter costs one of each, in a text that is always the same. Registered on every field in
CoreConfig.ready; the hot paths of the dispatcher and the campaign build use it."""

from __future__ import annotations

from typing import Any

from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):  # type: ignore[type-arg]
    lookup_name = "any"

    def get_prep_lookup(self) -> Any:
        prep = getattr(self.lhs.output_field, "get_prep_value", None)
        return [prep(v) if prep else v for v in self.rhs]

    def get_db_prep_lookup(self, value: Any, connection: Any) -> Any:
        return "%s", [list(value)]

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        kind = self.lhs.output_field.db_type(connection)
        return f"{lhs} = ANY({rhs}::{kind}[])", [*lhs_params, *rhs_params]


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)  # foreign keys keep lookups of their own
