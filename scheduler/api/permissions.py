"""Who may call the API: staff only; writes need the permission their view names.

The names are those of `scheduler/permissions.py`, so the API allows exactly what the
dashboard and the admin allow. Anonymous callers get 401, others 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from scheduler.permissions import is_staff


class StaffPermission(BasePermission):
    """Staff only; then the permission `view.required_permissions` names for the call.

    `required_permissions` maps a viewset action ("create", "run") or, on a plain view, an
    HTTP method in lower case ("post") to a permission name; calls it does not name need none.
    """

    message = "staff only: this account is not a member of staff"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not is_staff(user):
            return False
        required: Mapping[str, str] = getattr(view, "required_permissions", {})
        key = getattr(view, "action", None) or (request.method or "").lower()
        permission = required.get(key)
        if permission is None or user.has_perm(permission):
            return True
        # A fresh instance per request (DRF's get_permissions), so the message is this call's.
        self.message = f"permission required: {permission}"
        return False
