"""Inspection for operators (docs/admin.md): the admin API at /admin/api (``routes``), the
text of `scim-bridge tree` and `explain` (``render``), and `scim-bridge hierarchy check`
(``check``). Nothing is imported here, so that the CLI does not load the web stack."""
