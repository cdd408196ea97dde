//! `GET /api/v1/archive/head`: how far the archive is durable, and its newest signed
//! checkpoint, for anyone who keeps a copy outside the operator's reach and later runs
//! `hj212-audit verify --public-key F --expect-head SEQ:HASH`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiQuery, NoParams};

pub(crate) async fn head(State(state): State<AppState>, ApiQuery(NoParams {}): ApiQuery<NoParams>) -> Response {
    let durable = *state.shared.archive.durable().borrow();
    let checkpoint = state.shared.archive.latest_checkpoint().borrow().clone();
    Json(serde_json::json!({
        "durable_seq": durable,
        "checkpoint": checkpoint.as_ref().map(hj212_alerts::payload::checkpoint),
    }))
    .into_response()
}
