"""Media on S3 (or any S3-compatible store), one key prefix per tenant, never overwriting a key.

Locally, django-tenants' TenantFileSystemStorage keeps files under MEDIA_ROOT/<schema>/. On S3 the same
rule holds: every key starts with the schema of the connection at the time of the call, so a name can
never reach another tenant's files (``..`` out of the prefix is refused by ``safe_join``). Writes are
conditional (``If-None-Match: *``): when a key exists, even one written a moment ago by another process,
the file gets another name with Django's random suffix instead of replacing it.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, is_seekable

MAX_NAME_ATTEMPTS = 10


class TenantS3Storage(S3Storage):  # type: ignore[misc]  # django-storages is untyped
    file_overwrite = False  # class attribute: the AWS_S3_FILE_OVERWRITE setting cannot turn it back on

    def __init__(self, **kwargs: Any) -> None:
        self._base_location = str(kwargs.pop("location", getattr(settings, "AWS_LOCATION", ""))).strip("/")
        super().__init__(**kwargs)

    @property
    def location(self) -> str:
        schema = str(getattr(connection, "schema_name", "public"))
        return f"{self._base_location}/{schema}" if self._base_location else schema

    @location.setter
    def location(self, value: str) -> None:
        self._base_location = value.strip("/")

    def _save(self, name: str, content: Any) -> str:
        for _attempt in range(MAX_NAME_ATTEMPTS):
            try:
                return self._put_new(name, content)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") not in (
                    "PreconditionFailed",
                    "ConditionalRequestConflict",
                ):
                    raise
            directory, file_name = os.path.split(name)
            root, ext = os.path.splitext(file_name)
            name = os.path.join(directory, self.get_alternative_name(root, ext))
        raise FileExistsError(f"no free name for {name!r} after {MAX_NAME_ATTEMPTS} attempts")

    def _put_new(self, name: str, content: Any) -> str:
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        params = self._get_write_parameters(key, content)
        if is_seekable(content):
            content.seek(0, os.SEEK_SET)
        data = content.read()
        body = data.encode() if isinstance(data, str) else data
        self.bucket.Object(key).put(Body=body, IfNoneMatch="*", **params)
        return str(cleaned)
