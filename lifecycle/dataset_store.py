"""Datasets at rest: training and evaluation data can hold personal data, so
each dataset's file is encrypted (lifecycle.encrypted_csv) under a data key of its own, stored
wrapped by LOG_KEK (core.envelope) in a DatasetKey row. Destroying that key (governance.datasets)
makes the file unreadable for good while its SHA-256, the dataset's identity everywhere else,
stays.

Every read of a dataset's content goes through read_dataset_bytes / open_dataset /
copy_dataset_to: they ask the database for the key every time (a destroyed key is never used),
decrypt, and verify the plaintext's SHA-256. A dataset stored before encryption at rest has no
key and is read as it is, verified the same way, until `manage.py encrypt_datasets` encrypts it."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from core import audit, envelope
from core.actors import Actor
from lifecycle import encrypted_csv
from lifecycle.errors import DatasetIntegrityError, DatasetKeyDestroyed, DatasetKeysUnavailable
from lifecycle.models import Dataset, DatasetKey

log = logging.getLogger(__name__)
PLAIN_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    """An encrypted file written to storage, and the wrapped key that opens it."""

    name: str
    kek_id: str
    wrapped: bytes


def _identity(dataset: Dataset) -> bytes:
    return encrypted_csv.identity(name=dataset.name, version=dataset.version, sha256=dataset.sha256)


def _key_context(ident: bytes) -> bytes:
    # a wrapped key copied to another dataset's row does not open there
    return b"dataset-key\x1f" + ident


def _require_known_kek() -> None:
    """A dataset is never stored under a KEK that cannot open the datasets already stored: with a
    wrong LOG_KEK the upload is refused (503) rather than encrypted under a key nobody has."""
    _, keys = envelope.keks()
    if DatasetKey.objects.filter(destroyed_at__isnull=True).exclude(kek_id__in=list(keys)).exists():
        raise DatasetKeysUnavailable(
            "The dataset cannot be stored: LOG_KEK is not the key the stored datasets' keys were wrapped with "
            "(a wrong key, or a rotation without LOG_KEK_PREVIOUS)."
        )


def write_encrypted(*, name: str, version: int, sha256: str, data: bytes) -> StoredFile:
    """Encrypt `data` (whose SHA-256 is `sha256`) under a new data key and store the file. The
    caller saves the Dataset and its DatasetKey in its transaction, and deletes the file if
    that transaction fails."""
    _require_known_kek()
    ident = encrypted_csv.identity(name=name, version=version, sha256=sha256)
    data_key = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped = envelope.wrap(data_key, context=_key_context(ident))
    blob = encrypted_csv.encrypt(data, data_key, ident)
    stored = default_storage.save(f"datasets/{name}/v{version}-{sha256[:16]}.csv.enc", ContentFile(blob))
    return StoredFile(name=stored, kek_id=kek_id, wrapped=wrapped)


def key_destroyed(dataset: Dataset, key: DatasetKey, *, field: str | None = None) -> DatasetKeyDestroyed:
    """The error of reading (or naming) a dataset whose key was destroyed."""
    when = f"{key.destroyed_at:%Y-%m-%d}" if key.destroyed_at else "an unknown date"
    return DatasetKeyDestroyed(
        f"Dataset {dataset} can no longer be read: its key was destroyed on {when}.",
        field=field,
        details={"dataset": dataset.pk, "key_destroyed_on": when},
    )


def _data_key(dataset: Dataset, key: DatasetKey) -> bytes:
    if key.destroyed_at is not None or key.wrapped is None:
        raise key_destroyed(dataset, key)
    try:
        return envelope.unwrap(
            key.kek_id,
            bytes(key.wrapped),
            context=_key_context(_identity(dataset)),
            what=f"Dataset {dataset}",
            its="its key",
        )
    except envelope.KekUnavailable as exc:
        raise DatasetKeysUnavailable(exc.message, details={"dataset": dataset.pk}) from None


def _plaintext(dataset: Dataset) -> Iterator[bytes]:
    """The dataset's CSV in pieces, decrypted when it is encrypted (not yet verified)."""
    key = DatasetKey.objects.filter(dataset_id=dataset.pk).first()  # asked every time: never a destroyed key
    data_key = _data_key(dataset, key) if key is not None else None
    with default_storage.open(str(dataset.file.name), "rb") as handle:
        if data_key is None:  # stored in clear before encryption at rest: the SHA-256 check still applies
            while chunk := handle.read(PLAIN_READ_BYTES):
                yield chunk
            return
        try:
            yield from encrypted_csv.decrypt(handle, data_key, _identity(dataset))
        except encrypted_csv.FormatError as exc:
            raise DatasetIntegrityError(
                f"The stored file of dataset {dataset} cannot be trusted: {exc}.", details={"dataset": dataset.pk}
            ) from None


