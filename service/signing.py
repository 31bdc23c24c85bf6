"""Which key signs a process's models and state: there is no built-in one.

``FRAUDSTREAM_SECRET_KEY`` when set (at least 32 bytes: the settings refuse shorter). Unset,
the single-process commands (`serve`, `retrain`) use the data directory's own random key,
made on first start and kept (`pipelines.signing_key`), so two services never share a key by
default; the distributed roles refuse to start, since every process of a deployment must
verify what the others sign.
"""

from __future__ import annotations

from pipelines.lifecycle.registry import ModelRegistry, TamperedArtefactError
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.signing_key import KEY_FILE, load_or_create_key
from service.auth import UnsafeSettingsError
from service.settings import MIN_SECRET_BYTES, Settings


def embedded_key(settings: Settings) -> bytes:
    """The configured key, or the data directory's (created on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return load_or_create_key(settings.data_dir / KEY_FILE, min_bytes=MIN_SECRET_BYTES)


def refuse_models_of_another_key(settings: Settings, key: bytes) -> None:
    """Refuse to start over a data directory whose champion another key signed (an earlier
    release's built-in key, another ``FRAUDSTREAM_SECRET_KEY``), with what to do about it,
    rather than fail halfway through start-up."""
    models = settings.data_dir / "models"
    index = models / "index.json"
    if not index.exists():
        return
    registry = ModelRegistry(models, FileIndex(index), key)
    champion = registry.champion()
    if champion is None:
        return
    try:
        registry.record(champion)
    except TamperedArtefactError as error:
        raise UnsafeSettingsError(
            f"{error}. The models in {models} were signed with another key or altered: set "
            "FRAUDSTREAM_SECRET_KEY to the key that signed them, or move the data directory "
            "aside to start afresh"
        ) from None


def deployment_key(settings: Settings) -> bytes:
    """The configured key, which a distributed role cannot run without."""
    if settings.secret_key is None:
        raise UnsafeSettingsError(
            "set FRAUDSTREAM_SECRET_KEY to a long random value (`openssl rand -hex 32`), the "
            "same in every process of the deployment: it signs the models they exchange"
        )
    return settings.secret_key.get_secret_value().encode()
