"""Models: the serving champion and challengers, the registry's versions, promotion, audit.

Reading needs any known API key; everything that changes what serves, and downloading an
artefact or a transaction's features, needs the admin role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response, status

from models.learners import OnlineLearner
from models.model_record import ModelRecord
from pipelines.lifecycle.model_lifecycle import Lifecycle
from pipelines.runtime.model_status import ModelStatus
from pipelines.runtime.protocol import Runtime
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep
from service.errors import NotFoundError, ServiceError
from service.responses import (
    AuditResponse,
    ChallengerRequest,
    ModelEvent,
    ModelResponse,
    ModelsResponse,
    Promoted,
    VersionResponse,
    finite_or_none,
)

router = APIRouter(tags=["models"], route_class=GuardedRoute)
reader = access(Access.ANY_KEY)
admin = access(Access.ADMIN)

Result = TypeVar("Result")
VersionPath = Annotated[str, Path(description="A registered version, e.g. m000012")]


class RegistryUnavailableError(ServiceError):
    status_code = 501


def lifecycle_of(runtime: Runtime) -> Lifecycle:
    if runtime.lifecycle is None:
        raise RegistryUnavailableError("this process keeps no model registry")
    return runtime.lifecycle


async def _change(lifecycle: Lifecycle, change: Callable[[], Result]) -> Result:
    """Run a change to the serving models: here, on the loop (between two requests, so none
    sees half a swap), or asked of the learner, waited for off the loop."""
    if lifecycle.remote:
        return await asyncio.to_thread(change)
    return change()


@router.get("/v1/models", openapi_extra=reader)
async def list_models(runtime: ReadyRuntimeDep) -> ModelsResponse:
    """The champion and its shadow challengers with their rolling quality on matured labels,
    and the registered versions, newest first."""
    lifecycle = runtime.lifecycle
    registry = None if lifecycle is None else lifecycle.registry
    champion = None if registry is None else registry.champion()
    return ModelsResponse(
        models=[model_response(status) for status in runtime.model_statuses()],
        champion_version=champion,
        versions=[]
        if registry is None
        else [version_response(runtime, record) for record in registry.records()[:100]],
    )


@router.get("/v1/models/events", openapi_extra=reader)
async def model_events(runtime: ReadyRuntimeDep, limit: int = 100) -> list[ModelEvent]:
    """Promotions, retirements and refusals, newest first."""
    events = lifecycle_of(runtime).registry.events(limit=max(1, min(limit, 1_000)))
    return [ModelEvent(**event) for event in events]


@router.get("/v1/models/{version}", openapi_extra=reader)
async def get_model(runtime: ReadyRuntimeDep, version: VersionPath) -> VersionResponse:
    """A version's provenance: kind, learner, params, feature schema, parent, labels learned,
    code version, seed, metrics at creation, sha256 and signature."""
    return version_response(runtime, lifecycle_of(runtime).registry.record(version))


@router.get(
    "/v1/models/{version}/artifact",
    openapi_extra=admin,
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_model(runtime: ReadyRuntimeDep, version: VersionPath) -> Response:
    """The signed artefact, checked against its sha256 and its record's signature first."""
    registry = lifecycle_of(runtime).registry
    record = registry.record(version)
    return Response(
        registry.artefact(version),
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{version}.model"',
            "x-fraudstream-sha256": record.sha256,
            "x-fraudstream-feature-schema": record.feature_schema,
        },
    )


