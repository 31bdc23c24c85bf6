"""A constant-score endpoint: the bare HTTP stack, for `fraudstream bench http` to compare with.

Included only when ``FRAUDSTREAM_BENCH_ENDPOINTS`` is true. It parses and validates the same
`Transaction` body as `POST /v1/score` and answers a response of the same model, but never
touches the detector: the difference between the two is what features, scoring, the stored
vector and the alert policy cost behind HTTP.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from models.schemas import Decision
from models.scored import Scored
from service.access import Access, GuardedRoute, access
from service.bodies import body_schema, json_body
from service.responses import ScoreResponse, json_response, score_document
from service.routers.scoring import TRANSACTION

router = APIRouter(prefix="/v1/bench", tags=["bench"], route_class=GuardedRoute)

CONSTANT_SCORE = 0.0
CONSTANT_VERSION = "constant"


@router.post(
    "/constant",
    response_model=ScoreResponse,
    openapi_extra=access(Access.SCORE, **body_schema({"$ref": "#/components/schemas/Transaction"})),
)
async def constant(request: Request) -> Response:
    """The same body, validation and response path as `POST /v1/score`, with a fixed score."""
    transaction = await json_body(request, TRANSACTION)
    result = Scored(
        transaction.transaction_id, CONSTANT_SCORE, CONSTANT_VERSION, Decision.PASS, 1.0, ()
    )
    return json_response(score_document(result, 0.0))