def _verify(dataset: Dataset, digest: str) -> None:
    if digest != dataset.sha256:
        raise DatasetIntegrityError(
            f"The stored file of dataset {dataset} no longer has its recorded SHA-256.",
            details={"dataset": dataset.pk, "expected": dataset.sha256, "actual": digest},
        )


def read_dataset_bytes(dataset: Dataset) -> bytes:
    """The dataset's CSV exactly as uploaded, its SHA-256 checked. Raises DatasetKeyDestroyed
    (410), DatasetKeysUnavailable (503: a wrong LOG_KEK) or DatasetIntegrityError (409)."""
    digest = hashlib.sha256()
    parts = []
    for part in _plaintext(dataset):
        digest.update(part)
        parts.append(part)
    _verify(dataset, digest.hexdigest())
    return b"".join(parts)


def open_dataset(dataset: Dataset) -> io.BytesIO:
    """read_dataset_bytes as a file object (for pandas.read_csv)."""
    return io.BytesIO(read_dataset_bytes(dataset))


def copy_dataset_to(dataset: Dataset, out: BinaryIO) -> None:
    """Write the dataset's CSV to `out` without holding it all in memory. The SHA-256 is checked
    at the end: on an error the caller discards what was written."""
    digest = hashlib.sha256()
    for part in _plaintext(dataset):
        digest.update(part)
        out.write(part)
    _verify(dataset, digest.hexdigest())


def rotate_dataset_keys() -> int:
    """Re-wrap every live dataset key under the current LOG_KEK (files are not touched). The
    update is conditional, so a key destroyed meanwhile stays destroyed."""
    current, _ = envelope.keks()
    rotated = 0
    live = DatasetKey.objects.select_related("dataset").filter(destroyed_at__isnull=True).exclude(kek_id=current)
    for key in live.iterator():
        context = _key_context(_identity(key.dataset))
        new_kek, wrapped = envelope.wrap(_data_key(key.dataset, key), context=context)
        rotated += DatasetKey.objects.filter(pk=key.pk, kek_id=key.kek_id, destroyed_at__isnull=True).update(
            kek_id=new_kek, wrapped=wrapped
        )
    return rotated


def encrypt_stored_dataset(dataset_id: int, *, actor: Actor = None) -> bool:
    """Encrypt a dataset stored in clear before encryption at rest: its verified bytes are
    written encrypted, the row points to the new file and gets its key, audited, in one
    transaction; the clear file is deleted once that commits. False when it was encrypted already."""
    written: list[str] = []
    try:
        with transaction.atomic():
            dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
            if DatasetKey.objects.filter(dataset=dataset).exists():
                return False
            clear_name = str(dataset.file.name)
            data = read_dataset_bytes(dataset)
            stored = write_encrypted(name=dataset.name, version=dataset.version, sha256=dataset.sha256, data=data)
            written.append(stored.name)
            Dataset.objects.filter(pk=dataset.pk).update(file=stored.name)
            DatasetKey.objects.create(dataset=dataset, wrapped=stored.wrapped, kek_id=stored.kek_id)
            audit.record(
                audit.DATASET_ENCRYPTED,
                actor=actor,
                target=dataset,
                data={"sha256": dataset.sha256, "file": stored.name, "kek_id": stored.kek_id},
            )
            transaction.on_commit(lambda: _delete_quietly(clear_name))
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    return True


def _delete_quietly(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:  # the encryption committed: a clear file left behind is logged, not an error
        log.warning("could not delete the clear file %s of an encrypted dataset", name)


def datasets_in_clear() -> list[int]:
    return list(Dataset.objects.filter(data_key__isnull=True).order_by("pk").values_list("pk", flat=True))