@router.post(
    "/v1/models/artifacts",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=access(
        Access.ADMIN,
        requestBody={
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    ),
)
async def upload_model(
    runtime: ReadyRuntimeDep,
    request: Request,
    feature_schema: Annotated[
        str, Query(description="The schema it was built for (the download's header says it)")
    ],
) -> VersionResponse:
    """Register a signed artefact (as `GET .../artifact` gives it) as a new version, ready to
    promote. Its signature must verify under this deployment's key before anything is
    unpickled (422 otherwise, logged); a model for other features is refused (409)."""
    artefact = await request.body()
    record = lifecycle_of(runtime).import_artefact(artefact, feature_schema)
    return version_response(runtime, record)


@router.post("/v1/models/snapshots", openapi_extra=admin, status_code=status.HTTP_201_CREATED)
async def take_snapshot(runtime: ReadyRuntimeDep) -> VersionResponse:
    """Register the champion as it stands now (and, embedded, save the serving state)."""
    record = await lifecycle_of(runtime).snapshot_on_demand("on demand")
    return version_response(runtime, record)


@router.post("/v1/models/{version}/promote", openapi_extra=admin)
async def promote(runtime: ReadyRuntimeDep, version: VersionPath) -> Promoted:
    """Serve ``version`` from the next request on. A shadowing challenger takes over with
    what it learned; an older version is the rollback. 409 if built for other features."""
    lifecycle = lifecycle_of(runtime)
    serving = await _change(
        lifecycle, lambda: lifecycle.promote(version, detail="promoted through the API")
    )
    return Promoted(
        champion_version=lifecycle.registry.champion() or version, model_version=serving
    )


@router.delete("/v1/models/{version}", openapi_extra=admin, status_code=204)
async def retire(runtime: ReadyRuntimeDep, version: VersionPath) -> Response:
    """Retire a version and stop shadowing it; never the champion (409)."""
    lifecycle = lifecycle_of(runtime)
    await _change(lifecycle, lambda: lifecycle.retire(version, detail="retired through the API"))
    return Response(status_code=204)


@router.post("/v1/models/challengers", openapi_extra=admin, status_code=status.HTTP_201_CREATED)
async def add_challenger(runtime: ReadyRuntimeDep, request: ChallengerRequest) -> VersionResponse:
    """Register a fresh learner and shadow it: it scores every transaction (recorded, never
    alerting) and learns every label, and is judged on the same matured labels."""
    lifecycle = lifecycle_of(runtime)
    learner = OnlineLearner(request.learner, request.params, request.seed)
    version = await _change(lifecycle, lambda: lifecycle.add_challenger(learner))
    return version_response(runtime, lifecycle.registry.record(version))


@router.get("/v1/audit/{transaction_id}", openapi_extra=admin)
async def audit(runtime: ReadyRuntimeDep, transaction_id: str) -> AuditResponse:
    """The model version, score and feature vector a transaction got, within the retention
    of scored vectors (``FRAUDSTREAM_PENDING_TTL``)."""
    entry = lifecycle_of(runtime).audit(transaction_id)
    if entry is None:
        raise NotFoundError(f"no scored vector kept for transaction {transaction_id!r}")
    scored = entry.scored
    return AuditResponse(
        transaction_id=scored.transaction_id,
        model_version=scored.model_version,
        score=scored.score,
        decision=scored.decision.value,
        threshold=scored.threshold,
        reasons=[reason._asdict() for reason in scored.reasons],
        features=entry.features,
        shadow_scores=entry.shadow,
        label=entry.verdict,
    )


def version_response(runtime: Runtime, record: ModelRecord) -> VersionResponse:
    lifecycle = runtime.lifecycle
    champion = None if lifecycle is None else lifecycle.registry.champion()
    if record.version == champion:
        role = "champion"
    elif record.version in runtime.shadowing():
        role = "challenger"
    else:
        role = "registered"
    return VersionResponse(**record.model_dump(), status=role)


def model_response(status: ModelStatus) -> ModelResponse:
    quality = status.quality
    return ModelResponse(
        name=status.name,
        version=status.version,
        role=status.role,
        learner=status.learner,
        params=status.params,
        labels_learned=status.labels_learned,
        frauds_learned=status.frauds_learned,
        matured_labels=quality.matured,
        rolling_average_precision=finite_or_none(quality.average_precision),
        rolling_card_precision_at_k=finite_or_none(quality.card_precision_at_k),
        rolling_alert_precision=finite_or_none(quality.alert_precision),
        k=quality.k,
    )
